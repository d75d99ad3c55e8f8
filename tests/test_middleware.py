"""Both middlewares, driven in-process through the same app and assertions.

Each test runs against the Starlette (ASGI) and the Flask (WSGI) app; the
spans they produce are exported to a real OTLP receiver and decoded.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

import neatlogs_web
from neatlogs_web._session.signing import SessionSigner
from tests.apps import (
    HEADER,
    SECRET,
    client_for,
    cookie_of,
    json_body,
    make_asgi_app,
    make_wsgi_app,
)
from tests.otlp_receiver import OTLPReceiver
from tests.pipeline import reset_global_tracer_provider, spans_after_flush
from tests.tokens import make_token, session_of


@pytest.fixture
def client(kind: str) -> Iterator[httpx.Client]:
    with client_for(kind) as http:
        yield http


def test_new_visitor_gets_a_session_cookie_and_token(
    client: httpx.Client, tracing: OTLPReceiver
) -> None:
    response = client.get("/whoami")
    assert response.status_code == 200
    session_id = json_body(response)["session_id"]
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("neatlogs_session=")
    for flag in ("HttpOnly", "SameSite=Lax", "Path=/", f"Max-Age={14 * 24 * 3600}"):
        assert flag in set_cookie
    assert "Secure" not in set_cookie
    assert "Cookie" in response.headers["vary"]
    assert session_of(response.headers[HEADER]) == session_id
    assert session_of(cookie_of(response)) == session_id
    (turn,) = spans_after_flush(tracing, 1)
    assert turn.attributes["session.id"] == session_id
    assert turn.attributes["neatlogs.session.id"] == session_id


def test_returning_visitor_keeps_session_without_new_cookie(client: httpx.Client) -> None:
    first = client.get("/whoami")
    second = client.get("/whoami")  # the client's cookie jar sends the cookie back
    assert json_body(second)["session_id"] == json_body(first)["session_id"]
    assert "set-cookie" not in second.headers
    assert HEADER not in second.headers


def test_https_cookie_is_secure(kind: str) -> None:
    with client_for(kind, base_url="https://testserver") as http:
        assert "Secure" in http.get("/whoami").headers["set-cookie"]


def test_signed_header_token_selects_the_session(client: httpx.Client) -> None:
    token = make_token("from-header", SECRET)
    response = client.get("/whoami", headers={HEADER: token})
    assert json_body(response)["session_id"] == "from-header"
    assert "set-cookie" not in response.headers


def test_plain_header_is_ignored_unless_trusted(kind: str) -> None:
    with client_for(kind) as http:
        response = http.get("/whoami", headers={HEADER: "plain-id"})
        assert json_body(response)["session_id"] != "plain-id"
        assert "set-cookie" in response.headers
    with client_for(kind, trust_plain_header=True) as http:
        response = http.get("/whoami", headers={HEADER: "plain-id"})
        assert json_body(response)["session_id"] == "plain-id"


def test_conversation_path_is_the_session(client: httpx.Client, tracing: OTLPReceiver) -> None:
    cookie_session = json_body(client.get("/whoami"))["session_id"]
    response = client.post("/chat/conv-7")
    assert json_body(response)["session_id"] == "conv-7"
    assert "set-cookie" not in response.headers
    spans = spans_after_flush(tracing, 2)
    assert sorted(s.attributes["session.id"] for s in spans) == sorted([cookie_session, "conv-7"])


def test_conversation_json_field_is_read_and_body_replayed(
    client: httpx.Client, tracing: OTLPReceiver
) -> None:
    payload = b'{"conversation_id": "conv-json", "message": "hello"}'
    response = client.post("/json", content=payload, headers={"content-type": "application/json"})
    body = json_body(response)
    assert body["session_id"] == "conv-json"
    assert body["body_length"] == str(len(payload))
    (turn,) = spans_after_flush(tracing, 1)
    assert (turn.name, turn.attributes["session.id"]) == ("turn", "conv-json")


def test_excluded_paths_bind_nothing_and_set_no_cookie(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert json_body(response)["session_id"] is None
    assert "set-cookie" not in response.headers


def test_streamed_body_keeps_the_session(client: httpx.Client, tracing: OTLPReceiver) -> None:
    with client.stream("GET", "/stream") as response:
        lines = [line for line in response.iter_lines() if line]
        session_id = session_of(response.headers[HEADER])
    assert lines == [session_id] * 3
    spans = spans_after_flush(tracing, 3)
    chunk_spans = [s for s in spans if s.name.startswith("chunk")]
    assert len(chunk_spans) == 3
    assert {s.attributes["session.id"] for s in chunk_spans} == {session_id}


def test_exception_in_handler_is_a_500_and_the_binding_is_restored(
    client: httpx.Client, tracing: OTLPReceiver
) -> None:
    first = client.get("/fail")
    assert first.status_code == 500
    # WSGI runs in this thread here: the binding must be gone after the error.
    assert neatlogs_web.current_session_id() is None
    spans = spans_after_flush(tracing, 1)
    assert spans[0].name == "failing" and spans[0].status_code == 2
    assert "session.id" in spans[0].attributes


def test_applied_twice_binds_once(kind: str) -> None:
    from neatlogs_web.asgi import NeatlogsSessionMiddleware as Asgi
    from neatlogs_web.wsgi import NeatlogsSessionMiddleware as Wsgi

    if kind == "asgi":
        http: httpx.Client = TestClient(Asgi(make_asgi_app(), secret_key=SECRET))
    else:
        http = httpx.Client(
            transport=httpx.WSGITransport(app=Wsgi(make_wsgi_app(), secret_key=SECRET)),
            base_url="http://testserver",
        )
    with http:
        response = http.get("/whoami")
    assert len(response.headers.get_list("set-cookie")) == 1


@pytest.mark.parametrize(
    ("api_key", "user_keys"),
    [(None, {"neatlogs.end_user.id", "user.id"}), ("key", {"neatlogs.end_user.id"})],
    ids=["otlp", "neatlogs-backend"],
)
def test_end_user_callable_stamps_end_user_id(
    kind: str, api_key: str | None, user_keys: set[str], receiver: OTLPReceiver
) -> None:
    """``user.id`` feeds Phoenix's and OpenTelemetry's user fields, but the neatlogs
    backend reads it as the operator: toward it, only ``neatlogs.end_user.id``."""
    reset_global_tracer_provider()
    neatlogs_web.init(api_key, receiver.url, schedule_delay_ms=20, flush_on_sigterm=False)

    def end_user(request: Any) -> str | None:
        headers = dict(request["headers"]) if kind == "asgi" else None
        if headers is not None:
            value = headers.get(b"x-user")
            return value.decode() if value else None
        return request.get("HTTP_X_USER")

    with client_for(kind, end_user=end_user) as http:
        http.get("/whoami", headers={"x-user": "user-9"})
    neatlogs_web.flush()
    spans = receiver.wait_for(lambda spans: any(s.name == "turn" for s in spans))
    (turn,) = [s for s in spans if s.name == "turn"]
    stamped = {key for key, value in turn.attributes.items() if value == "user-9"}
    assert stamped == user_keys
    reset_global_tracer_provider()


def test_key_rotation_old_key_verifies_and_is_resigned(kind: str) -> None:
    old_token = make_token("rotated", "old-key")
    with client_for(kind, secret_key=[SECRET, "old-key"]) as http:
        response = http.get("/whoami", headers={"cookie": f"neatlogs_session={old_token}"})
        assert json_body(response)["session_id"] == "rotated"
        fresh = cookie_of(response)
        assert session_of(fresh) == "rotated" and fresh != old_token
        # Re-signed with the first key, which alone verifies it now.
        assert SessionSigner([SECRET.encode()]).verify(fresh) is not None
        assert json_body(http.get("/whoami"))["session_id"] == "rotated"


def test_removed_key_is_rejected(kind: str) -> None:
    old_token = make_token("rotated", "old-key")
    before = neatlogs_web.stats()["rejected"].get("cookie.bad_signature", 0)
    with client_for(kind) as http:
        response = http.get("/whoami", headers={"cookie": f"neatlogs_session={old_token}"})
    assert json_body(response)["session_id"] != "rotated"
    assert neatlogs_web.stats()["rejected"]["cookie.bad_signature"] == before + 1


def _wsgi_body_app(body: Any) -> Any:
    from neatlogs_web.wsgi import NeatlogsSessionMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body(environ) if callable(body) else body

    return NeatlogsSessionMiddleware(app, secret_key=SECRET)


def _wsgi_call(app: Any, environ: dict[str, Any] | None = None) -> Any:
    from werkzeug.test import EnvironBuilder

    request_environ = EnvironBuilder(
        path="/", headers={"Cookie": f"neatlogs_session={make_token('wsgi-body', SECRET)}"}
    ).get_environ()
    request_environ.update(environ or {})
    return app(request_environ, lambda status, headers, exc_info=None: None)


@pytest.mark.parametrize("iterated", [0, 1, 2], ids=["unstarted", "abandoned", "exhausted"])
def test_wsgi_body_close_runs_once_in_the_session_however_far_the_server_read(
    iterated: int,
) -> None:
    from tests.apps import ClosingBody

    ClosingBody.closed_with.clear()
    result = _wsgi_call(_wsgi_body_app(ClosingBody([b"a:", b"b:"])))
    chunks = iter(result)
    read = [next(chunks) for _ in range(iterated)]
    if iterated == 2:
        assert next(chunks, None) is None
    # The app's close() waits for the server's: the response is complete only then.
    assert ClosingBody.closed_with == []
    result.close()
    result.close()  # a second close() must not reach the app again

    assert read == [b"a:wsgi-body\n", b"b:wsgi-body\n"][:iterated]
    assert ClosingBody.closed_with == ["wsgi-body"]
    assert neatlogs_web.current_session_id() is None


def test_wsgi_file_wrapper_and_plain_lists_reach_the_server_unwrapped() -> None:
    from wsgiref.util import FileWrapper

    class ChunkedFileWrapper(FileWrapper):
        """An app's own subclass of the server's wrapper: servers still sendfile() it."""

    for wrapper_class in (FileWrapper, ChunkedFileWrapper):
        app = _wsgi_body_app(lambda environ, cls=wrapper_class: cls(io.BytesIO(b"file")))
        wrapped = _wsgi_call(app, {"wsgi.file_wrapper": FileWrapper})
        assert type(wrapped) is wrapper_class
        wrapped.close()

    listed = [b"listed"]
    assert _wsgi_call(_wsgi_body_app(listed)) is listed


@pytest.mark.parametrize(
    "headers",
    [
        [(b"cookie", b"theme=dark"), (b"cookie", b"neatlogs_session={token}")],
        [(b"accept", b"text/html"), (b"accept", b"*/*"), (b"cookie", b"neatlogs_session={token}")],
        [(b"cookie", b"neatlogs_session={token}")],
    ],
    ids=["two_cookie_headers", "repeated_other_header", "one_cookie_header"],
)
def test_asgi_cookie_is_found_however_the_headers_repeat(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """HTTP/2 may split cookies over several headers; the session is found each time,
    on the first request and on the returning ones."""
    import asyncio

    app = make_asgi_app(conversation_json_field=None, conversation_paths=())
    token = make_token("repeated-headers", SECRET).encode()
    scope_headers = [(name, value.replace(b"{token}", token)) for name, value in headers]

    async def whoami() -> dict[str, Any]:
        body = bytearray()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            body.extend(message.get("body", b""))

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "2",
            "method": "GET",
            "scheme": "http",
            "path": "/whoami",
            "raw_path": b"/whoami",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *scope_headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        await app(scope, receive, send)
        return dict(json.loads(bytes(body)))

    async def three_requests() -> list[dict[str, Any]]:
        return [await whoami() for _ in range(3)]

    answers = asyncio.run(three_requests())
    assert [answer["session_id"] for answer in answers] == ["repeated-headers"] * 3


def test_a_cors_preflight_binds_nothing_sets_no_cookie_and_echoes_nothing(
    client: httpx.Client,
) -> None:
    preflight = client.options(
        "/whoami",
        headers={
            "origin": "http://127.0.0.1:5173",
            "access-control-request-method": "POST",
            "access-control-request-headers": HEADER,
        },
    )
    assert "set-cookie" not in preflight.headers
    assert HEADER not in preflight.headers


@pytest.mark.parametrize("cors_outside", [True, False], ids=["cors-outside", "cors-inside"])
def test_a_preflight_never_starts_a_session_whatever_the_middleware_order(
    cors_outside: bool, tracing: OTLPReceiver
) -> None:
    from starlette.applications import Starlette
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    async def chat(request: Request) -> PlainTextResponse:
        with neatlogs_web.trace("turn"):
            return PlainTextResponse(neatlogs_web.current_session_id() or "-")

    class TraceEveryRequest:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            with neatlogs_web.trace(f"{scope.get('method')} request"):
                await self.app(scope, receive, send)

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"])])
    cors = {
        "allow_origins": ["http://127.0.0.1:5173"],
        "allow_methods": ["*"],
        "allow_headers": [HEADER],
        "expose_headers": [HEADER],
    }
    if cors_outside:
        app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET)
        app.add_middleware(CORSMiddleware, **cors)
    else:
        app.add_middleware(CORSMiddleware, **cors)
        app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET)
    # Outermost, like a framework's own request span: ours stamps it when it binds.
    app.add_middleware(TraceEveryRequest)
    with TestClient(app) as http:
        for _ in range(3):
            preflight = http.options(
                "/chat",
                headers={
                    "origin": "http://127.0.0.1:5173",
                    "access-control-request-method": "POST",
                    "access-control-request-headers": HEADER,
                },
            )
            assert preflight.status_code == 200
            assert "set-cookie" not in preflight.headers
            assert HEADER not in preflight.headers
        http.post("/chat", headers={"origin": "http://127.0.0.1:5173"})
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda spans: len(spans) >= 5)
    by_name: dict[str, set[str | None]] = {}
    for span in spans:
        by_name.setdefault(span.name, set()).add(span.attributes.get("session.id"))
    assert by_name["OPTIONS request"] == {None}
    (session_id,) = by_name["turn"]
    assert session_id is not None and by_name["POST request"] == {session_id}
