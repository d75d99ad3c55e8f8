"""Isolation at scale: many concurrent users on real servers, every span in its own session.

The example apps run as a user starts them: the FastAPI one under uvicorn and
under gunicorn with two uvicorn workers (one shared key, so a cookie issued by
one worker is accepted by the other), the Flask one under waitress. Each
client has its own cookie jar and chats for several turns: streamed replies,
thread-pool retrieval, background summaries, and on FastAPI the last turns
over the ``/ws`` WebSocket. Counted from the spans that arrive: a turn names
its client by its input (the summary by its message), and its trace holds the
rest of the request's spans.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.reliability.report import record
from tests.reliability.scale import SCALE
from tests.reliability.serving import EXAMPLE_ASGI, EXAMPLE_WSGI, serve
from tests.tokens import session_of

HEADER = "x-neatlogs-session-id"
COOKIE = "neatlogs_session"
# Our spans per turn: turn, retrieval, llm, tool (+ summarise as a background task over HTTP).
SPANS_PER_HTTP_TURN = 5
SPANS_PER_WS_TURN = 4
# Requests in flight at once, over as many shared connections: every client stays in
# its conversation throughout, but the client process does not queue hundreds of
# requests inside its connection pool (which costs it more CPU than the server spends).
MAX_CONNECTIONS = 64
SCENARIO_TIMEOUT_S = 180.0


@dataclass
class Client:
    index: int
    http: httpx.AsyncClient
    sessions: set[str] = field(default_factory=set)
    messages: list[str] = field(default_factory=list)
    ws_turns: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    server: str
    app: str
    ws_turns: int


SCENARIOS = [
    Scenario("uvicorn", EXAMPLE_ASGI, ws_turns=3),
    Scenario("gunicorn-uvicorn", EXAMPLE_ASGI, ws_turns=3),
    Scenario("waitress", EXAMPLE_WSGI, ws_turns=0),
]


async def http_turn(client: Client, message: str, gate: asyncio.Semaphore) -> None:
    async with (
        gate,
        client.http.stream("POST", "/chat", json={"message": message}) as response,
    ):
        lines = [line async for line in response.aiter_lines() if line]
    if response.status_code != 200 or not lines or not lines[-1].startswith("data: [DONE]"):
        client.failures.append(f"{response.status_code} {lines[-1:]}")
    if HEADER in response.headers:
        client.sessions.add(session_of(response.headers[HEADER]))


async def ws_turns(client: Client, base: str, messages: list[str], gate: asyncio.Semaphore) -> None:
    token = client.http.cookies.get(COOKIE)
    url = base.replace("http://", "ws://") + "/ws"
    async with gate, connect(url, additional_headers={"Cookie": f"{COOKIE}={token}"}) as socket:
        if socket.response is not None and HEADER in socket.response.headers:
            client.sessions.add(session_of(socket.response.headers[HEADER]))
        for message in messages:
            await socket.send(message)
            while not str(await socket.recv()).startswith("[DONE]"):
                pass


async def run_client(
    client: Client, base: str, turns: int, ws: int, gate: asyncio.Semaphore
) -> None:
    messages = [f"client-{client.index} turn-{turn}" for turn in range(turns)]
    client.messages = messages
    client.ws_turns = ws
    try:
        for message in messages[: turns - ws]:
            await http_turn(client, message, gate)
        if ws:
            await ws_turns(client, base, messages[turns - ws :], gate)
    except Exception as exc:  # counted as a failed request, reported below
        client.failures.append(repr(exc))


async def drive(base: str, clients_count: int, turns: int, ws: int) -> list[Client]:
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    transport = httpx.AsyncHTTPTransport(limits=limits)
    timeout = httpx.Timeout(60.0, pool=SCENARIO_TIMEOUT_S)
    # One cookie jar per client over one shared connection pool.
    clients = [
        Client(index, httpx.AsyncClient(base_url=base, transport=transport, timeout=timeout))
        for index in range(clients_count)
    ]
    gate = asyncio.Semaphore(MAX_CONNECTIONS)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(run_client(c, base, turns, ws, gate) for c in clients)),
            SCENARIO_TIMEOUT_S,
        )
    finally:
        await transport.aclose()
    return clients


def count(spans: list[ReceivedSpan], clients: list[Client]) -> dict[str, Any]:
    """Attribute every span to a client; count what is wrong, missing or unattributed."""
    session_of_client = {c.index: next(iter(c.sessions)) for c in clients if len(c.sessions) == 1}
    client_of_message = {m: c.index for c in clients for m in c.messages}
    client_of_trace: dict[str, int] = {}
    for span in spans:
        said = span.attributes.get("input.value", span.attributes.get("message"))
        owner = client_of_message.get(str(said))
        if span.name in ("turn", "summarise") and owner is not None:
            client_of_trace[span.trace_id] = owner
            for linked_trace, _ in span.links:
                client_of_trace[linked_trace] = owner
    health = {s.trace_id for s in spans if s.attributes.get("http.route") == "/healthz"}
    spans = [s for s in spans if s.trace_id not in health]

    counts: Counter[str] = Counter(received=len(spans))
    pids_of_client: dict[int, set[int]] = defaultdict(set)
    for span in spans:
        session = span.attributes.get("session.id")
        owner = client_of_trace.get(span.trace_id)
        if session is None:
            # FastAPI's spans inside a request (dependencies, endpoint, background
            # task) carry no session: the trace's root, its request span, does.
            if not (span.scope == "fastapi" and span.parent_span_id):
                counts["no_session"] += 1
        elif (
            owner is None
            or session != session_of_client.get(owner)
            or span.attributes.get("neatlogs.session.id") != session
        ):
            counts["wrong_session"] += 1
        if owner is None:
            counts["unattributed"] += 1
            continue
        counts["attributed"] += 1
        if span.scope == "neatlogs_web":
            counts["ours"] += 1
        pids_of_client[owner].add(int(span.resource["process.pid"]))
    pids = set().union(*pids_of_client.values()) if pids_of_client else set()
    return {
        **counts,
        "workers": len(pids),
        "clients_across_workers": sum(len(p) > 1 for p in pids_of_client.values()),
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.server for s in SCENARIOS])
def test_every_span_lands_in_its_clients_session(
    scenario: Scenario, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    env = {
        "NEATLOGS_ENDPOINT": receiver.url,
        "NEATLOGS_SECRET_KEY": "isolation-at-scale",
        # Every span names the process that made it: proof of which worker served it.
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process",
    }
    turns, ws = SCALE.turns, min(scenario.ws_turns, SCALE.turns - 1)
    with serve(scenario.server, scenario.app, env, tmp_path / "server.log") as served:
        started = time.monotonic()
        clients = asyncio.run(drive(served.base, SCALE.clients, turns, ws))
        elapsed = time.monotonic() - started
        peak_rss = served.rss()
    expected = sum(
        (len(c.messages) - c.ws_turns) * SPANS_PER_HTTP_TURN + c.ws_turns * SPANS_PER_WS_TURN
        for c in clients
    )
    spans = receiver.wait_for(
        lambda s: sum(x.scope == "neatlogs_web" for x in s) >= expected, timeout_s=30
    )
    counts = count(spans, clients)
    failed = sum(len(c.failures) for c in clients)
    figures = {
        "clients": len(clients),
        "turns_per_client": turns,
        "websocket_turns_per_client": ws,
        "requests": sum(len(c.messages) for c in clients),
        "failed_requests": failed,
        "seconds": round(elapsed, 1),
        "turns_per_s": round(sum(len(c.messages) for c in clients) / elapsed, 1),
        "server_rss_mib": round(peak_rss / 2**20, 1),
        "spans_received": counts["received"],
        "spans_wrong_session": counts.get("wrong_session", 0),
        "spans_no_session": counts.get("no_session", 0),
        "spans_unattributed": counts.get("unattributed", 0),
        "spans_lost": expected - counts.get("ours", 0),
        "workers": counts["workers"],
        "clients_across_workers": counts["clients_across_workers"],
    }
    record("isolation", scenario.server, **figures)
    print(f"\n{scenario.server}: {figures}")
    assert failed == 0, [c.failures for c in clients if c.failures][:5]
    assert all(len(c.sessions) == 1 for c in clients), "a client was given a second session"
    assert len({next(iter(c.sessions)) for c in clients}) == len(clients), "clients share one"
    assert figures["spans_wrong_session"] == 0
    assert figures["spans_no_session"] == 0
    assert figures["spans_unattributed"] == 0
    assert figures["spans_lost"] == 0
    if scenario.server.startswith("gunicorn"):
        # Both workers served each of many clients: each accepted the other's cookie.
        assert figures["workers"] == 2
        assert figures["clients_across_workers"] > 0
