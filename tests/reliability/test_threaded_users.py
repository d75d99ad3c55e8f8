"""Resolution on a threaded WSGI server: many distinct users on many threads.

The caches of verified tokens and remembered decisions are shared by every
thread; they must stay within their bound and never raise. And whatever
fails inside resolution, the request is served.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import werkzeug.test

import neatlogs_web
from neatlogs_web._session.signing import VERIFIED_CACHE_SIZE
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiMiddleware
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiMiddleware
from tests.apps import SECRET
from tests.reliability.report import record
from tests.reliability.scale import SCALE
from tests.tokens import make_token

THREADS = 8
USERS = SCALE.threaded_users


def echo_session(environ: Any, start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(neatlogs_web.current_session_id() or "-").encode()]


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads as often as possible, so races show up in seconds."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_distinct_users_on_many_threads_never_error_and_caches_stay_bounded(
    tiny_switch_interval: None,
) -> None:
    app = WsgiMiddleware(echo_session, secret_key=SECRET)
    tokens = [make_token(f"user-{index}", SECRET) for index in range(USERS)]
    errors: list[BaseException] = []
    wrong: list[str] = []

    def serve(share: range) -> None:
        client = werkzeug.test.Client(app)
        for index in share:
            try:
                client.set_cookie("neatlogs_session", tokens[index])
                body = client.get("/").get_data(as_text=True)
            except BaseException as error:
                errors.append(error)
                return
            if body != f"user-{index}":
                wrong.append(body)

    threads = [
        threading.Thread(target=serve, args=(range(start, USERS, THREADS),))
        for start in range(THREADS)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    seconds = time.monotonic() - started

    resolver = app.resolver
    caches = (resolver.signer._verified, resolver._remembered_cookies, resolver._remembered_headers)
    cache_sizes = [len(cache) for cache in caches]
    record(
        "threads",
        f"{USERS:,} distinct users on {THREADS} threads",
        requests=USERS,
        errors=len(errors),
        wrong_session=len(wrong),
        largest_cache=max(cache_sizes),
        cache_bound=VERIFIED_CACHE_SIZE,
        seconds=round(seconds, 1),
    )
    assert errors == []
    assert wrong == []
    assert max(cache_sizes) <= VERIFIED_CACHE_SIZE


def _raising_validator(value: str) -> bool:
    if value == "boom":
        raise RuntimeError("a bug inside resolution")
    return True


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_failure_inside_resolution_serves_the_request_with_a_fresh_session(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    options: dict[str, Any] = {
        "secret_key": SECRET,
        "conversation_header": "x-conversation",
        "validator": _raising_validator,
    }
    before = neatlogs_web.stats()["internal_errors"]
    if kind == "asgi":
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        from starlette.testclient import TestClient

        async def whoami(request: Request) -> PlainTextResponse:
            return PlainTextResponse(neatlogs_web.current_session_id() or "-")

        asgi_app = Starlette(routes=[Route("/", whoami)])
        asgi_app.add_middleware(AsgiMiddleware, **options)
        client: Any = TestClient(asgi_app, raise_server_exceptions=False)
    else:
        client = werkzeug.test.Client(WsgiMiddleware(echo_session, **options))

    with caplog.at_level(logging.ERROR, logger="neatlogs_web"):
        first = client.get("/", headers={"x-conversation": "boom"})
        second = client.get("/", headers={"x-conversation": "boom"})
        fine = client.get("/", headers={"x-conversation": "fine"})

    sessions = [_text(first), _text(second)]
    assert [first.status_code, second.status_code, fine.status_code] == [200, 200, 200]
    assert all(session not in ("-", "boom") for session in sessions)
    assert sessions[0] != sessions[1]  # each degraded request is its own fresh session
    assert _text(fine) == "fine"
    after = neatlogs_web.stats()["internal_errors"]
    assert sum(after.values()) - sum(before.values()) == 2
    (where,) = {key for key in after if after[key] != before.get(key, 0)}
    logged = [r for r in caplog.records if "failed while resolving" in r.getMessage()]
    # Logged once per process and place, with its traceback.
    assert len(logged) == (0 if before.get(where) else 1)
    assert all(record.exc_info for record in logged)


def _text(response: Any) -> str:
    return response.text if hasattr(response, "text") else response.get_data(as_text=True)
