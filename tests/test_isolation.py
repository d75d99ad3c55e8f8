"""Isolation on real servers: many concurrent users, every span in its own session.

The example apps run exactly as a user starts them (uvicorn, waitress) in a
subprocess exporting to a real OTLP receiver; concurrent clients, each with
its own cookie jar, chat for several streamed turns. From the spans that
arrive: every span carries the session of the client that caused it, each
client's turns share one session, and no two clients share one.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
import pytest

from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import run_example
from tests.tokens import session_of


@dataclass
class Client:
    index: int
    sessions: set[str] = field(default_factory=set)
    messages: list[str] = field(default_factory=list)


async def chat(base: str, client: Client, turns: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for turn in range(turns):
            message = f"client-{client.index} turn-{turn}"
            client.messages.append(message)
            async with http.stream("POST", "/chat", json={"message": message}) as response:
                assert response.status_code == 200
                body = [line async for line in response.aiter_lines() if line]
            assert body[-1].startswith("data: [DONE]")
            # The first response issues the session (cookie + echoed token);
            # later ones send neither back, as the cookie jar carries it.
            if HEADER in response.headers:
                client.sessions.add(session_of(response.headers[HEADER]))


HEADER = "x-neatlogs-session-id"


async def drive(base: str, clients: list[Client], turns: int) -> None:
    await asyncio.gather(*(chat(base, client, turns) for client in clients))


def check_isolation(spans: list[ReceivedSpan], clients: list[Client]) -> dict[str, int]:
    """Attribute every span to a client and count what is wrong."""
    session_of_client = {}
    for client in clients:
        assert len(client.sessions) == 1, f"client {client.index} saw {client.sessions}"
        session_of_client[client.index] = next(iter(client.sessions))
    assert len(set(session_of_client.values())) == len(clients), "two clients share a session"

    client_of_message = {m: c.index for c in clients for m in c.messages}
    client_of_trace: dict[str, int] = {}
    for span in spans:
        message = span.attributes.get("message")
        if span.name in ("turn", "summarise") and message in client_of_message:
            client_of_trace[span.trace_id] = client_of_message[message]
            # The framework's request trace is linked from the turn's root.
            for linked_trace, _ in span.links:
                client_of_trace[linked_trace] = client_of_message[message]

    # Health checks are excluded paths: the framework's spans for them carry no session.
    health_traces = {s.trace_id for s in spans if s.attributes.get("http.route") == "/healthz"}
    spans = [s for s in spans if s.trace_id not in health_traces]
    counts: Counter[str] = Counter(received=len(spans))
    sessions_seen: dict[int, set[str]] = defaultdict(set)
    known_sessions = set(session_of_client.values())
    for span in spans:
        session = span.attributes.get("session.id")
        if session is None:
            counts["no_session"] += 1
            continue
        if span.attributes.get("neatlogs.session.id") != session:
            counts["wrong_session"] += 1
        owner = client_of_trace.get(span.trace_id)
        if owner is not None:
            counts["attributed"] += 1
            sessions_seen[owner].add(session)
            if session != session_of_client[owner]:
                counts["wrong_session"] += 1
        elif session not in known_sessions:
            counts["wrong_session"] += 1
    turns = Counter(client_of_trace[s.trace_id] for s in spans if s.name == "turn")
    assert all(turns[c.index] == len(c.messages) for c in clients), "a turn is missing"
    assert all(len(seen) == 1 for seen in sessions_seen.values()), "a client's turns split"
    return dict(counts)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "command", "client_count"),
    [
        (
            "uvicorn",
            [
                "uvicorn",
                "app:app",
                "--app-dir",
                "examples/fastapi",
                "--port",
                "{port}",
                "--log-level",
                "warning",
            ],
            100,
        ),
        (
            "waitress",
            ["waitress", "--listen=127.0.0.1:{port}", "--threads=16", "app:app"],
            50,
        ),
    ],
)
def test_concurrent_clients_each_get_their_own_session(
    server: str, command: list[str], client_count: int, receiver: OTLPReceiver
) -> None:
    turns = 3
    env = {"NEATLOGS_ENDPOINT": receiver.url, "NEATLOGS_SECRET_KEY": "isolation-test"}
    if server == "waitress":
        env["PYTHONPATH"] = "examples/flask"
    clients = [Client(index) for index in range(client_count)]
    with run_example(command, env) as base:
        asyncio.run(drive(base, clients, turns))
    # The server stopped on SIGTERM and flushed on its way out.
    per_turn = 5  # turn, retrieval, llm, tool, summarise
    spans = receiver.wait_for(lambda s: len(s) >= client_count * turns * per_turn, timeout_s=20)
    counts = check_isolation(spans, clients)
    print(f"\n{server}: {client_count} clients x {turns} turns: {counts}")
    assert counts.get("wrong_session", 0) == 0
    assert counts.get("no_session", 0) == 0
    assert counts["attributed"] == counts["received"], "every span is traced to its client"
