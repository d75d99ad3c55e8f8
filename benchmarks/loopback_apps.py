"""The two apps the loopback run serves with uvicorn: bare Starlette and the same with ours.

Both also serve ``CPU_PATH``, which answers the server process's CPU time
(``time.process_time()``: all threads, nanosecond clock). The load generator
reads it before and after each round; the operating system's per-process
counters (``/proc``, psutil) tick every 10 ms, too coarse for a round.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from benchmarks.asgi_suite import ours, starlette_app
from benchmarks.loopback import CPU_PATH


async def process_cpu(request: Request) -> PlainTextResponse:
    return PlainTextResponse(repr(time.process_time()))


bare_app = starlette_app(routes=[Route(CPU_PATH, process_cpu)])
ours_app = starlette_app([ours()], routes=[Route(CPU_PATH, process_cpu)])
