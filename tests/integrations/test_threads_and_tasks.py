"""Work a request hands to threads, executors and tasks stays in its session.

``asyncio`` tasks and ``asyncio.to_thread`` copy the context themselves;
``loop.run_in_executor``, ``executor.submit`` and ``threading.Thread`` need
``with_current_session``. Concurrent requests on uvicorn and waitress each
see only their own session, including after a ``bind_session`` that happens
after the work was wrapped.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from flask import Flask, jsonify
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiMiddleware
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiMiddleware
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_uvicorn, run_waitress

PATHS = ["/chat/{conversation_id}"]
ASYNC_KINDS = ["to_thread", "run_in_executor", "submit", "thread", "task"]
THREAD_KINDS = ["submit", "map-0", "map-1", "thread"]


def work(kind: str, conversation: str) -> str | None:
    with neatlogs_web.trace(kind, conversation=conversation):
        return neatlogs_web.current_session_id()


def make_asgi_app(pool: ThreadPoolExecutor) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        conversation = request.path_params["conversation_id"]
        # Wrapped before the rebinding below: the request's one binding is shared.
        in_thread = neatlogs_web.with_current_session(work)
        neatlogs_web.bind_session(f"re-{conversation}")
        loop = asyncio.get_running_loop()
        results: list[Any] = await asyncio.gather(
            asyncio.to_thread(work, "to_thread", conversation),
            loop.run_in_executor(pool, in_thread, "run_in_executor", conversation),
            asyncio.wrap_future(pool.submit(in_thread, "submit", conversation)),
            asyncio.create_task(asyncio.to_thread(work, "task", conversation)),
        )
        thread = threading.Thread(target=in_thread, args=("thread", conversation))
        thread.start()
        await asyncio.to_thread(thread.join)
        return JSONResponse(results)

    app = Starlette(routes=[Route("/chat/{conversation_id}", chat)])
    app.add_middleware(AsgiMiddleware, secret_key="k", conversation_paths=PATHS)
    return app


def make_wsgi_app(pool: ThreadPoolExecutor) -> Any:
    app = Flask(__name__)

    @app.get("/chat/<conversation_id>")
    def chat(conversation_id: str) -> Any:
        in_thread = neatlogs_web.with_current_session(work)
        results = [pool.submit(in_thread, "submit", conversation_id).result()]
        results += pool.map(in_thread, ["map-0", "map-1"], [conversation_id] * 2)
        thread = threading.Thread(target=in_thread, args=("thread", conversation_id))
        thread.start()
        thread.join()
        return jsonify(results)

    return WsgiMiddleware(app.wsgi_app, secret_key="k", conversation_paths=PATHS)


def check_spans(
    receiver: OTLPReceiver, kinds: list[str], conversations: list[str], prefix: str
) -> None:
    neatlogs_web.flush()
    total = len(kinds) * len(conversations)
    spans = receiver.wait_for(lambda s: len(s) >= total)
    assert len(spans) == total
    seen = {(s.name, s.attributes["session.id"]) for s in spans}
    assert seen == {(kind, prefix + c) for kind in kinds for c in conversations}
    for span in spans:
        assert span.attributes["session.id"] == prefix + span.attributes["conversation"]


def test_asyncio_threads_executors_and_tasks_keep_the_rebound_session(
    tracing: OTLPReceiver,
) -> None:
    conversations = [f"c{i}" for i in range(6)]

    async def concurrently(base: str) -> list[Any]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            responses = await asyncio.gather(*(http.get(f"/chat/{c}") for c in conversations))
        return [r.json() for r in responses]

    with ThreadPoolExecutor(max_workers=4) as pool, run_uvicorn(make_asgi_app(pool)) as base:
        results = asyncio.run(concurrently(base))
    assert results == [[f"re-{c}"] * 4 for c in conversations]
    check_spans(tracing, ASYNC_KINDS, conversations, "re-")


def test_wsgi_worker_threads_hand_the_session_to_executors_and_threads(
    tracing: OTLPReceiver,
) -> None:
    conversations = [f"w{i}" for i in range(6)]
    with (
        ThreadPoolExecutor(max_workers=4) as pool,
        run_waitress(make_wsgi_app(pool), threads=6) as base,
        ThreadPoolExecutor(max_workers=6) as clients,
    ):
        results = list(clients.map(lambda c: httpx.get(f"{base}/chat/{c}").json(), conversations))
    assert results == [[c] * 3 for c in conversations]
    check_spans(tracing, THREAD_KINDS, conversations, "")
