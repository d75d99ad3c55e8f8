"""The ASGI binding ends when the app returns, also in a task that serves several
requests (HTTP/1.1 keep-alive on some servers, a test harness, an app that calls
another ASGI app in-process)."""

from __future__ import annotations

import asyncio
from typing import Any

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.apps import SECRET
from tests.tokens import make_token

Message = dict[str, Any]


def scope_with_cookie(token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "scheme": "http",
        "headers": [(b"cookie", f"neatlogs_session={token}".encode())],
    }


def test_two_requests_in_one_task_each_see_their_own_session_and_none_after() -> None:
    seen: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(neatlogs_web.current_session_id())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = NeatlogsSessionMiddleware(app, secret_key=SECRET)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    async def one_task() -> list[str | None]:
        after: list[str | None] = []
        for user in ("alice", "bob"):
            await middleware(scope_with_cookie(make_token(user, SECRET)), receive, send)
            after.append(neatlogs_web.current_session_id())
        return after

    after = asyncio.run(one_task())
    assert seen == ["alice", "bob"]
    assert after == [None, None]
