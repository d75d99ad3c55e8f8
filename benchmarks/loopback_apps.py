"""The apps the loopback run serves with uvicorn: bare Starlette, the same with ours,
with the hand-written least a signed-cookie session middleware does, and with the
hand-written least DESIGN.md asks of one (``references``).

Both also serve ``CPU_PATH``, which answers the server process's CPU time
(``time.process_time()``: all threads, nanosecond clock). The load generator
reads it before and after each round; the operating system's per-process
counters (``/proc``, psutil) tick every 10 ms, too coarse for a round.
"""

from __future__ import annotations

import time

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from benchmarks.asgi_suite import SECRET, ours, starlette_app
from benchmarks.loopback import CPU_PATH
from benchmarks.references import AsgiContractFloor, AsgiRememberedSignedCookie
from neatlogs_web._session.signing import SIGNING_SALT


async def process_cpu(request: Request) -> PlainTextResponse:
    return PlainTextResponse(repr(time.process_time()))


bare_app = starlette_app(routes=[Route(CPU_PATH, process_cpu)])
ours_app = starlette_app([ours()], routes=[Route(CPU_PATH, process_cpu)])
# Reads and verifies the very cookie ours set (its name and salt), so all get one request.
hand_app = starlette_app(
    [
        Middleware(
            AsgiRememberedSignedCookie, secret=SECRET, cookie="neatlogs_session", salt=SIGNING_SALT
        )
    ],
    routes=[Route(CPU_PATH, process_cpu)],
)
contract_app = starlette_app(
    [Middleware(AsgiContractFloor, secret=SECRET, cookie="neatlogs_session", salt=SIGNING_SALT)],
    routes=[Route(CPU_PATH, process_cpu)],
)
