"""A request starts clean, whatever context the server hands over.

uvicorn pauses reading a connection while a request's large body waits, and
the request's ``receive()`` resumes it: asyncio registers the socket reader
in that request's context, and the next request on the connection starts
there. A pipelined request is started from inside the previous response's
last ``send()``. Both hand one person's request the context of another's.
(``tests/connection_reuse.py`` says what a round sends; ``make reliability``
runs the same rounds on every ASGI server.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiSessions
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiSessions
from tests.connection_reuse import STACKS, AllStacks, send_round, spans_astray
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_uvicorn

#: uvicorn as ``pip install uvicorn`` runs it (asyncio, h11 or httptools), and with uvloop.
UVICORN = {
    "asyncio-h11": {"loop": "asyncio", "http": "h11"},
    "asyncio-httptools": {"loop": "asyncio", "http": "httptools"},
    "uvloop-h11": {"loop": "uvloop", "http": "h11"},
    "uvloop-httptools": {"loop": "uvloop", "http": "httptools"},
}
ROUNDS = 3


@pytest.fixture(params=sorted(UVICORN))
def served(request: pytest.FixtureRequest, tracing: OTLPReceiver) -> Iterator[str]:
    with run_uvicorn(AllStacks(), **UVICORN[request.param]) as base:
        yield base


@pytest.mark.parametrize("pipelined", [False, True], ids=["keep-alive", "pipelined"])
def test_a_request_never_starts_inside_an_earlier_request_on_its_connection(
    served: str, tracing: OTLPReceiver, pipelined: bool
) -> None:
    rounds = [
        send_round(served, stack, index, pipelined=pipelined)
        for stack in STACKS
        for index in range(ROUNDS)
    ]
    seen: Counter[str] = sum((one.requests_seen() for one in rounds), Counter())
    assert seen == Counter(rounds=len(rounds))

    assert neatlogs_web.flush(10)
    expected = 3 * len(rounds)
    spans = tracing.wait_for(lambda got: sum("round" in s.attributes for s in got) >= expected)
    assert +spans_astray(spans, rounds) == Counter()


def _app_seeing_the_session(seen: list[str | None]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(neatlogs_web.current_session_id())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}


def test_excluded_paths_and_preflights_bind_no_session_over_an_inherited_one() -> None:
    seen: list[str | None] = []
    app = AsgiSessions(_app_seeing_the_session(seen), secret_key="k", exclude_paths=["/healthz"])

    async def requests() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # A context some earlier request left behind, as a server may hand it over.
            with neatlogs_web.session("someone-else"):
                await client.get("/healthz")
                await client.options("/chat", headers=PREFLIGHT)

    asyncio.run(requests())
    assert seen == [None, None]


def test_wsgi_excluded_paths_and_preflights_bind_no_session_over_an_inherited_one() -> None:
    flask_app = Flask(__name__)
    seen: list[str | None] = []

    @flask_app.route("/healthz", methods=["GET"])
    @flask_app.route("/chat", methods=["OPTIONS"])
    def note() -> tuple[str, int]:
        seen.append(neatlogs_web.current_session_id())
        return "", 204

    flask_app.wsgi_app = WsgiSessions(  # type: ignore[method-assign]
        flask_app.wsgi_app, secret_key="k", exclude_paths=["/healthz"]
    )
    client = flask_app.test_client()
    with neatlogs_web.session("someone-else"):
        client.get("/healthz")
        client.options("/chat", headers=PREFLIGHT)
    assert seen == [None, None]
