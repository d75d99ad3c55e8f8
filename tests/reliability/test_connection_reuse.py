"""A request never starts inside an earlier one on its connection, on every ASGI server.

Rounds of three people over one connection (``tests/connection_reuse.py``),
kept alive or pipelined, to each server in a subprocess, with plain Starlette
and with FastAPI's own telemetry. Counted from what the app answered and from
the spans decoded on the wire: an excluded request that saw a session, a
later person in the earlier one's session or trace, a probe span carrying a
session. What a server cannot do (some refuse pipelining) is a cell of its own.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.connection_reuse import STACKS, Round, send_round, spans_astray
from tests.otlp_receiver import OTLPReceiver
from tests.reliability.report import record
from tests.reliability.scale import SCALE
from tests.reliability.serving import serve

APP = "tests.reliability.reuse_app:asgi_app"
#: What a round can count, besides the rounds themselves: each should stay 0.
FIGURES = (
    "rounds",
    "excluded_with_a_session",
    "later_in_earlier_session",
    "later_in_earlier_trace",
    "server_span_lost",
    "spans_missing",
    "spans_in_earlier_trace",
    "spans_in_probe_trace_in_wrong_session",
    "spans_in_turn_trace_in_wrong_session",
)
SERVERS = (
    "uvicorn-h11",
    "uvicorn-httptools",
    "uvicorn-uvloop",
    "hypercorn",
    "granian",
    "daphne",
    "gunicorn-uvicorn",
)


@pytest.mark.parametrize("pipelined", [False, True], ids=["keep-alive", "pipelined"])
@pytest.mark.parametrize("server", SERVERS)
def test_no_request_starts_inside_an_earlier_one_on_its_connection(
    server: str, pipelined: bool, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    env = {"NEATLOGS_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "reuse"}
    rounds: list[Round] = []
    with serve(server, APP, env, tmp_path / "server.log", workers=1) as served:
        for index in range(SCALE.reuse_rounds):
            for stack in STACKS:
                rounds.append(send_round(served.base, stack, index, pipelined=pipelined))
    spans = receiver.wait_for(
        lambda got: sum("round" in s.attributes for s in got) >= 3 * len(rounds), timeout_s=10
    )
    for stack in STACKS:
        mine = [one for one in rounds if one.stack == stack]
        figures = sum((one.requests_seen() for one in mine), Counter())
        figures.update(spans_astray(spans, mine))
        mode = "pipelined" if pipelined else "keep-alive"
        # Every figure, zeros included, so the table has a column for each.
        record("reuse", f"{server} / {stack} / {mode}", **{**dict.fromkeys(FIGURES, 0), **figures})
        assert +figures == Counter(rounds=len(mine)), (server, stack, mode, figures)
