"""A conversation id in a request binds only where the app would serve it.

Pre-routing binding trusts the URL: a request that no route serves (404) or
that the app refuses (403) must not write spans into the conversation it
names. Templates match whole paths; with ``conversation_binding="when_confirmed"``
the conversation binds only once the app calls ``confirm_conversation()``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import neatlogs_web
from tests.otlp_receiver import OTLPReceiver
from tests.test_middleware import spans_after_flush

SECRET = "authorization-test-key"
OWNER = "x-owner"


def asgi_client(**options: Any) -> httpx.Client:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    async def chat(request: Request) -> PlainTextResponse:
        return PlainTextResponse(*_chat(request.path_params["conversation_id"], request.headers))

    class Audit:
        """An app middleware that traces every request, routed or not."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            with neatlogs_web.trace("audit", path=scope["path"]):
                await self.app(scope, receive, send)

    app = Starlette(routes=[Route("/chat/{conversation_id}", chat, methods=["POST"])])
    app.add_middleware(Audit)
    app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET, **options)
    return TestClient(app)


def wsgi_client(**options: Any) -> httpx.Client:
    from flask import Flask, request

    from neatlogs_web.wsgi import NeatlogsSessionMiddleware

    flask_app = Flask(__name__)

    @flask_app.post("/chat/<conversation_id>")
    def chat(conversation_id: str) -> tuple[str, int]:
        return _chat(conversation_id, request.headers)

    def audit(environ: Any, start_response: Any) -> Any:
        with neatlogs_web.trace("audit", path=environ["PATH_INFO"]):
            return list(flask_app.wsgi_app(environ, start_response))

    app = NeatlogsSessionMiddleware(audit, secret_key=SECRET, **options)
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")


def _chat(conversation_id: str, headers: Any) -> tuple[str, int]:
    """Only the conversation's owner may post to it."""
    if headers.get(OWNER) != conversation_id:
        with neatlogs_web.trace("refused"):
            return "forbidden", 403
    neatlogs_web.confirm_conversation()
    with neatlogs_web.trace("turn"):
        return neatlogs_web.current_session_id() or "-", 200


@pytest.fixture(params=["asgi", "wsgi"])
def client_for(request: pytest.FixtureRequest) -> Any:
    return asgi_client if request.param == "asgi" else wsgi_client


TEMPLATE = {"conversation_paths": ["/chat/{conversation_id}"]}


def test_a_template_does_not_match_a_longer_path(client_for: Any, tracing: OTLPReceiver) -> None:
    with client_for(**TEMPLATE) as http:
        assert http.post("/chat/victim/no/such/route").status_code == 404
    (audit,) = spans_after_flush(tracing, 1)
    assert audit.attributes["session.id"] != "victim"


def test_on_arrival_binds_the_conversation_for_the_whole_request(
    client_for: Any, tracing: OTLPReceiver
) -> None:
    """The default, and what SECURITY.md warns about: refused requests write into it too."""
    with client_for(**TEMPLATE) as http:
        assert http.post("/chat/victim").status_code == 403
    spans = spans_after_flush(tracing, 2)
    assert {span.attributes["session.id"] for span in spans} == {"victim"}


def test_when_confirmed_a_refused_request_never_writes_into_the_conversation(
    client_for: Any, tracing: OTLPReceiver
) -> None:
    with client_for(**TEMPLATE, conversation_binding="when_confirmed") as http:
        refused = http.post("/chat/victim")
        allowed = http.post("/chat/mine", headers={OWNER: "mine"})
    assert refused.status_code == 403
    assert (allowed.status_code, allowed.text) == (200, "mine")
    spans = spans_after_flush(tracing, 4)
    by_name = {(span.name, span.attributes.get("path")): span for span in spans}
    assert all(span.attributes["session.id"] != "victim" for span in spans)
    # The refused request is in the browser's own session, as is the allowed one's
    # audit span, which started before the app confirmed the conversation.
    browser = by_name[("audit", "/chat/victim")].attributes["session.id"]
    assert by_name[("refused", None)].attributes["session.id"] == browser
    assert by_name[("turn", None)].attributes["session.id"] == "mine"


def test_confirm_conversation_without_one_changes_nothing(tracing: OTLPReceiver) -> None:
    with neatlogs_web.session("kept"):
        assert neatlogs_web.confirm_conversation() is None
        assert neatlogs_web.current_session_id() == "kept"
