"""`neatlogs-web serve` as a user runs it: a real process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from neatlogs_web.cli import main
from tests.collector import otlp_data as otlp
from tests.servers import free_port


def test_serve_receives_and_shows_spans(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "serve.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "neatlogs_web", "serve", "--port", str(port), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        banner = process.stdout.readline() if process.stdout else ""
        assert f"http://127.0.0.1:{port}/" in banner
        url = f"http://127.0.0.1:{port}"
        body = otlp.protobuf(otlp.span("turn", attributes={"session.id": "cli"}))
        for _ in range(100):
            try:
                response = httpx.post(
                    url + "/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf"},
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert response.status_code == 200
        sessions = httpx.get(url + "/api/sessions").json()["sessions"]
        assert [s["session_id"] for s in sessions] == ["cli"]
    finally:
        process.terminate()
        process.wait(10)
    assert db.exists()


def test_serve_refuses_a_foreign_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"this is not sqlite" * 100)

    assert main(["serve", "--db", str(foreign), "--port", str(free_port())]) == 2
    assert "neatlogs-web serve:" in capsys.readouterr().err


def test_serve_says_when_its_port_is_taken_before_saying_where_it_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        assert main(["serve", "--port", str(port), "--db", str(tmp_path / "c.db")]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""  # no page address for a collector that is not there
    assert f"port {port} is taken by another program" in printed.err
    assert "neatlogs-web serve --port 4400" in printed.err


def test_bad_flags_exit_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--max-body-bytes", "0"])

    assert exit_info.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_serve_answers_an_allowed_host_name_and_refuses_others(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neatlogs_web",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "hosts.db"),
            "--allow-host",
            "collector",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/sessions"
    try:
        for _ in range(200):
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert httpx.get(url, headers={"host": f"collector:{port}"}).status_code == 200
        refused = httpx.get(url, headers={"host": "evil.example"})
        assert refused.status_code == 403
        # It says where the collector does answer, and which flag adds a name.
        assert f"http://127.0.0.1:{port}/" in refused.json()["error"]
        assert "--allow-host evil.example" in refused.json()["error"]
    finally:
        process.terminate()
        process.wait(10)
