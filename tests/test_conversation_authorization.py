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

import json
from collections import Counter
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Header, Query
from fastapi import Request as FastAPIRequest
from pydantic import BaseModel

import neatlogs_web
from tests.apps import TracedRequests
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
from tests.pipeline import spans_after_flush
from tests.servers import run_uvicorn, run_waitress

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

    app = Starlette(routes=[Route("/chat/{conversation_id}", chat, methods=["POST"])])
    # An app middleware that traces every request, routed or not.
    app.add_middleware(
        TracedRequests, name="audit", arguments=lambda scope: {"path": scope["path"]}
    )
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


def test_confirm_conversation_without_one_changes_nothing() -> None:
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


# -- every copy the app can read is a copy the middleware reads --------------

ON_ARRIVAL = {
    "conversation_paths": ["/chat/{conversation_id}"],
    "conversation_query": FIELD,
    "conversation_json_field": FIELD,
}
ATTACKER_JSON = json.dumps({FIELD: ATTACKER})
JSON_TYPE = "application/json"
#: A request for the victim's path (method, query, content type, body) whose
#: other copy, the attacker's, every framework hands the app.
COPIES_ONLY_THE_APP_READ: dict[str, tuple[str, str, str | None, bytes]] = {
    "query_key_with_an_encoded_underscore": ("GET", f"conversation%5Fid={ATTACKER}", None, b""),
    "query_key_with_an_encoded_letter": ("GET", f"%63onversation_id={ATTACKER}", None, b""),
    "json_without_a_content_type": ("POST", "", None, ATTACKER_JSON.encode()),
    "json_as_text_plain": ("POST", "", "text/plain", ATTACKER_JSON.encode()),
    "json_on_delete": ("DELETE", "", JSON_TYPE, ATTACKER_JSON.encode()),
    "json_with_a_bom": ("POST", "", JSON_TYPE, b"\xef\xbb\xbf" + ATTACKER_JSON.encode()),
    "json_in_utf_16": ("POST", "", JSON_TYPE, ATTACKER_JSON.encode("utf-16")),
    "json_in_utf_32": ("POST", "", JSON_TYPE, ATTACKER_JSON.encode("utf-32")),
    "json_over_the_read_limit": (
        "POST",
        "",
        JSON_TYPE,
        json.dumps({"pad": "x" * 70_000, FIELD: ATTACKER}).encode(),
    ),
}


def _copy_read(body: object, query: str | None) -> dict[str, str | None]:
    """What the app's handler answers: the copy it read, and the session bound."""
    named = body.get(FIELD) if isinstance(body, dict) else None
    return {"read": named or query, "session": neatlogs_web.current_session_id()}


def starlette_reading_any_copy() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    async def chat(request: Request) -> JSONResponse:
        try:
            body = await request.json()  # whatever the content type says
        except ValueError:
            body = None
        return JSONResponse(_copy_read(body, request.query_params.get(FIELD)))

    routes = [Route("/chat/{conversation_id}", chat, methods=["GET", "POST", "DELETE"])]
    app = Starlette(routes=routes)
    app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET, **ON_ARRIVAL)
    return app


def fastapi_reading_any_copy() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    app = FastAPI()

    @app.api_route("/chat/{conversation_id}", methods=["GET", "POST", "DELETE"])
    async def chat(
        conversation_id: str,
        request: FastAPIRequest,
        query: Annotated[str | None, Query(alias=FIELD)] = None,
    ) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        return JSONResponse(_copy_read(body, query))

    app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET, **ON_ARRIVAL)
    return app


def flask_reading_any_copy() -> Any:
    from flask import Flask, Response, jsonify, request

    from neatlogs_web.wsgi import NeatlogsSessionMiddleware

    app = Flask(__name__)

    @app.route("/chat/<conversation_id>", methods=["GET", "POST", "DELETE"])
    def chat(conversation_id: str) -> Response:
        body = request.get_json(force=True, silent=True)  # whatever the content type says
        return jsonify(_copy_read(body, request.args.get(FIELD)))

    return NeatlogsSessionMiddleware(app.wsgi_app, secret_key=SECRET, **ON_ARRIVAL)


READING_ANY_COPY = {
    "starlette-uvicorn": lambda: run_uvicorn(starlette_reading_any_copy()),
    "fastapi-uvicorn": lambda: run_uvicorn(fastapi_reading_any_copy()),
    "flask-waitress": lambda: run_waitress(flask_reading_any_copy()),
}


@pytest.mark.parametrize("stack", list(READING_ANY_COPY))
def test_on_arrival_a_copy_only_the_app_could_read_binds_no_conversation(stack: str) -> None:
    """The app reads the attacker's copy (a percent-encoded query key, a JSON body
    of any type, method or encoding, or one too large to read first) while the
    path names the victim's: the request binds neither, and is counted."""
    before = Counter(neatlogs_web.stats()["rejected"])
    with READING_ANY_COPY[stack]() as base, httpx.Client(base_url=base, timeout=20) as http:
        answers = {}
        for name, (method, query, content_type, body) in COPIES_ONLY_THE_APP_READ.items():
            headers = {} if content_type is None else {"content-type": content_type}
            url = f"/chat/{VICTIM}" + (f"?{query}" if query else "")
            answers[name] = http.request(method, url, headers=headers, content=body).json()
    assert {name: answer["read"] for name, answer in answers.items()} == dict.fromkeys(
        COPIES_ONLY_THE_APP_READ, ATTACKER
    )
    named = {VICTIM, ATTACKER}
    assert {
        name: answer["session"] if answer["session"] in named else "neither"
        for name, answer in answers.items()
    } == dict.fromkeys(COPIES_ONLY_THE_APP_READ, "neither")
    assert Counter(neatlogs_web.stats()["rejected"]) - before == Counter(
        {
            "conversation.ambiguous": len(COPIES_ONLY_THE_APP_READ) - 1,
            "conversation_json.oversized": 1,
            "conversation.unread_body": 1,
        }
    )


# -- a WebSocket message's conversation waits for the app, too ---------------


def websocket_chat_confirming() -> Any:
    """Each message names its conversation; the app serves only the owner's."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    from neatlogs_web.asgi import NeatlogsSessionMiddleware
    from neatlogs_web.integrations.websockets import message_session

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        owner = websocket.headers.get(OWNER_HEADER)
        async for message in websocket.iter_json():
            named = message.get(FIELD)
            with message_session(named):
                confirmed = neatlogs_web.confirm_conversation(named) if named == owner else None
                with neatlogs_web.trace("ws_turn", named=named):
                    session = neatlogs_web.current_session_id()
                await websocket.send_json({"confirmed": confirmed, "session": session})

    app = Starlette(routes=[WebSocketRoute("/ws", chat)])
    app.add_middleware(
        NeatlogsSessionMiddleware,
        secret_key=SECRET,
        conversation_query=FIELD,
        conversation_binding="when_confirmed",
    )
    return app


def test_when_confirmed_a_websocket_message_binds_only_a_conversation_the_app_confirmed(
    tracing: OTLPReceiver,
) -> None:
    from websockets.sync.client import connect

    with run_uvicorn(websocket_chat_confirming()) as base:
        url = base.replace("http://", "ws://") + "/ws"
        with connect(url, additional_headers={OWNER_HEADER: ATTACKER}) as socket:
            answers = []
            for named in (VICTIM, ATTACKER, VICTIM):
                socket.send(json.dumps({FIELD: named}))
                answers.append(json.loads(socket.recv(timeout=20)))
    connection = answers[0]["session"]
    assert connection not in (VICTIM, ATTACKER)
    assert answers == [
        {"confirmed": None, "session": connection},
        {"confirmed": ATTACKER, "session": ATTACKER},
        {"confirmed": None, "session": connection},
    ]
    spans = spans_after_flush(tracing, 3)
    assert sorted(
        (span.attributes["named"], span.attributes["session.id"]) for span in spans
    ) == sorted([(VICTIM, connection), (ATTACKER, ATTACKER), (VICTIM, connection)])
