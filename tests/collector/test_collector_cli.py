"""`neatlogs-web serve` as a user runs it: a real process on a loopback port."""

from __future__ import annotations

import os
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
        assert httpx.get(url, headers={"host": "evil.example"}).status_code == 403
    finally:
        process.terminate()
        process.wait(10)
