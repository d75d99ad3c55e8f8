"""Fuzzed session input against both middlewares, called directly (ASGI scope, WSGI environ).

Targets: cookie values, session-header values, conversation path segments,
query strings and JSON bodies. For every example: the app is served (no 5xx,
no exception escapes), it sees a valid session and the body it was sent,
the session is the one the input names when that input is valid (and signed
where a signature is required) and a new one otherwise, and no span carries
an unvalidated value. ``make test`` tries a few examples per target;
``make reliability`` tries 10,000 (see ``tests/reliability/scale.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import BadSignature, TimestampSigner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import neatlogs_web
from neatlogs_web._session.ids import is_valid_session_id
from neatlogs_web._session.options import DEFAULT_MAX_AGE
from neatlogs_web._session.signing import SIGNING_SALT
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiSessions
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiSessions
from tests.reliability.report import record
from tests.reliability.scale import SCALE
from tests.tokens import make_token

SECRET = "fuzz-secret"
COOKIE = "neatlogs_session"
HEADER = "x-neatlogs-session-id"
JSON_LIMIT = 512
OPTIONS: dict[str, Any] = {
    "secret_key": SECRET,
    "conversation_paths": ["/chat/{conversation_id}"],
    "conversation_query": "conversation",
    "conversation_json_field": "conversation_id",
    "json_body_limit": JSON_LIMIT,
}


@dataclass
class Request:
    """One fuzzed request; ``expected`` is the session it names, or None for a new one."""

    path: str = "/whoami"
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    expected: str | None = None
    #: The raw value under test: it must reach no span unless it is ``expected``.
    raw: str = ""


@dataclass
class Served:
    status: int
    headers: list[tuple[str, str]]
    session_id: str | None
    body_seen: bytes


# --------------------------------------------------------------------------
# The apps behind the middlewares record what they saw.

_seen: list[tuple[str | None, bytes]] = []


async def inner_asgi(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    with neatlogs_web.trace("turn"):
        _seen.append((neatlogs_web.current_session_id(), body))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def inner_wsgi(environ: Any, start_response: Any) -> Iterator[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    with neatlogs_web.trace("turn"):
        _seen.append((neatlogs_web.current_session_id(), body))
    start_response("200 OK", [])
    return iter([b"ok"])


def served(status: int, headers: list[tuple[str, str]]) -> Served:
    (seen,) = _seen
    _seen.clear()
    return Served(status, headers, *seen)


def call_asgi(app: Any, loop: asyncio.AbstractEventLoop, request: Request) -> Served:
    half = len(request.body) // 2
    chunks = [
        {"type": "http.request", "body": request.body[:half], "more_body": True},
        {"type": "http.request", "body": request.body[half:], "more_body": False},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if request.body else "GET",
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode("utf-8"),
        "query_string": request.query.encode("latin-1"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    loop.run_until_complete(app(scope, receive, send))
    start = sent[0]
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
    return served(start["status"], headers)


def call_wsgi(app: Any, request: Request) -> Served:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST" if request.body else "GET",
        "SCRIPT_NAME": "",
        # WSGI carries the path as latin-1 text of the raw bytes.
        "PATH_INFO": request.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": request.query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    if request.body:
        environ["CONTENT_LENGTH"] = str(len(request.body))
    status: list[str] = []
    headers: list[tuple[str, str]] = []

    def start_response(line: str, response_headers: list[tuple[str, str]], exc: Any = None) -> Any:
        status.append(line)
        headers.extend(response_headers)
        return lambda data: None

    result = app(environ, start_response)
    try:
        b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return served(int(status[0].split()[0]), headers)


# --------------------------------------------------------------------------
# Strategies: each builds a Request and the session it should resolve to.

latin1_text = st.text(st.characters(max_codepoint=0xFF), max_size=300)
ID_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@/+=-"
ids = st.text(ID_CHARACTERS, min_size=1, max_size=128)


def _valid(value: str) -> str | None:
    return value if is_valid_session_id(value) else None


def _verified(token: str) -> str | None:
    """The id a token proves, checked with itsdangerous itself, not with our code."""
    signer = TimestampSigner(SECRET, salt=SIGNING_SALT, digest_method=hashlib.sha256)
    try:
        value = signer.unsign(token, max_age=DEFAULT_MAX_AGE).decode("ascii")
    except (BadSignature, UnicodeError):
        return None
    return _valid(value)


@st.composite
def tokens(draw: st.DrawFn) -> tuple[str, str | None]:
    """A cookie or header token and the session it proves, or None if it proves none."""
    session_id = draw(ids)
    kind = draw(st.sampled_from(["ours", "other_key", "tampered", "expired", "junk", "plain"]))
    if kind == "ours":
        return make_token(session_id, SECRET), session_id
    if kind == "other_key":
        return make_token(session_id, draw(st.text(min_size=1, max_size=20))), None
    if kind == "tampered":
        token = make_token(session_id, SECRET)
        at = draw(st.integers(0, len(token) - 1))
        replacement = draw(st.characters(max_codepoint=0xFF).filter(lambda c: c != token[at]))
        tampered = token[:at] + replacement + token[at + 1 :]
        # Base64 ignores the low bits of a last character: some edits change nothing.
        return tampered, _verified(tampered)
    if kind == "expired":
        return make_token(session_id, SECRET, age_s=15 * 24 * 3600), None
    if kind == "plain":
        return session_id, None
    return draw(latin1_text), None


@st.composite
def cookie_requests(draw: st.DrawFn) -> Request:
    value, expected = draw(tokens())
    before = draw(st.sampled_from(["", "a=1; ", "theme=dark;", "x" + COOKIE + "=z; "]))
    after = draw(st.sampled_from(["", "; b=2", ";" + COOKIE + "=second"]))
    cookie = f"{before}{COOKIE}={value}{after}"
    return Request(headers=[("cookie", cookie)], expected=expected, raw=value)


@st.composite
def header_requests(draw: st.DrawFn) -> Request:
    value, expected = draw(tokens())
    return Request(headers=[(HEADER, value)], expected=expected, raw=value)


@st.composite
def path_requests(draw: st.DrawFn) -> Request:
    segment = draw(st.one_of(ids, st.text(max_size=200)))
    tail = draw(st.sampled_from(["", "/", "/more", "/a/b"]))
    path = f"/chat/{segment}{tail}"
    named = path[len("/chat/") :]
    # Templates match whole paths: a longer path names no conversation.
    whole = named and "/" not in named
    return Request(path=path, expected=_valid(named) if whole else None, raw=named)


@st.composite
def query_requests(draw: st.DrawFn) -> Request:
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(["conversation", "q", "conversation ", ""]), latin1_text),
            max_size=4,
        )
    )
    query = "&".join(f"{key}={value}" for key, value in pairs)
    if draw(st.booleans()):
        query = draw(latin1_text)
    values = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "conversation"]
    # Copies that disagree name no conversation; identical ones name theirs.
    named = values[0] if len(set(values)) == 1 else None
    return Request(
        query=query,
        expected=_valid(named) if named is not None else None,
        raw=values[0] if values else "",
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def json_requests(draw: st.DrawFn) -> Request:
    field_value = draw(st.one_of(ids, json_values))
    document: Any = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3))
    if draw(st.booleans()):
        document["conversation_id"] = field_value
    elif draw(st.booleans()):
        document = draw(json_values)
    body = json.dumps(document).encode()
    if draw(st.booleans()):
        body = draw(st.binary(max_size=64)) + body
    expected = None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if len(body) <= JSON_LIMIT and isinstance(parsed, dict) and "conversation_id" in parsed:
        value = parsed["conversation_id"]
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        expected = _valid(value) if isinstance(value, str) else None
    raw = str(parsed.get("conversation_id")) if isinstance(parsed, dict) else ""
    headers = [("content-type", "application/json")]
    return Request(path="/json", headers=headers, body=body or b"{}", expected=expected, raw=raw)


TARGETS: dict[str, Callable[[], st.SearchStrategy[Request]]] = {
    "cookie": cookie_requests,
    "header": header_requests,
    "path": path_requests,
    "query": query_requests,
    "json": json_requests,
}


# --------------------------------------------------------------------------


def check(request: Request, response: Served, exporter: InMemorySpanExporter) -> None:
    assert response.status < 500
    session_id = response.session_id
    assert session_id is not None and is_valid_session_id(session_id)
    assert response.body_seen == request.body
    new_cookie = [v for k, v in response.headers if k.lower() == "set-cookie"]
    if request.expected is not None:
        assert session_id == request.expected
    else:
        # Nothing valid named a session: a new one, issued in a cookie.
        assert len(new_cookie) == 1 and new_cookie[0].startswith(f"{COOKIE}=")
        assert session_id != request.raw
    assert neatlogs_web.flush(timeout_s=5)
    spans = exporter.get_finished_spans()
    exporter.clear()
    assert [span.name for span in spans] == ["turn"]
    for span in spans:
        attributes = dict(span.attributes or {})
        assert attributes["session.id"] == attributes["neatlogs.session.id"] == session_id
        if request.raw != request.expected:
            assert request.raw not in attributes.values()


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    neatlogs_web.init(exporter=memory, set_global_provider=False, flush_on_sigterm=False)
    yield memory
    neatlogs_web.shutdown()


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_fuzzed_input_never_errors_and_never_reaches_a_span(
    kind: str, target: str, exporter: InMemorySpanExporter
) -> None:
    if kind == "asgi":
        app = AsgiSessions(inner_asgi, **OPTIONS)
        loop = asyncio.new_event_loop()
        call: Callable[[Request], Served] = lambda request: call_asgi(app, loop, request)  # noqa: E731
    else:
        wsgi = WsgiSessions(inner_wsgi, **OPTIONS)
        call = lambda request: call_wsgi(wsgi, request)  # noqa: E731
    before = sum(neatlogs_web.stats()["rejected"].values())
    tried = 0

    @settings(
        max_examples=SCALE.fuzz_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(TARGETS[target]())
    def run(request: Request) -> None:
        nonlocal tried
        tried += 1
        exporter.clear()
        check(request, call(request), exporter)

    try:
        run()
    finally:
        if kind == "asgi":
            loop.close()
    skipped = sum(neatlogs_web.stats()["rejected"].values()) - before
    record("fuzz", f"{kind} {target}", examples=tried, values_skipped=skipped)
    assert tried >= min(SCALE.fuzz_examples, 50)
