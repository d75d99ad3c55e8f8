"""A conversation id in a request binds only where the app would serve it.

Pre-routing binding trusts the URL: a request that no route serves (404) or
that the app refuses (403) must not write spans into the conversation it
names. Templates match whole paths; with ``conversation_binding="when_confirmed"``
the conversation binds only once the app calls ``confirm_conversation(id)``
with the id it checked. A request whose copies of the id disagree (a repeated
query parameter or header, a path and a body) names no conversation: on real
servers, under each framework's own reading of it, the victim's conversation
receives nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Header
from pydantic import BaseModel

import neatlogs_web
from tests.conversation_attacks import (
    ATTACKER,
    CONVERSATION_HEADER,
    FIELD,
    OPTIONS,
    OWNER_HEADER,
    VICTIM,
    assert_the_victim_received_nothing,
    authorize_and_chat,
)
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_uvicorn, run_waitress
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
    neatlogs_web.confirm_conversation(conversation_id)
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
        assert neatlogs_web.confirm_conversation("kept") is None
        assert neatlogs_web.current_session_id() == "kept"


def starlette_chat(**options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    async def chat(request: Request) -> JSONResponse:
        is_json = request.headers.get("content-type") == "application/json"
        body = await request.json() if is_json else {}
        checked = (
            body.get(FIELD)
            or request.query_params.get(FIELD)  # a repeated parameter's last value
            or request.headers.get(CONVERSATION_HEADER)  # a repeated header's first line
        )
        return JSONResponse(*authorize_and_chat(checked, request.headers.get(OWNER_HEADER)))

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"])])
    app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET, **options)
    return app


class Message(BaseModel):
    """A chat message's body, as FastAPI parses it (defined here: FastAPI resolves
    the endpoint's annotations in this module)."""

    conversation_id: str | None = None


def fastapi_chat(**options: Any) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    app = FastAPI()

    @app.post("/chat")
    async def chat(
        message: Message | None = None,
        conversation_id: str | None = None,
        x_conversation_id: Annotated[str | None, Header()] = None,
        x_owner: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        checked = (message and message.conversation_id) or conversation_id or x_conversation_id
        content, status = authorize_and_chat(checked, x_owner)
        return JSONResponse(content, status)

    app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET, **options)
    return app


def flask_chat(**options: Any) -> Any:
    from flask import Flask, Response, jsonify, request

    from neatlogs_web.wsgi import NeatlogsSessionMiddleware

    app = Flask(__name__)

    @app.post("/chat")
    def chat() -> tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        checked = (
            body.get(FIELD)
            or request.args.get(FIELD)  # a repeated parameter's first value
            or request.headers.get(CONVERSATION_HEADER)  # the server joined a repeated header
        )
        content, status = authorize_and_chat(checked, request.headers.get(OWNER_HEADER))
        return jsonify(content), status

    return NeatlogsSessionMiddleware(app.wsgi_app, secret_key=SECRET, **options)


STACKS = {
    "starlette-uvicorn": lambda: run_uvicorn(starlette_chat(**OPTIONS)),
    "fastapi-uvicorn": lambda: run_uvicorn(fastapi_chat(**OPTIONS)),
    "flask-waitress": lambda: run_waitress(flask_chat(**OPTIONS)),
}


@pytest.mark.parametrize("stack", list(STACKS))
def test_a_request_naming_two_conversations_never_writes_into_the_victims(
    stack: str, tracing: OTLPReceiver
) -> None:
    with STACKS[stack]() as base:
        assert_the_victim_received_nothing(base, tracing)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_on_arrival_a_request_naming_two_conversations_binds_neither(kind: str) -> None:
    """Without confirmation the conversation binds on arrival: one that the
    request names twice, differently, binds neither id, and is counted."""
    from tests.apps import make_asgi_app, make_wsgi_app

    options = {"conversation_query": FIELD, "conversation_header": CONVERSATION_HEADER}
    run = (
        run_uvicorn(make_asgi_app(**options))
        if kind == "asgi"
        else run_waitress(make_wsgi_app(**options))
    )
    header = CONVERSATION_HEADER
    requests: dict[str, tuple[str, str, dict[str, Any]]] = {
        "two_query_values": ("GET", "/whoami", {"params": [(FIELD, "conv-a"), (FIELD, "conv-b")]}),
        "two_headers": ("GET", "/whoami", {"headers": [(header, "conv-a"), (header, "conv-b")]}),
        "path_and_query": ("POST", "/chat/conv-a", {"params": {FIELD: "conv-b"}}),
        "same_query_twice": ("GET", "/whoami", {"params": [(FIELD, "conv-a"), (FIELD, "conv-a")]}),
        "same_header_twice": (
            "GET",
            "/whoami",
            {"headers": [(header, "conv-a"), (header, "conv-a")]},
        ),
    }
    before = Counter(neatlogs_web.stats()["rejected"])
    with run as base, httpx.Client(base_url=base) as http:
        bound = {
            name: http.request(method, path, **arguments).json()["session_id"]
            for name, (method, path, arguments) in requests.items()
        }
    named = {"conv-a", "conv-b"}
    assert {
        name: session if session in named else "neither" for name, session in bound.items()
    } == {
        "two_query_values": "neither",
        "two_headers": "neither",
        "path_and_query": "neither",
        "same_query_twice": "conv-a",
        "same_header_twice": "conv-a",
    }
    assert Counter(neatlogs_web.stats()["rejected"]) - before == Counter(
        {
            "conversation_query.ambiguous": 1,
            "conversation_header.ambiguous": 1,
            "conversation.ambiguous": 1,
        }
    )


def test_a_view_argument_that_disagrees_with_the_query_names_no_conversation() -> None:
    """The Flask extension keeps the URL's conversation for the view to confirm:
    a query naming another one makes two, and neither is confirmed."""
    from flask import Flask, Response, jsonify, request

    from neatlogs_web.integrations.flask import NeatlogsFlask

    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET

    @app.post("/chat/<conversation_id>")
    def chat(conversation_id: str) -> tuple[Response, int]:
        content, status = authorize_and_chat(conversation_id, request.headers.get(OWNER_HEADER))
        return jsonify(content), status

    NeatlogsFlask(app, conversation_query=FIELD, conversation_binding="when_confirmed")
    before = Counter(neatlogs_web.stats()["rejected"])
    with run_waitress(app) as base, httpx.Client(headers={OWNER_HEADER: ATTACKER}) as http:
        twice = http.post(f"{base}/chat/{ATTACKER}", params={FIELD: VICTIM}).json()
        once = http.post(f"{base}/chat/{ATTACKER}", params={FIELD: ATTACKER}).json()
    assert twice["confirmed"] is None and twice["session"] not in (ATTACKER, VICTIM)
    assert once == {"checked": ATTACKER, "confirmed": ATTACKER, "session": ATTACKER}
    assert Counter(neatlogs_web.stats()["rejected"]) - before == Counter(
        {"bind_conversation.ambiguous": 1, "confirm_conversation.none_named": 1}
    )
