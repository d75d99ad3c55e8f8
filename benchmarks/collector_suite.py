"""The local collector: ingest throughput and the session page API on a large store.

Ingest is decode + store of OTLP protobuf export requests of 512 spans each,
the batch size ``init()`` sends, into a fresh SQLite file. The session API is
``GET /api/sessions/{id}`` through the collector's ASGI app for a session of
10,000 traces in a store of 1,000,000 spans: its first page of turns, as the
page asks for it, and every page in turn with ``after``. That store takes a while to
build, so it is kept under ``.bench-cache/``, keyed by a hash of the
collector's code: a change to it builds the store again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".bench-cache"
BATCH_SIZE = 512
SPANS_PER_TRACE = 10
TARGET_SESSION = "bench-big-session"


@dataclass
class StoreShape:
    total_spans: int
    session_traces: int

    @property
    def label(self) -> str:
        return f"{self.session_traces:,} traces in a store of {self.total_spans:,} spans"


FULL_SHAPE = StoreShape(total_spans=1_000_000, session_traces=10_000)
QUICK_SHAPE = StoreShape(total_spans=20_000, session_traces=200)


@dataclass
class CollectorResult:
    ingest_spans_per_s: float
    ingest_batches: int
    session_ms: float
    session_ms_per_round: list[float]
    shape: StoreShape
    session_bytes: int
    store_built_s: float | None
    #: Every page of the session's traces, 500 a page, followed with ``after``.
    all_pages_ms: float
    all_pages: int
    all_pages_traces: int


def _export_requests(shape: StoreShape) -> Iterator[bytes]:
    """Serialized OTLP requests of ``BATCH_SIZE`` spans: the target session's traces
    first, then traces of 100-trace sessions up to ``shape.total_spans``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    def attribute(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    start_ns = 1_700_000_000_000_000_000
    request = ExportTraceServiceRequest()
    pending = 0
    scope_spans = None

    def fresh() -> Any:
        request.Clear()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(
            [attribute("service.name", "bench"), attribute("neatlogs.workflow_name", "bench")]
        )
        part = resource_spans.scope_spans.add()
        part.scope.name = "neatlogs_web"
        return part

    scope_spans = fresh()
    trace_count = shape.total_spans // SPANS_PER_TRACE
    for trace_index in range(trace_count):
        if trace_index < shape.session_traces:
            session = TARGET_SESSION
        else:
            session = f"bench-session-{(trace_index - shape.session_traces) // 100}"
        trace_id = (trace_index + 1).to_bytes(16, "big")
        begin = start_ns + trace_index * 1_000_000_000
        for span_index in range(SPANS_PER_TRACE):
            span = Span(
                trace_id=trace_id,
                span_id=(trace_index * SPANS_PER_TRACE + span_index + 1).to_bytes(8, "big"),
                parent_span_id=(
                    b""
                    if span_index == 0
                    else (trace_index * SPANS_PER_TRACE + 1).to_bytes(8, "big")
                ),
                name="turn" if span_index == 0 else f"step_{span_index}",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=begin + span_index * 1000,
                end_time_unix_nano=begin + 50_000_000,
            )
            span.attributes.extend(
                [
                    attribute("session.id", session),
                    attribute("neatlogs.session.id", session),
                    attribute("llm.model", "bench-model"),
                ]
            )
            scope_spans.spans.append(span)
            pending += 1
            if pending == BATCH_SIZE:
                yield request.SerializeToString()
                scope_spans = fresh()
                pending = 0
    if pending:
        yield request.SerializeToString()


def _code_hash() -> str:
    """A hash of the collector's modules, which decide what a store holds (its schema,
    rows and summaries, spread over several of them), and of this file."""
    import neatlogs_web.collector

    digest = hashlib.sha256()
    for source in sorted(Path(neatlogs_web.collector.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update(Path(__file__).read_bytes())  # the store's shape is defined here
    return digest.hexdigest()[:16]


def _ingest_all(path: Path, shape: StoreShape) -> None:
    from neatlogs_web.collector import otlp
    from neatlogs_web.collector.store import Store

    store = Store(path)
    try:
        for body in _export_requests(shape):
            store.ingest(otlp.decode(body, "protobuf"))
    finally:
        store.close()


def _cached_store(shape: StoreShape, workdir: Path, use_cache: bool) -> tuple[Path, float | None]:
    """The big store's file, from the cache when it matches; with the build time if built."""
    name = f"collector-{shape.total_spans}-{shape.session_traces}-{_code_hash()}.db"
    if not use_cache:
        path = workdir / name
        started = time.perf_counter()
        _ingest_all(path, shape)
        return path, time.perf_counter() - started
    CACHE_DIR.mkdir(exist_ok=True)
    path = CACHE_DIR / name
    if path.exists():
        return path, None
    for stale in CACHE_DIR.glob("collector-*.db*"):
        stale.unlink()
    partial = CACHE_DIR / (name + ".partial")
    started = time.perf_counter()
    _ingest_all(partial, shape)
    if Path(f"{partial}-wal").exists():
        raise RuntimeError(f"{partial} was not checkpointed on close; not caching it")
    partial.rename(path)
    return path, time.perf_counter() - started


def _measure_ingest(workdir: Path, batches: int) -> float:
    """Spans per second: decode + store of ``batches`` requests into a fresh file."""
    from neatlogs_web.collector import otlp
    from neatlogs_web.collector.store import Store

    shape = StoreShape(total_spans=batches * BATCH_SIZE, session_traces=0)
    bodies = list(_export_requests(shape))
    store = Store(workdir / "ingest.db")
    try:
        started = time.perf_counter()
        for body in bodies:
            store.ingest(otlp.decode(body, "protobuf"))
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return len(bodies) * BATCH_SIZE / elapsed


class _SessionApi:
    """``GET /api/sessions/{id}`` through the collector's ASGI app, timed."""

    def __init__(self, path: Path) -> None:
        from neatlogs_web.collector.app import create_app
        from neatlogs_web.collector.store import Store

        self.store = Store(path)
        self.app = create_app(self.store)
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()
        self.store.close()

    def get(self, query: str = "") -> tuple[float, bytes]:
        """Milliseconds for one answer, and its body."""
        from benchmarks.asgi_suite import make_scope

        scope = make_scope(f"/api/sessions/{TARGET_SESSION}")
        scope["query_string"] = query.encode()
        body = bytearray()
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                body.extend(message.get("body", b""))

        started = time.perf_counter()
        self.loop.run_until_complete(self.app(scope, receive, send))
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"session API answered {status}: {bytes(body[:200])!r}")
        return elapsed * 1000, bytes(body)

    def first_page(self, rounds: int) -> tuple[list[float], int]:
        self.get()  # warm the page cache and the app
        timings = []
        size = 0
        for _ in range(rounds):
            elapsed_ms, body = self.get()
            timings.append(elapsed_ms)
            size = len(body)
        return timings, size

    def all_pages(self) -> tuple[float, int, int]:
        """Milliseconds to walk every page, the pages, and the traces they held."""
        total_ms = 0.0
        pages = traces = 0
        query = "limit=500"
        while True:
            elapsed_ms, body = self.get(query)
            answer = json.loads(body)
            total_ms += elapsed_ms
            pages += 1
            traces += len(answer["traces"])
            if answer["next"] is None:
                return total_ms, pages, traces
            query = "limit=500&" + urlencode({"after": answer["next"]})


def run(*, quick: bool) -> CollectorResult:
    shape = QUICK_SHAPE if quick else FULL_SHAPE
    workdir = Path(tempfile.mkdtemp(prefix="neatlogs-bench-"))
    try:
        batches = 8 if quick else 100
        ingest = _measure_ingest(workdir, batches)
        path, built_s = _cached_store(shape, workdir, use_cache=not quick)
        api = _SessionApi(path)
        try:
            timings, size = api.first_page(3 if quick else 15)
            all_pages_ms, pages, traces = api.all_pages()
        finally:
            api.close()
        if traces != shape.session_traces:
            raise RuntimeError(f"the pages held {traces} traces, not {shape.session_traces}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return CollectorResult(
        ingest_spans_per_s=ingest,
        ingest_batches=batches,
        session_ms=statistics.median(timings),
        session_ms_per_round=timings,
        shape=shape,
        session_bytes=size,
        store_built_s=built_s,
        all_pages_ms=all_pages_ms,
        all_pages=pages,
        all_pages_traces=traces,
    )
