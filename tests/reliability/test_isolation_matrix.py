"""Isolation on the stacks users run: every server, every middleware composition.

Each row starts one server in a subprocess serving ``stacks_app`` (see its
docstring for the four ASGI stacks) and exports to a real OTLP receiver.
In every stack, concurrent clients, each with its own cookie jar, go through
every way a request hands work on: a streamed body, a background task, the
thread pool, an exception, a WebSocket, and a stream they leave mid-way.
Then each client asks the server to run the garbage collector inside its
own request, which is when an abandoned stream is finalized.

Isolation, counted from the spans decoded on the wire: every span a client
caused carries that client's session (0 in a wrong session, 0 without one),
except the ``finally:`` of a stream its client left, which no request owns
any more: it may carry its own client's session or none, never another's.
What a server cannot do is a cell of its own in the table, not a skip.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.reliability.report import record
from tests.reliability.scale import SCALE
from tests.reliability.serving import serve

ASGI_APP = "tests.reliability.stacks_app:asgi_app"
WSGI_APP = "tests.reliability.stacks_app:wsgi_app"
ASGI_STACKS = ("plain", "base-inside", "base-outside", "gzip")
COOKIE = "neatlogs_session"
#: Concurrent requests per row, over one shared connection pool.
MAX_CONNECTIONS = 32
ROW_TIMEOUT_S = 240.0
#: Lines of /abandon a client reads before it hangs up.
ABANDON_AFTER_LINES = 4


@dataclass(frozen=True)
class Server:
    name: str
    app: str
    stacks: tuple[str, ...]
    websocket: bool = True
    background: bool = True
    workers: int = 1
    #: What the server cannot do, shown in the table.
    note: str = ""


SERVERS = [
    Server("uvicorn-asyncio", ASGI_APP, ASGI_STACKS),
    Server("uvicorn-uvloop", ASGI_APP, ASGI_STACKS),
    Server("hypercorn", ASGI_APP, ASGI_STACKS),
    Server("granian", ASGI_APP, ASGI_STACKS),
    Server("daphne", ASGI_APP, ASGI_STACKS, note="no lifespan: no flush at shutdown"),
    Server("gunicorn-uvicorn", ASGI_APP, ASGI_STACKS, workers=2),
    Server(
        "gunicorn-gthread",
        WSGI_APP,
        ("plain",),
        websocket=False,
        background=False,
        workers=2,
        note="WSGI: no WebSocket, no background task",
    ),
    Server(
        "gunicorn-gevent",
        WSGI_APP,
        ("plain",),
        websocket=False,
        background=False,
        note="WSGI: no WebSocket, no background task",
    ),
    Server(
        "waitress",
        WSGI_APP,
        ("plain",),
        websocket=False,
        background=False,
        note="WSGI: no WebSocket, no background task",
    ),
    Server(
        "granian-wsgi",
        WSGI_APP,
        ("plain",),
        websocket=False,
        background=False,
        note="WSGI: no WebSocket, no background task",
    ),
]


@dataclass
class Client:
    stack: str
    index: int
    session: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.stack}-{self.index}"


def _check(client: Client, what: str, seen: object, expected: object) -> None:
    if seen != expected:
        client.failures.append(f"{what}: {seen!r} != {expected!r}")


async def user(
    client: Client, base: str, server: Server, http: httpx.AsyncClient, gate: asyncio.Semaphore
) -> None:
    """One user's visit: every way a request hands its work on."""
    params = {"c": client.name}
    prefix = f"/{client.stack}"
    try:
        async with gate:
            response = await http.get(f"{prefix}/whoami", params=params)
            client.session = response.json()["session_id"]
            async with http.stream("GET", f"{prefix}/stream", params=params) as streamed:
                lines = [line.strip() async for line in streamed.aiter_lines() if line.strip()]
            _check(client, "stream", lines, [client.session] * 3)
            pooled = (await http.get(f"{prefix}/threadpool", params=params)).json()
            _check(client, "threadpool", pooled["session_id"], client.session)
            failed = await http.get(f"{prefix}/fail", params=params)
            _check(client, "fail status", failed.status_code, 500)
            for route in ("/abandon", "/abandon-sync") if server.websocket else ("/abandon",):
                async with http.stream("GET", prefix + route, params=params) as abandoned:
                    read = 0
                    async for line in abandoned.aiter_lines():
                        read += bool(line.strip())
                        if read >= ABANDON_AFTER_LINES:
                            break  # leaving the block closes the connection mid-stream
        if server.websocket:
            url = base.replace("http://", "ws://") + f"{prefix}/ws?c={client.name}"
            cookie = f"{COOKIE}={http.cookies.get(COOKIE)}"
            async with gate, connect(url, additional_headers={"Cookie": cookie}) as socket:
                for text in ("hello", "again"):
                    await socket.send(text)
                    _check(client, "ws", await socket.recv(), client.session)
    except Exception as exc:  # a failed request, reported with the row
        client.failures.append(f"{type(exc).__name__}: {exc}")


def expected_names(server: Server) -> Counter[str]:
    names = Counter(whoami=1, chunk=3, threadpool=1, fail=1, abandoned=1)
    if server.background:
        names["background"] = 1
    if server.websocket:
        names["ws"] = 2
        names["abandoned"] = 2
    return names


async def drive(base: str, server: Server, clients: list[Client], receiver: OTLPReceiver) -> None:
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=0)
    transport = httpx.AsyncHTTPTransport(limits=limits)
    timeout = httpx.Timeout(30.0, pool=ROW_TIMEOUT_S)
    gate = asyncio.Semaphore(MAX_CONNECTIONS)
    # One cookie jar per client over one shared connection pool.
    https = [
        httpx.AsyncClient(base_url=base, transport=transport, timeout=timeout) for _ in clients
    ]
    try:
        await asyncio.gather(
            *(user(c, base, server, h, gate) for c, h in zip(clients, https, strict=True))
        )
        # Each client runs the garbage collector inside its own request, in turn,
        # until every abandoned stream has been finalized (or the row gives up).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for client, http in zip(clients, https, strict=True):
                await http.get(f"/{client.stack}/collect", params={"c": client.name})
            abandoned = sum(s.name == "abandoned" for s in receiver.spans)
            if abandoned >= len(clients) * expected_names(server)["abandoned"]:
                break
            await asyncio.sleep(0.2)
    finally:
        await transport.aclose()


def count(spans: list[ReceivedSpan], clients: list[Client]) -> Counter[str]:
    """Every span that names a client, against that client's session."""
    session_of = {c.name: c.session for c in clients}
    counts: Counter[str] = Counter()
    for span in spans:
        owner = span.attributes.get("client")
        if owner not in session_of:
            continue
        counts["spans"] += 1
        session = span.attributes.get("session.id")
        keys_agree = span.attributes.get("neatlogs.session.id") == session
        if span.name == "abandoned":
            # No request owns it any more: its own session or none, never another's.
            kind = span.attributes.get("stream")
            seen = span.attributes.get("seen_session") or None
            if session is None and seen is None:
                counts[f"{kind}_orphan_none"] += 1
            elif session == seen == session_of[owner] and keys_agree:
                counts[f"{kind}_orphan_own"] += 1
            else:
                counts[f"{kind}_orphan_other"] += 1
            continue
        if session is None:
            counts["no_session"] += 1
        elif session != session_of[owner] or not keys_agree:
            counts["wrong_session"] += 1
    return counts


def run_row(server: Server, receiver: OTLPReceiver, log_path: Path, users: int) -> dict[str, Any]:
    env = {"NEATLOGS_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "stacks"}
    clients = [Client(stack, index) for stack in server.stacks for index in range(users)]
    with serve(server.name, server.app, env, log_path, workers=server.workers) as served:
        started = time.monotonic()
        asyncio.run(asyncio.wait_for(drive(served.base, server, clients, receiver), ROW_TIMEOUT_S))
        elapsed = time.monotonic() - started
        expected = sum(expected_names(server).values()) * len(clients)
        spans = receiver.wait_for(
            lambda s: sum("client" in x.attributes and x.name != "collect" for x in s) >= expected,
            timeout_s=10,
        )
    rows: dict[str, Any] = {}
    for stack in server.stacks:
        mine = [c for c in clients if c.stack == stack]
        counts = count(spans, mine)
        names = Counter(
            s.name for s in spans if str(s.attributes.get("client", "")).startswith(f"{stack}-")
        )
        missing = sum(
            max(0, n * len(mine) - names[name]) for name, n in expected_names(server).items()
        )
        rows[stack] = {
            "clients": len(mine),
            "failed_requests": sum(len(c.failures) for c in mine),
            "failures": [f for c in mine for f in c.failures][:3],
            "spans": counts["spans"],
            "spans_wrong_session": counts["wrong_session"],
            "spans_no_session": counts["no_session"],
            "spans_missing": missing,
            "left_async_streams": _orphans(counts, "async") if server.websocket else "n/a",
            "left_plain_streams": _orphans(counts, "sync"),
            "left_async_in_other_session": counts["async_orphan_other"],
            "left_plain_in_other_session": counts["sync_orphan_other"],
            "seconds": round(elapsed, 1),
        }
    return rows


def _orphans(counts: Counter[str], kind: str) -> str:
    own, none, other = (counts[f"{kind}_orphan_{w}"] for w in ("own", "none", "other"))
    return f"{own} own / {none} none / {other} other"


def assert_isolated(server: Server, rows: dict[str, Any]) -> None:
    for stack, row in rows.items():
        where = f"{server.name} / {stack}: {row}"
        assert row["failed_requests"] == 0, where
        assert row["spans_wrong_session"] == 0, where
        assert row["spans_no_session"] == 0, where
        assert row["spans_missing"] == 0, where
        assert row["left_async_in_other_session"] == 0, where
        assert row["left_plain_in_other_session"] == 0, where


@pytest.mark.parametrize("server", SERVERS, ids=[s.name for s in SERVERS])
def test_every_span_stays_in_its_clients_session(
    server: Server, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    rows = run_row(server, receiver, tmp_path / "server.log", SCALE.matrix_users)
    for stack, row in rows.items():
        figures = {k: v for k, v in row.items() if k != "failures"}
        record("matrix", f"{server.name} / {stack}", **figures, cannot=server.note or "-")
        print(f"\n{server.name} / {stack}: {row}")
    assert_isolated(server, rows)
