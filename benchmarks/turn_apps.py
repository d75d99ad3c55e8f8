"""One chat turn, four ways: ours, the raw OpenTelemetry SDK by hand, Langfuse, the neatlogs SDK.

A turn is one request to a Starlette route from a returning user (a session
cookie) whose handler runs a root span with two children, exported over
OTLP/HTTP (gzip protobuf) to the local discard receiver. Every variant serves
the same route with the same handler; only the session middleware and the
span API differ:

- ours: ``NeatlogsSessionMiddleware`` (signed cookie) and ``neatlogs_web.trace()``
  under ``neatlogs_web.init(endpoint=...)``;
- raw: the by-hand way on the plain SDK, a cookie -> ContextVar middleware,
  a processor stamping the session at span start under the keys ours stamps
  by default (``session.id`` and ``neatlogs.session.id``: the same spans on
  the wire), ``BatchSpanProcessor`` and the same gzip OTLP exporter; and
  both again with one key, ``session.id`` (ours with ``session_keys="opentelemetry"``);
- Langfuse: the same cookie middleware binding ``propagate_attributes(session_id=...)``,
  spans from ``start_as_current_observation``;
- neatlogs SDK: the same cookie middleware binding ``neatlogs.identify(session_id=...)``,
  spans from ``neatlogs.trace()``.

Each builder is called in its own worker process (see ``turn_worker``): the
SDKs install global providers and instrument the standard library, so they
must not share a process, and a process's CPU time is then one variant's.
Builders use the SDKs' defaults apart from where to send spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from benchmarks import references
from benchmarks.asgi_suite import SECRET, first_visit_cookie

PATH = "/chat/conv-42"
WORKFLOW = "bench"
RETURNING_USER = "returning-user-1"
#: The plain cookie the hand-written middleware reads.
PLAIN_COOKIE = f"session={RETURNING_USER}".encode()
#: The keys ours stamps by default (``SESSION_KEY_PRESETS["default"]``), and the one
#: of ``session_keys="opentelemetry"``.
DEFAULT_KEYS = ("session.id", "neatlogs.session.id")
ONE_KEY = ("session.id",)

#: Starts a span by name and makes it current for the ``with`` block.
SpanStarter = Callable[[str], AbstractContextManager[Any]]


@dataclass
class TurnApp:
    """A variant, ready to serve turns."""

    app: Any
    #: The ``name=value`` cookie a returning user sends.
    cookie: bytes
    #: Exports every span started so far; called at the end of each measured block.
    flush: Callable[[], object]


def _turn_app(span: SpanStarter, middleware: Any) -> Any:
    """A Starlette app whose one route runs a root span with two children."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def turn(request: Request) -> PlainTextResponse:
        with span("turn"):
            with span("retrieve"):
                pass
            with span("generate"):
                pass
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/chat/{conversation_id}", turn)], middleware=[middleware])


def _cookie_middleware(
    bind: Callable[[str | None], AbstractContextManager[Any]] | None = None,
) -> Any:
    from starlette.middleware import Middleware

    return Middleware(references.AsgiCookieSession, bind=bind)


def ours(receiver_url: str, loop: asyncio.AbstractEventLoop) -> TurnApp:
    return _ours(f"{receiver_url}/ours", loop)


def ours_one_key(receiver_url: str, loop: asyncio.AbstractEventLoop) -> TurnApp:
    return _ours(f"{receiver_url}/ours-one-key", loop, session_keys="opentelemetry")


def ours_neatlogs_backend(receiver_url: str, loop: asyncio.AbstractEventLoop) -> TurnApp:
    """With an API key: the neatlogs backend's contract (completion markers), which the
    neatlogs SDK also follows."""
    return _ours(f"{receiver_url}/ours-neatlogs", loop, api_key="bench-key")


def _ours(
    endpoint: str,
    loop: asyncio.AbstractEventLoop,
    api_key: str | None = None,
    session_keys: str = "default",
) -> TurnApp:
    from starlette.middleware import Middleware

    import neatlogs_web
    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    neatlogs_web.init(
        api_key=api_key, endpoint=endpoint, workflow_name=WORKFLOW, session_keys=session_keys
    )
    app = _turn_app(neatlogs_web.trace, Middleware(NeatlogsSessionMiddleware, secret_key=SECRET))
    return TurnApp(app, first_visit_cookie(app, loop, PATH), neatlogs_web.flush)


def raw_sdk(receiver_url: str, loop: asyncio.AbstractEventLoop) -> TurnApp:
    return _raw_sdk(f"{receiver_url}/raw", DEFAULT_KEYS)


def raw_sdk_one_key(receiver_url: str, loop: asyncio.AbstractEventLoop) -> TurnApp:
    return _raw_sdk(f"{receiver_url}/raw-one-key", ONE_KEY)


def _raw_sdk(base_url: str, keys: tuple[str, ...]) -> TurnApp:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": WORKFLOW}))
    provider.add_span_processor(references.SessionStamper(keys))
    exporter = OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", compression=Compression.Gzip)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    app = _turn_app(tracer.start_as_current_span, _cookie_middleware())
    return TurnApp(app, PLAIN_COOKIE, provider.force_flush)


def langfuse_sdk(receiver_url: str, loop: asyncio.AbstractEventLoop) -> TurnApp:
    """Langfuse sends to ``{base URL}/api/public/otel/v1/traces``.

    The base URL comes from ``LANGFUSE_BASE_URL`` / ``LANGFUSE_HOST``, which the
    worker's environment points at the receiver (``/langfuse``): the
    constructor argument's name changed across SDK versions, the variables did not.
    """
    from langfuse import Langfuse, propagate_attributes

    client = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench")

    def span(name: str) -> AbstractContextManager[Any]:
        # Typed here: without the bench extra installed, mypy sees the SDK as Any.
        observation: AbstractContextManager[Any] = client.start_as_current_observation(
            as_type="span", name=name
        )
        return observation

    def bind(session: str | None) -> AbstractContextManager[Any]:
        return propagate_attributes(session_id=session) if session else nullcontext()

    return TurnApp(_turn_app(span, _cookie_middleware(bind)), PLAIN_COOKIE, client.flush)


def neatlogs_sdk(receiver_url: str, loop: asyncio.AbstractEventLoop) -> TurnApp:
    """Without an API key the neatlogs SDK exports nothing, so it gets a dummy one."""
    import neatlogs

    neatlogs.init(
        api_key="bench-key",
        endpoint=f"{receiver_url}/neatlogs-sdk/v1/traces",
        workflow_name=WORKFLOW,
        register_shutdown_handlers=False,
    )

    def bind(session: str | None) -> AbstractContextManager[Any]:
        return neatlogs.identify(session_id=session)  # type: ignore[no-any-return]

    app = _turn_app(neatlogs.trace, _cookie_middleware(bind))
    return TurnApp(app, PLAIN_COOKIE, neatlogs.flush)


#: Worker key -> (receiver prefix its spans arrive under, builder).
BUILDERS: dict[str, tuple[str, Callable[[str, asyncio.AbstractEventLoop], TurnApp]]] = {
    "ours": ("ours", ours),
    "raw": ("raw", raw_sdk),
    "ours_one_key": ("ours-one-key", ours_one_key),
    "raw_one_key": ("raw-one-key", raw_sdk_one_key),
    "langfuse": ("langfuse", langfuse_sdk),
    "neatlogs_sdk": ("neatlogs-sdk", neatlogs_sdk),
    "ours_neatlogs": ("ours-neatlogs", ours_neatlogs_backend),
}
