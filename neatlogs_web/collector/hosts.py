"""Answer only requests addressed to the collector by one of its own names.

A web page on any site can have the browser send requests to 127.0.0.1 by rebinding
its own host name to that address (DNS rebinding): the browser then treats the
collector as that site and lets the page read the sessions and send spans. Such a
request still carries the page's host name in its `Host` header, so the collector
answers only for loopback names, the host it was configured with, and the address
the connection arrived on (an IP literal, which no DNS answer can rebind).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

#: The names every collector answers to, whatever it was told.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class HostCheck:
    """ASGI middleware: a request whose `Host` is not one of ours gets a 403."""

    def __init__(self, app: ASGIApp, *, hosts: Iterable[str] = ()) -> None:
        self._app = app
        names = (name_of(host) for host in (*LOOPBACK_NAMES, *hosts) if host)
        self._allowed = frozenset(name for name in names if name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        host = _host_header(scope)
        # A request without Host is no browser's (browsers always send one).
        if host is None or self._allows(host, scope):
            await self._app(scope, receive, send)
            return
        await self._refuse(host, scope)(scope, receive, send)

    def _allows(self, host: str, scope: Scope) -> bool:
        name = name_of(host)
        if name in self._allowed:
            return True
        server = scope.get("server")
        return server is not None and name == name_of(str(server[0]))

    def _refuse(self, host: str, scope: Scope) -> Response:
        server = scope.get("server")
        port = f":{server[1]}" if server is not None and server[1] is not None else ""
        message = (
            f"this collector does not answer for Host {host[:100]!r}: open it at"
            f" http://127.0.0.1{port}/ or http://localhost{port}/, or start it with"
            f" --allow-host {name_of(host)[:100] or 'NAME'} to answer for that name"
        )
        path: str = scope.get("path", "")
        if path.startswith(("/api/", "/v1/")):
            return JSONResponse({"error": message}, 403)
        return PlainTextResponse(message, 403)


def name_of(host: str) -> str:
    """A `Host` value without its port, lower case, brackets off an IPv6 literal."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else ""
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _host_header(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"host":
            return str(value.decode("latin-1"))
    return None
