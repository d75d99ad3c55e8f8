"""Bad session input is skipped and counted, never an error page or a span value.

For each bad value, on both middlewares: the request is served (never 5xx),
a new session is issued because nothing valid remains, the value reaches no
span, and a rejection is counted.
"""

from __future__ import annotations

from typing import Any

import pytest
import werkzeug.test
from starlette.testclient import TestClient

import neatlogs_web
from neatlogs_web._session.ids import is_valid_session_id
from tests.apps import SECRET, json_body, make_asgi_app, make_wsgi_app
from tests.otlp_receiver import OTLPReceiver
from tests.pipeline import spans_after_flush
from tests.tokens import make_token

HEADER = "x-neatlogs-session-id"
VALID = make_token("victim-session", SECRET)
TAMPERED = VALID[:-2] + ("AA" if not VALID.endswith("AA") else "BB")


def cookie(value: str) -> dict[str, str]:
    return {"cookie": "neatlogs_session=" + value}


def header(value: str) -> dict[str, str]:
    return {HEADER: value}


JSON = {"content-type": "application/json"}

# (case id, method, path, headers, body, value that must reach no span, counted key).
# Header values are latin-1 text, as WSGI and ASGI servers hand them over.
BAD_INPUTS: list[tuple[str, str, str, dict[str, str], bytes, str, str]] = [
    (
        "bad_signature",
        "GET",
        "/whoami",
        cookie(TAMPERED),
        b"",
        "victim-session",
        "cookie.bad_signature",
    ),
    (
        "unknown_key",
        "GET",
        "/whoami",
        cookie(make_token("forged-session", "attacker-key")),
        b"",
        "forged-session",
        "cookie.bad_signature",
    ),
    (
        "expired",
        "GET",
        "/whoami",
        cookie(make_token("stale-session", SECRET, age_s=15 * 24 * 3600)),
        b"",
        "stale-session",
        "cookie.expired",
    ),
    ("8kb_cookie", "GET", "/whoami", cookie("A" * 8192), b"", "A" * 200, "cookie.oversized"),
    ("non_ascii", "GET", "/whoami", cookie("sess\xe9\xff.x.y"), b"", "sess\xe9", "cookie.invalid"),
    ("control_chars", "GET", "/whoami", header("ab\x01cd.x.y"), b"", "ab\x01cd", "header.invalid"),
    ("empty_cookie", "GET", "/whoami", cookie(""), b"", "", "cookie.invalid"),
    ("empty_header", "GET", "/whoami", header(""), b"", "", "header.invalid"),
    (
        "129_char_id",
        "POST",
        "/chat/" + "c" * 129,
        {},
        b"",
        "c" * 129,
        "conversation_path.oversized",
    ),
    (
        "forbidden_in_path",
        "POST",
        "/chat/bad%3Cid%3E",
        {},
        b"",
        "bad<id>",
        "conversation_path.invalid",
    ),
    (
        "forbidden_in_header",
        "GET",
        "/whoami",
        header("bad id!.1.2"),
        b"",
        "bad id!",
        "header.invalid",
    ),
    (
        "plain_header_untrusted",
        "GET",
        "/whoami",
        header("plain-session"),
        b"",
        "plain-session",
        "header.unsigned",
    ),
    (
        "non_json_body",
        "POST",
        "/json",
        JSON,
        b"{not json",
        "not json",
        "conversation_json.not_json",
    ),
    (
        "oversized_json_body",
        "POST",
        "/json",
        JSON,
        b'{"conversation_id": "big-body", "pad": "' + b"x" * 70_000 + b'"}',
        "big-body",
        "conversation_json.oversized",
    ),
]


def send(kind: str, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
    """Send bytes exactly as given, which real HTTP clients refuse for some cases."""
    if kind == "asgi":
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        with TestClient(make_asgi_app()) as http:
            return http.request(method, path, headers=raw, content=body)
    client = werkzeug.test.Client(make_wsgi_app(), use_cookies=False)
    return client.open(path, method=method, headers=list(headers.items()), data=body)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "forbidden", "counted"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_value_is_skipped_counted_and_replaced(
    kind: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    forbidden: str,
    counted: str,
    tracing: OTLPReceiver,
) -> None:
    before = neatlogs_web.stats()["rejected"].get(counted, 0)
    response = send(kind, method, path, headers, body)
    assert response.status_code == 200, response.text
    session_id = json_body(response)["session_id"]
    assert session_id and is_valid_session_id(session_id)
    assert "set-cookie" in response.headers, "a new session is issued"
    assert neatlogs_web.stats()["rejected"].get(counted, 0) == before + 1
    spans = spans_after_flush(tracing, 1)
    for span in spans:
        assert span.attributes["session.id"] == session_id
        if forbidden:
            assert all(forbidden not in str(value) for value in span.attributes.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sources": ("cookie", "jwt")}, "sources: unknown source 'jwt'"),
        ({"sources": ("cookie", "cookie")}, "sources lists a name twice"),
        ({"conversation_paths": ["/chat/{id}"]}, "conversation_paths: template '/chat/{id}'"),
        ({"conversation_paths": ["chat/{conversation_id}"]}, "conversation_paths: .* '/'"),
        ({"conversation_paths": ["/chat/{conversation_id"]}, "conversation_paths: .*unbalanced"),
        ({"secret_key": []}, "secret_key is an empty list"),
        ({"secret_key": ""}, "secret_key: every key must be a non-empty"),
        ({"same_site": "none"}, "same_site='none' needs secure=True"),
        ({"same_site": "sideways"}, "same_site must be"),
        ({"max_age": 0}, "max_age must be a number of seconds from 1"),
        ({"idle_timeout": -5}, "idle_timeout must be a number of seconds from 1"),
        ({"json_body_limit": 0}, "json_body_limit must be a positive"),
        ({"header_name": "X Session"}, "header_name 'X Session' is not a valid header name"),
        ({"exclude_paths": ["healthz"]}, "exclude_paths: 'healthz' must start with '/'"),
        ({"conversation_binding": "later"}, "conversation_binding must be"),
        ({"exclude_paths": None}, "exclude_paths must be a string or a list of strings"),
        ({"sources": None}, "sources must be a string or a list of strings"),
        ({"conversation_paths": [None]}, "conversation_paths must be a string or a list"),
        ({"cookie_path": "/チャット"}, "cookie_path '/チャット' must start with '/'"),
        ({"cookie_path": "app"}, "cookie_path 'app' must start with '/'"),
        ({"cookie_domain": "a;b"}, "cookie_domain 'a;b' is not a host name"),
        ({"secure": "false"}, "secure must be True, False or None"),
        ({"expose_trace_id": "yes"}, "expose_trace_id must be True or False"),
        # Wrong types name the option too, rather than failing later (or on every request).
        ({"header_name": None}, "header_name must be a string, not None"),
        ({"cookie_name": None}, "cookie_name must be a string, not None"),
        ({"conversation_query": 5}, "conversation_query must be a non-empty string or None, not 5"),
        ({"conversation_header": 5}, "conversation_header must be a non-empty string or None"),
        ({"max_age": float("inf")}, "max_age must be a number of seconds from 1"),
        ({"max_age": float("nan")}, "max_age must be a number of seconds from 1"),
        ({"idle_timeout": True}, "idle_timeout must be a number of seconds from 1"),
        ({"json_body_limit": True}, "json_body_limit must be a positive number of bytes"),
        ({"sources": []}, "sources must name at least one of conversation, header, cookie"),
        ({"secret_key": 5}, "secret_key must be a str, bytes or a list of them .*, not int"),
        # A dict would sign with its key names; a set in no stable order.
        ({"secret_key": {"current": "k" * 32}}, "secret_key must be a str, bytes or a list"),
        ({"secret_key": {"k" * 32}}, "secret_key must be a str, bytes or a list"),
        ({"end_user": 5}, "end_user must be a callable from the request"),
        ({"max_age": 10**400}, "max_age must be a number of seconds from 1 to 34560000"),
        ({"max_age": 0.5}, "max_age must be a number of seconds from 1"),
        ({"conversation_query": ""}, "conversation_query must be a non-empty string or None"),
        ({"conversation_json_field": ""}, "conversation_json_field must be a non-empty"),
        ({"header_name": "Content-Length"}, "header_name 'Content-Length' is a header HTTP"),
        ({"header_name": "Set-Cookie"}, "header_name 'Set-Cookie' is a header HTTP"),
        ({"conversation_header": "cookie"}, "conversation_header 'cookie' is a header HTTP"),
        ({"cookie_name": "__Host-sid"}, "cookie_name '__Host-sid' needs secure=True"),
        (
            {"cookie_name": "__Host-sid", "secure": True, "cookie_path": "/app"},
            "cookie_name '__Host-sid' needs cookie_path='/' and no cookie_domain",
        ),
        ({"cookie_name": "__Secure-sid"}, "cookie_name '__Secure-sid' needs secure=True"),
    ],
)
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_bad_configuration_raises_at_startup(
    kind: str, options: dict[str, Any], message: str
) -> None:
    from neatlogs_web.asgi import NeatlogsSessionMiddleware as Asgi
    from neatlogs_web.wsgi import NeatlogsSessionMiddleware as Wsgi

    middleware: Any = Asgi if kind == "asgi" else Wsgi
    settings = {"secret_key": SECRET, **options}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("{", r"\{")):
        middleware(lambda *args: None, **settings)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_an_option_typo_names_the_option_and_the_closest_one(kind: str) -> None:
    from neatlogs_web.asgi import NeatlogsSessionMiddleware as Asgi
    from neatlogs_web.wsgi import NeatlogsSessionMiddleware as Wsgi

    middleware: Any = Asgi if kind == "asgi" else Wsgi
    with pytest.raises(TypeError) as raised:
        middleware(lambda *args: None, secret_key=SECRET, conversation_path="/c/{conversation_id}")
    assert str(raised.value) == (
        "NeatlogsSessionMiddleware got an unknown option 'conversation_path': "
        "did you mean 'conversation_paths'?"
    )


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_list_option_given_as_one_string_is_one_item(kind: str) -> None:
    options = {"conversation_paths": "/chat/{conversation_id}", "exclude_paths": "/healthz"}
    if kind == "asgi":
        with TestClient(make_asgi_app(**options)) as http:
            assert http.post("/chat/conv-7").json()["session_id"] == "conv-7"
            assert "set-cookie" not in http.get("/healthz").headers
    else:
        client = werkzeug.test.Client(make_wsgi_app(**options))
        assert client.post("/chat/conv-7").json["session_id"] == "conv-7"
        assert "Set-Cookie" not in client.get("/healthz").headers


def test_a_list_option_given_as_a_generator_keeps_its_items() -> None:
    app = make_asgi_app(
        exclude_paths=(path for path in ["/healthz"]),
        conversation_paths=map(str, ["/chat/{conversation_id}"]),
    )
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"session_id": None}
        assert client.post("/chat/conv-1").json() == {"session_id": "conv-1"}


def test_same_site_none_with_secure_is_accepted() -> None:
    app = make_asgi_app(same_site="none", secure=True)
    with TestClient(app) as http:
        assert "SameSite=None; Secure" in http.get("/whoami").headers["set-cookie"]


@pytest.mark.parametrize(
    "cookie_header",
    [
        "theme=dark,neatlogs_session={token}",  # gunicorn joins repeated headers with ","
        "neatlogs_session={token},theme=dark",
        "theme=dark, neatlogs_session={token}",  # waitress with ", "
        "neatlogs_session={token}, theme=dark",
    ],
)
def test_a_cookie_split_over_repeated_headers_keeps_its_session(cookie_header: str) -> None:
    """WSGI servers fold several Cookie headers into one HTTP_COOKIE with commas."""
    from tests.tokens import make_token

    token = make_token("alice", SECRET)
    client = werkzeug.test.Client(make_wsgi_app(), use_cookies=False)
    response = client.get(
        "/whoami", environ_overrides={"HTTP_COOKIE": cookie_header.format(token=token)}
    )
    assert response.json == {"session_id": "alice"}
    assert "Set-Cookie" not in response.headers


def test_repeated_cookie_headers_on_waitress_keep_the_session() -> None:
    import socket

    from tests.servers import run_waitress
    from tests.tokens import make_token

    token = make_token("alice", SECRET)
    with run_waitress(make_wsgi_app()) as base:
        host, port = base.removeprefix("http://").split(":")
        for first, second in (
            (f"neatlogs_session={token}", "a=1"),
            ("a=1", f"neatlogs_session={token}"),
        ):
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(
                    f"GET /whoami HTTP/1.1\r\nHost: x\r\nCookie: {first}\r\nCookie: {second}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            assert b'"session_id":"alice"' in reply.replace(b" ", b""), reply


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_stale_cookie_of_another_path_before_the_session_cookie_is_skipped(kind: str) -> None:
    """Browsers send every cookie of a name, the longest path first: after
    ``cookie_path`` changed, an old one (expired, signed with a retired key) comes
    first on every request. The first value that verifies is the session."""
    import httpx

    from tests.servers import run_uvicorn, run_waitress

    valid = make_token("alice", SECRET)
    stale = [make_token("old", SECRET, age_s=30 * 24 * 3600), make_token("old", "retired-key")]
    run = run_uvicorn(make_asgi_app()) if kind == "asgi" else run_waitress(make_wsgi_app())
    with run as base, httpx.Client(base_url=base) as http:
        for old in stale:
            for pair in ([old, valid], [valid, old]):
                sent = "; ".join(f"neatlogs_session={token}" for token in pair)
                response = http.get("/whoami", headers={"cookie": sent})
                assert response.json() == {"session_id": "alice"}, sent
                assert "set-cookie" not in response.headers


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_only_the_first_values_of_the_session_cookie_name_are_checked(
    kind: str, hmac_checks: list[None]
) -> None:
    """A browser sends a cookie name a few times at most; a request that repeats
    it 1,400 times (about 110 KiB) buys no more signature checks than
    MAX_COOKIE_CANDIDATES. A valid value after those is not looked at: the
    request starts a new session, counted as too many values."""
    import httpx

    from neatlogs_web._session.resolver import MAX_COOKIE_CANDIDATES
    from tests.servers import run_uvicorn, run_waitress

    valid = make_token("alice", SECRET)
    forged = [make_token(f"forged-{index}", "attacker-key") for index in range(1400)]
    run = run_uvicorn(make_asgi_app()) if kind == "asgi" else run_waitress(make_wsgi_app())
    with run as base, httpx.Client(base_url=base) as http:
        within = [*forged[: MAX_COOKIE_CANDIDATES - 1], valid]
        assert http.get("/whoami", headers=cookie("; neatlogs_session=".join(within))).json() == {
            "session_id": "alice"
        }
        hmac_checks.clear()
        before = neatlogs_web.stats()["rejected"].get("cookie.too_many", 0)
        flooded = http.get("/whoami", headers=cookie("; neatlogs_session=".join([*forged, valid])))
        checked = len(hmac_checks)
    assert flooded.status_code == 200
    assert flooded.json()["session_id"] not in ("alice", *(f"forged-{i}" for i in range(1400)))
    assert flooded.headers["set-cookie"].startswith("neatlogs_session=")
    assert checked == MAX_COOKIE_CANDIDATES
    assert neatlogs_web.stats()["rejected"].get("cookie.too_many", 0) == before + 1


def _failing_end_user(scope: Any) -> str:
    raise RuntimeError("the user directory is down")


@pytest.mark.parametrize(
    ("end_user", "counted"),
    [
        (_failing_end_user, "end_user.error"),
        (lambda scope: "no spaces allowed", "end_user.invalid"),
    ],
    ids=["raises", "invalid"],
)
def test_an_end_user_callable_that_fails_stamps_no_end_user_and_is_counted(
    end_user: Any, counted: str
) -> None:
    before = neatlogs_web.stats()["rejected"].get(counted, 0)
    with TestClient(make_asgi_app(end_user=end_user)) as client:
        response = client.get("/whoami")
    assert response.status_code == 200 and response.json()["session_id"]
    assert neatlogs_web.stats()["rejected"].get(counted, 0) == before + 1
