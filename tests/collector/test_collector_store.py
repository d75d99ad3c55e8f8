"""The SQLite store: survives restarts, refuses foreign files, answers from many threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from neatlogs_web.collector import Store, StoreError, default_db_path
from neatlogs_web.collector.otlp import Batch, decode
from neatlogs_web.collector.summaries import SessionKey
from tests.collector import otlp_data as otlp


def batch(*spans: Span) -> Batch:
    return decode(otlp.protobuf(*spans), "protobuf")


def test_spans_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "collector.db"
    first = Store(path)
    first.ingest(batch(otlp.span("turn", attributes={"session.id": "durable"})))
    first.close()

    again = Store(path)
    try:
        assert [s.session_id for s in again.sessions(limit=10)] == ["durable"]
    finally:
        again.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_file_that_is_not_a_collector_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE unrelated (x)").connection.commit()

    with pytest.raises(StoreError, match="--db"):
        Store(path)


def test_default_path_follows_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "neatlogs-web" / "collector.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_db_path() == Path.home() / ".local" / "share" / "neatlogs-web" / "collector.db"


def test_one_request_is_one_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    spans = [otlp.span(f"s{i}", attributes={"session.id": "tx"}) for i in range(50)]
    try:
        assert store.ingest(batch(*spans)) == 50
        assert store.ingest(batch(*spans)) == 0  # a retry adds nothing
        session = store.session(SessionKey("tx", "tests"), limit=10)
        assert session is not None and session.session.span_count == 50
    finally:
        store.close()


def test_reads_and_writes_from_many_threads(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for turn in range(20):
                store.ingest(batch(otlp.span(f"t{turn}", attributes={"session.id": f"w{worker}"})))
                store.sessions(limit=50)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert sorted(s.trace_count for s in store.sessions(limit=10)) == [20, 20, 20, 20]
    finally:
        store.close()
