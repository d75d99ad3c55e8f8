"""The local collector shows no session for requests that ran no turn, and a turn
under FastAPI's request span as one row, named once.

FastAPI traces every request itself. Health probes, a static file and
``GET /whoami``, with or without the user's cookie, run no turn: they are in
no session the collector lists, and not traces of the user's session. Real
uvicorn, real HTTP, real OTLP export to the collector on loopback.
"""

from __future__ import annotations

from pathlib import Path

import httpx

import neatlogs_web
from tests.collector.live import LiveCollector
from tests.framework_app import NO_TURN_PATHS, make_app
from tests.pipeline import reset_global_tracer_provider
from tests.servers import run_uvicorn

TURNS = ("hello", "bye")


def test_probes_are_in_no_session_and_a_turn_is_one_row(
    collector: LiveCollector, tmp_path: Path
) -> None:
    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    neatlogs_web.init(endpoint=collector.url, schedule_delay_ms=20, flush_on_sigterm=False)
    try:
        with run_uvicorn(make_app(tmp_path)) as base:
            for probe in NO_TURN_PATHS:  # a load balancer, without a cookie
                httpx.get(base + probe).raise_for_status()
            with httpx.Client(base_url=base) as user:
                for text in TURNS:
                    session_id = user.post("/chat", json={"text": text}).json()["session_id"]
                for probe in NO_TURN_PATHS:  # the user's page, with its cookie
                    user.get(probe).raise_for_status()
        assert neatlogs_web.flush(10)
    finally:
        neatlogs_web.shutdown()
        reset_global_tracer_provider()

    listed = collector.get("/api/sessions").json()["sessions"]
    assert [row["session_id"] for row in listed] == [session_id]
    (row,) = listed
    assert (row["turn_count"], row["trace_count"]) == (len(TURNS), len(TURNS))
    entries = collector.get(f"/api/sessions/{session_id}").json()["traces"]
    # One row per turn, named for the request that carried it, with the turn's words.
    assert [(e["name"], e["turn"], e["input"], e["output"]) for e in entries] == [
        ("POST /chat", True, text, f"re: {text}") for text in TURNS
    ]
