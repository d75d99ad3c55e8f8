"""A returning user's decision is remembered, and still lapses exactly on time.

Both middlewares skip verification for a token they have already accepted
(the per-request fast path); these tests prove the remembered decision still
honours the refresh age and ``max_age``, for the cookie and the signed header.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import neatlogs_web
from tests.apps import HEADER, SECRET, client_for
from tests.tokens import make_token

MAX_AGE = 100  # so the token is refreshed once older than 50 s


def as_input(source: str, token: str) -> dict[str, str]:
    if source == "cookie":
        return {"cookie": f"neatlogs_session={token}; theme=dark"}
    return {HEADER: token}


@pytest.fixture(params=["cookie", "header"])
def source(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["body_step_first", "cookie_alone"])
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """With conversation steps (path, JSON body) before the cookie, the policy
    decides; without them, a request with only a cookie takes the middlewares'
    inline remembered path."""
    if request.param == "body_step_first":
        return {}
    return {"conversation_json_field": None, "conversation_paths": ()}


def test_a_returning_token_is_verified_once(
    kind: str, source: str, options: dict[str, Any], verified_tokens: list[str]
) -> None:
    token = make_token("returning-1", SECRET)
    with client_for(kind, **options) as http:
        sessions = [
            http.get("/whoami", headers=as_input(source, token)).json()["session_id"]
            for _ in range(3)
        ]

    assert sessions == ["returning-1"] * 3
    assert verified_tokens == [token]


def test_a_remembered_token_is_still_refreshed_then_expired_on_time(
    kind: str, source: str, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    start = time.time()
    token = make_token("returning-2", SECRET)
    with client_for(kind, max_age=MAX_AGE, **options) as http:
        fresh = http.get("/whoami", headers=as_input(source, token))
        assert fresh.json()["session_id"] == "returning-2"
        assert "set-cookie" not in fresh.headers

        monkeypatch.setattr(time, "time", lambda: start + MAX_AGE * 0.6)
        due = http.get("/whoami", headers=as_input(source, token))
        assert due.json()["session_id"] == "returning-2"
        assert due.headers[HEADER] != token  # re-signed with a new timestamp
        assert ("set-cookie" in due.headers) is (source == "cookie")

        expired_before = neatlogs_web.stats()["rejected"].get(f"{source}.expired", 0)
        monkeypatch.setattr(time, "time", lambda: start + MAX_AGE + 5)
        expired = http.get("/whoami", headers=as_input(source, token))
        assert expired.json()["session_id"] != "returning-2"
        assert neatlogs_web.stats()["rejected"][f"{source}.expired"] == expired_before + 1


@pytest.mark.parametrize(
    ("sources", "winner"),
    [(["header", "cookie"], "tab-session"), (["cookie", "header"], "browser-session")],
)
def test_a_remembered_cookie_never_outranks_a_source_read_before_it(
    kind: str, sources: list[str], winner: str
) -> None:
    """The remembered cookie answers alone only when nothing read before it was sent."""
    cookie = as_input("cookie", make_token("browser-session", SECRET))
    header = as_input("header", make_token("tab-session", SECRET))
    with client_for(kind, sources=sources) as http:
        assert http.get("/whoami", headers=cookie).json()["session_id"] == "browser-session"
        assert http.get("/whoami", headers=cookie).json()["session_id"] == "browser-session"
        both = http.get("/whoami", headers={**cookie, **header}).json()["session_id"]
        assert both == winner
        assert http.get("/whoami", headers=cookie).json()["session_id"] == "browser-session"


BYTES_WARNINGS_AS_ERRORS = """
import asyncio, sys
import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.tokens import make_token

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": neatlogs_web.current_session_id().encode()})

async def get(middleware, headers):
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": headers}
    await middleware(scope, receive, send)
    return sent[-1]["body"].decode()

async def main():
    middleware = NeatlogsSessionMiddleware(app, secret_key=sys.argv[1])
    cookie = (b"cookie", b"neatlogs_session=" + make_token("user-a", sys.argv[1]).encode())
    accept = [(b"accept", b"text/html"), (b"accept", b"*/*")]
    seen = [await get(middleware, [cookie, *accept])]  # a repeated header: the full path
    seen += [await get(middleware, [cookie]) for _ in range(2)]  # then the returning path
    print(seen, neatlogs_web.stats()["internal_errors"])

asyncio.run(main())
"""


def test_a_returning_user_keeps_the_session_under_python_bb() -> None:
    """A request that repeats some header goes the full way; the plain requests
    after it are remembered under the same key type, which ``python -bb`` (bytes
    compared with str raise) must not turn into a fresh session per request."""
    finished = subprocess.run(
        [sys.executable, "-bb", "-c", BYTES_WARNINGS_AS_ERRORS, SECRET],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "['user-a', 'user-a', 'user-a'] {}", finished.stderr
