"""The real neatlogs SDK, exporting to a real receiver, inside our middleware.

The app traces only with the SDK (``neatlogs.init()`` and ``neatlogs.trace()``),
as an existing neatlogs user's app does; the bridge gives each request's
neatlogs roots that request's session and end user, on uvicorn and waitress.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import neatlogs
import pytest
from flask import Flask, Response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiMiddleware
from neatlogs_web.integrations.neatlogs import (
    NeatlogsIdentityMiddleware,
    NeatlogsIdentityWSGIMiddleware,
    tracer_provider,
)
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiMiddleware
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import run_uvicorn, run_waitress

PATHS = ["/chat/{conversation_id}"]
CONVERSATIONS = [f"conv-{i}" for i in range(6)]


def end_user_from_header(request: Any) -> str | None:
    headers = request.get("headers") if isinstance(request, dict) else None
    if headers is not None:  # ASGI scope
        return next((v.decode() for k, v in headers if k == b"x-user"), None)
    return request.get("HTTP_X_USER")  # type: ignore[no-any-return]


@pytest.fixture
def neatlogs_receiver() -> Iterator[OTLPReceiver]:
    """The SDK's own pipeline, pointed at a receiver on 127.0.0.1."""
    with OTLPReceiver() as receiver:
        neatlogs.init(
            api_key="test-key",
            endpoint=receiver.url,
            workflow_name="bridge-test",
            flush_interval=0.05,
            register_shutdown_handlers=False,
        )
        try:
            yield receiver
        finally:
            neatlogs.shutdown()


def asgi_app() -> Any:
    async def chat(request: Request) -> StreamingResponse:
        conversation = request.path_params["conversation_id"]

        async def body() -> Any:
            with neatlogs.trace("streamed", kind="CHAIN", conversation=conversation):
                yield "ok"

        with neatlogs.trace("turn", kind="AGENT", conversation=conversation):
            pass
        return StreamingResponse(body())

    async def health(request: Request) -> PlainTextResponse:
        with neatlogs.trace("health", kind="CHAIN", conversation="-"):
            return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/chat/{conversation_id}", chat), Route("/healthz", health)])
    app.add_middleware(NeatlogsIdentityMiddleware)
    app.add_middleware(
        AsgiMiddleware,
        secret_key="k",
        conversation_paths=PATHS,
        exclude_paths=["/healthz"],
        end_user=end_user_from_header,
    )
    return app


def wsgi_app() -> Any:
    app = Flask(__name__)

    @app.get("/chat/<conversation_id>")
    def chat(conversation_id: str) -> Response:
        def body() -> Iterator[str]:
            with neatlogs.trace("streamed", kind="CHAIN", conversation=conversation_id):
                yield "ok"

        with neatlogs.trace("turn", kind="AGENT", conversation=conversation_id):
            pass
        return Response(body())

    @app.get("/healthz")
    def health() -> str:
        with neatlogs.trace("health", kind="CHAIN", conversation="-"):
            return "ok"

    return WsgiMiddleware(
        NeatlogsIdentityWSGIMiddleware(app.wsgi_app),
        secret_key="k",
        conversation_paths=PATHS,
        exclude_paths=["/healthz"],
        end_user=end_user_from_header,
    )


def roots(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == "" and "conversation" in s.attributes]


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_neatlogs_roots_get_each_requests_session_and_end_user(
    kind: str, neatlogs_receiver: OTLPReceiver
) -> None:
    server = run_uvicorn(asgi_app()) if kind == "asgi" else run_waitress(wsgi_app())
    with server as base, ThreadPoolExecutor(max_workers=len(CONVERSATIONS)) as clients:

        def chat(index: int) -> str:
            url = f"{base}/chat/{CONVERSATIONS[index]}"
            return httpx.get(url, headers={"x-user": f"user-{index}"}).text

        assert list(clients.map(chat, range(len(CONVERSATIONS)))) == ["ok"] * len(CONVERSATIONS)
        assert httpx.get(f"{base}/healthz").text == "ok"
    neatlogs.flush()
    expected = 2 * len(CONVERSATIONS) + 1
    spans = roots(neatlogs_receiver.wait_for(lambda s: len(roots(s)) >= expected))
    assert len(spans) == expected
    assert all(s.resource["service.name"] == "bridge-test" for s in spans)
    for span in spans:
        conversation = span.attributes["conversation"]
        if conversation == "-":
            # Excluded paths bind no session: neatlogs gets no identity either.
            assert "neatlogs.session.id" not in span.attributes
            continue
        assert span.attributes["neatlogs.session.id"] == conversation, span.name
        index = CONVERSATIONS.index(conversation)
        assert span.attributes["neatlogs.end_user.id"] == f"user-{index}", span.name


# --- Late binding: the conversation is known only after routing. ---

ROOMS = [f"room-{i}" for i in range(4)]


def rebinding_asgi_app(identity: bool) -> Any:
    async def chat(request: Request) -> StreamingResponse:
        room = request.path_params["room"]
        assert neatlogs_web.bind_session(room, end_user_id=f"user-of-{room}")

        async def body() -> Any:
            with neatlogs.trace("streamed", kind="CHAIN", conversation=room):
                yield "ok"

        with neatlogs.trace("turn", kind="AGENT", conversation=room):
            pass
        return StreamingResponse(body())

    app = Starlette(routes=[Route("/rooms/{room}", chat)])
    if identity:
        app.add_middleware(NeatlogsIdentityMiddleware)
    app.add_middleware(AsgiMiddleware, secret_key="k")
    return app


def rebinding_wsgi_app(identity: bool) -> Any:
    app = Flask(__name__)

    @app.get("/rooms/<room>")
    def chat(room: str) -> Response:
        assert neatlogs_web.bind_session(room, end_user_id=f"user-of-{room}")

        def body() -> Iterator[str]:
            with neatlogs.trace("streamed", kind="CHAIN", conversation=room):
                yield "ok"

        with neatlogs.trace("turn", kind="AGENT", conversation=room):
            pass
        return Response(body())

    inner = NeatlogsIdentityWSGIMiddleware(app.wsgi_app) if identity else app.wsgi_app
    return WsgiMiddleware(inner, secret_key="k")


@pytest.fixture
def stamped_neatlogs_receiver() -> Iterator[OTLPReceiver]:
    """The SDK's pipeline on the provider of the bridge, pointed at a receiver."""
    with OTLPReceiver() as receiver:
        neatlogs.init(
            api_key="test-key",
            endpoint=receiver.url,
            workflow_name="bridge-test",
            flush_interval=0.05,
            register_shutdown_handlers=False,
            tracer_provider=tracer_provider(),
        )
        try:
            yield receiver
        finally:
            neatlogs.shutdown()


def rebind_over(kind: str, identity: bool) -> Any:
    app = rebinding_asgi_app(identity) if kind == "asgi" else rebinding_wsgi_app(identity)
    server = run_uvicorn(app) if kind == "asgi" else run_waitress(app)
    with server as base, ThreadPoolExecutor(max_workers=len(ROOMS)) as clients:

        def chat(room: str) -> str:
            return httpx.get(f"{base}/rooms/{room}").text

        assert list(clients.map(chat, ROOMS)) == ["ok"] * len(ROOMS)
    neatlogs.flush()


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_bind_session_after_routing_reaches_the_sdks_spans_through_its_provider(
    kind: str, stamped_neatlogs_receiver: OTLPReceiver
) -> None:
    rebind_over(kind, identity=False)
    expected = 2 * len(ROOMS)
    spans = roots(stamped_neatlogs_receiver.wait_for(lambda s: len(roots(s)) >= expected))
    assert sorted(s.name for s in spans) == sorted(["turn", "streamed"] * len(ROOMS))
    for span in spans:
        room = span.attributes["conversation"]
        assert span.attributes["neatlogs.session.id"] == room, span.name
        assert span.attributes["neatlogs.end_user.id"] == f"user-of-{room}", span.name
        # Only the neatlogs SDK's keys: toward its backend, never user.id or session.id.
        assert "session.id" not in span.attributes
        assert "user.id" not in span.attributes


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_identify_holds_the_session_resolved_before_the_app_ran(
    kind: str, neatlogs_receiver: OTLPReceiver
) -> None:
    """The limit the provider lifts: identify() values are fixed per request."""
    rebind_over(kind, identity=True)
    expected = 2 * len(ROOMS)
    spans = roots(neatlogs_receiver.wait_for(lambda s: len(roots(s)) >= expected))
    assert len(spans) == expected
    for span in spans:
        assert span.attributes["neatlogs.session.id"] != span.attributes["conversation"]
