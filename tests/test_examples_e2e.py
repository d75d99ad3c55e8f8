"""End to end: the examples export to the local collector, one session per user.

The FastAPI example runs through `neatlogs-web demo` itself (collector, app
and simulated users as subprocesses); the Flask example runs under waitress
against a collector started here. Users find their session by cookie, by
signed header and by conversation id in the path, and judge some answers
through the examples' feedback endpoint.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from neatlogs_web.cli import main
from neatlogs_web.demo import MODES, simulate_users
from tests.collector.live import LiveCollector
from tests.otlp_receiver import OTLPReceiver
from tests.servers import ROOT, free_port, run_example

FASTAPI_EXAMPLE = ["uvicorn", "app:app", "--app-dir", "examples/fastapi", "--port", "{port}"]


def test_demo_command_runs_collector_app_and_users(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    status = main(
        [
            "demo",
            "--users",
            "6",
            "--turns",
            "2",
            "--duration",
            "60",
            "--port",
            str(port),
            "--no-wait",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "The collector stopped with the demo (--no-wait)" in out
    assert "6 users, 12 turns, 0 failed requests" in out
    assert "answers judged through /neatlogs/feedback:" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("user-")]
    assert len(rows) == 6
    assert {row[1] for row in rows} == {"cookie", "header", "conversation"}
    # One trace per turn: FastAPI's request span carries the turn, and the
    # background summary runs inside that trace.
    assert all(row[3:6] == ["2", "2", "2"] for row in rows), rows


def test_simulated_users_judge_answers_in_their_own_turns() -> None:
    """The demo's votes are recorded: each a feedback span under the turn its
    token names, in that turn's session, whichever way the user keeps it."""
    with OTLPReceiver() as receiver:
        env = {"NEATLOGS_ENDPOINT": receiver.url, "NEATLOGS_SECRET_KEY": "e2e"}
        with run_example(FASTAPI_EXAMPLE, env) as base:
            users = asyncio.run(simulate_users(base, users=6, turns=4, duration_s=60))
        # The example has stopped (SIGTERM): it flushed every span on the way out.
        spans = receiver.spans
    assert all(user.failures == 0 and user.turns == 4 for user in users), users
    assert {user.mode for user in users if user.up + user.down} == set(MODES)
    assert sum(user.up for user in users) and sum(user.down for user in users)
    assert sum(user.comments for user in users)
    turns = {span.span_id: span for span in spans if span.name == "turn"}
    votes: Counter[tuple[str, float]] = Counter()
    for vote in (span for span in spans if span.name == "feedback"):
        turn = turns[vote.parent_span_id]
        assert vote.trace_id == turn.trace_id
        assert vote.attributes["session.id"] == turn.attributes["session.id"]
        votes[vote.attributes["session.id"], vote.attributes["neatlogs.feedback.score"]] += 1
    expected = Counter(
        {(user.session_id, 1.0): user.up for user in users}
        | {(user.session_id, 0.0): user.down for user in users}
    )
    assert votes == +expected


def test_flask_example_sessions_land_in_the_collector(tmp_path: Path) -> None:
    with LiveCollector(tmp_path / "spans.db") as collector:
        env = {
            "NEATLOGS_ENDPOINT": collector.url,
            "NEATLOGS_SECRET_KEY": "e2e",
            "PYTHONPATH": "examples/flask",
        }
        command = ["waitress", "--listen=127.0.0.1:{port}", "--threads=8", "app:app"]
        with run_example(command, env) as base:
            users = asyncio.run(simulate_users(base, users=6, turns=2, duration_s=60))
        # waitress died of SIGTERM; init()'s handler flushed first.
        listing = collector.get("/api/sessions", limit="100").json()["sessions"]
    by_id = {entry["session_id"]: entry for entry in listing}
    assert len(by_id) == 6
    for user in users:
        assert user.failures == 0 and user.turns == 2
        session = by_id[user.session_id]
        # One trace per turn: the summary, traced on a thread started by hand, is in it.
        assert (session["trace_count"], session["turn_count"]) == (2, 2), (user.mode, session)
        assert session["first_input"] and session["last_output"], session
    assert {user.mode for user in users} == {"cookie", "header", "conversation"}


def test_demo_on_a_taken_port_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["demo", "--users", "1", "--port", str(port), "--no-wait"])
    assert status == 1
    err = capsys.readouterr().err
    assert err.count("taken") == 1, err  # said once
    assert f"port {port} is taken by another program" in err
    assert "--port 4400 (make demo PORT=4400)" in err


def test_make_demo_passes_port_to_the_demo() -> None:
    """`make demo PORT=4400`, as the message and the README say, reaches --port."""
    done = subprocess.run(
        ["make", "-n", "demo", "PORT=4400"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    (line,) = [line for line in done.stdout.splitlines() if "neatlogs-web demo" in line]
    assert line.split()[-2:] == ["--port", "4400"], line
    assert "make demo PORT=4400" in (ROOT / "README.md").read_text()


def test_demo_on_a_port_another_server_answers_on_refuses_to_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.otlp_receiver import OTLPReceiver

    with OTLPReceiver() as other:
        port = int(other.url.rsplit(":", 1)[1])
        status = main(["demo", "--users", "1", "--port", str(port), "--no-wait"])
        assert other.received.spans == []
    assert status == 1
    assert f"port {port} is taken by another program" in capsys.readouterr().err


def test_sigterm_to_the_demo_stops_its_collector_and_app() -> None:
    port = free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neatlogs_web",
            "demo",
            "--users",
            "1",
            "--turns",
            "1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if "keeps running until you press Ctrl-C" in line:
                break
        else:
            pytest.fail("the demo ended before its summary")
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the collector is gone: its port is free
