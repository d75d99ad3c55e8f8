"""The app the fault, shutdown and soak scenarios serve, over ASGI and WSGI.

One request is one traced turn (a root span and a child in a worker thread),
so spans sent can be counted from requests made. ``/_stats`` tells the
operator's view: export counters, RSS, threads and asyncio tasks. Tracing
options come from ``RELIABILITY_*`` variables so each scenario picks its own
queue size, schedule and shutdown deadline; unset, they fall through to
``init()``'s defaults.

    uvicorn tests.reliability.served_app:asgi_app
    gunicorn -k gthread tests.reliability.served_app:wsgi_app
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
from flask import Flask, Response, jsonify, request
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiSessions
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiSessions


def _option(name: str) -> float | None:
    value = os.environ.get(f"RELIABILITY_{name}")
    return float(value) if value else None


neatlogs_web.init(
    workflow_name="reliability",
    schedule_delay_ms=_option("SCHEDULE_DELAY_MS") or 200,
    max_queue_size=int(_option("MAX_QUEUE_SIZE") or 0) or None,
    max_export_batch_size=int(_option("MAX_BATCH_SIZE") or 0) or None,
    export_timeout_s=_option("EXPORT_TIMEOUT_S"),
    shutdown_timeout_s=_option("SHUTDOWN_TIMEOUT_S") or 5.0,
)
SESSION_OPTIONS: dict[str, Any] = {"exclude_paths": ["/_stats", "/healthz"]}
_process = psutil.Process()


def retrieve(message: str) -> int:
    with neatlogs_web.trace("retrieval", query=message):
        return len(message)


def stats(tasks: int) -> dict[str, Any]:
    return {
        **neatlogs_web.stats(),
        "pid": os.getpid(),
        "rss": _process.memory_info().rss,
        "threads": threading.active_count(),
        "tasks": tasks,
    }


async def asgi_turn(request: Request) -> JSONResponse:
    message = request.query_params.get("m", "")
    with neatlogs_web.trace("turn", message=message):
        await run_in_threadpool(retrieve, message)
    return JSONResponse({"session_id": neatlogs_web.current_session_id(), "pid": os.getpid()})


async def asgi_stats(request: Request) -> JSONResponse:
    return JSONResponse(stats(len(asyncio.all_tasks())))


async def asgi_health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


asgi_app = Starlette(
    routes=[
        Route("/turn", asgi_turn),
        Route("/_stats", asgi_stats),
        Route("/healthz", asgi_health),
    ]
)
asgi_app.add_middleware(AsgiSessions, **SESSION_OPTIONS)

flask_app = Flask(__name__)
RETRIEVAL_THREADS = 4
_pool = ThreadPoolExecutor(max_workers=RETRIEVAL_THREADS, thread_name_prefix="retrieval")
# Every worker of the pool started now, not as load first needs it: the thread count
# /_stats reports then grows only if something leaks, however busy the warm-up was.
_all_workers_started = threading.Barrier(RETRIEVAL_THREADS + 1)
for _ in range(RETRIEVAL_THREADS):
    _pool.submit(_all_workers_started.wait)
_all_workers_started.wait()


@flask_app.get("/turn")
def wsgi_turn() -> Response:
    message = request.args.get("m", "")
    with neatlogs_web.trace("turn", message=message):
        _pool.submit(neatlogs_web.with_current_session(retrieve), message).result()
    return jsonify(session_id=neatlogs_web.current_session_id(), pid=os.getpid())


@flask_app.get("/_stats")
def wsgi_stats() -> Response:
    return jsonify(stats(0))


@flask_app.get("/healthz")
def wsgi_health() -> Response:
    return jsonify(status="ok")


wsgi_app = WsgiSessions(flask_app.wsgi_app, **SESSION_OPTIONS)
