"""FastAPI with its own telemetry on (server and operation spans), with and without ours.

FastAPI traces itself through the provider it is given. Without ours that is
a plain SDK provider with a batch processor; with ours it is the provider
``neatlogs_web.init()`` returns (session stamping on every span) and our
middleware binds a returning user's session.
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.asgi_suite import PATH, SECRET, asgi_runner, make_scope, our_cookie
from benchmarks.harness import Runner, Variant
from benchmarks.sink import DiscardingExporter, batch_provider
from benchmarks.trace_suite import init_tracing


def fastapi_app(telemetry: dict[str, Any], with_ours: bool) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI(telemetry=telemetry)  # type: ignore[arg-type]
    if with_ours:
        from neatlogs_web.asgi import NeatlogsSessionMiddleware

        app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET)

    @app.get("/chat/{conversation_id}", response_class=PlainTextResponse)
    async def ok(conversation_id: str) -> str:
        return "ok"

    return app


def build(loop: asyncio.AbstractEventLoop) -> list[Variant]:
    cookie = [(b"cookie", our_cookie())]

    def off() -> Runner:
        app = fastapi_app({"tracing": False, "metrics": False, "logs": False}, with_ours=False)
        return asgi_runner(app, make_scope(PATH), loop)

    def on() -> Runner:
        provider = batch_provider(DiscardingExporter())
        app = fastapi_app({"tracer_provider": provider}, with_ours=False)
        return asgi_runner(app, make_scope(PATH), loop)

    def on_with_ours() -> Runner:
        app = fastapi_app({"tracer_provider": init_tracing()}, with_ours=True)
        return asgi_runner(app, make_scope(PATH, cookie), loop)

    return [
        Variant("fastapi_off", "FastAPI, telemetry off", off),
        Variant("fastapi_on", "FastAPI, telemetry on", on, baseline="fastapi_off"),
        Variant(
            "fastapi_ours",
            "FastAPI, telemetry on + ours (cookie, session on every span)",
            on_with_ours,
            baseline="fastapi_on",
        ),
    ]
