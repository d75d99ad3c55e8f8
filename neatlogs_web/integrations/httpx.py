"""Carry the current session to the services a request calls, over httpx.

An API service that calls a tool service per turn wants the tool's spans in
the caller's session and trace. ``propagate()`` adds to every request for an
allowed host: the session as a signed token in the session header (the
downstream middleware verifies it with the same key, or one in its key
list), W3C ``traceparent`` through the OpenTelemetry propagator, and, on
request, W3C ``baggage`` ``session.id``. Other hosts get nothing: a signed
session token is a credential for that session. That holds on every hop: a
redirect copies a request's headers to the next one, so each hop first takes
back what was added to the previous one, then adds afresh if its host is
allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar
from urllib.parse import quote

import httpx
from opentelemetry import propagate as otel_propagate

from neatlogs_web._session.binding import current_session_id
from neatlogs_web._session.signing import SessionSigner, resolve_secret_keys

__all__ = ["propagate"]

ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)

_BAGGAGE_KEY = "session.id"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Where a request keeps the values its headers had before we added ours. httpx
# copies a request's extensions to the request it builds for a redirect, with
# its headers, so the next hop knows what to take back.
_ADDED_HEADERS = "neatlogs_web.headers_before_propagation"


class _Propagator:
    """Adds the session headers to a request whose host is allowed, on every hop."""

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        secret_key: str | bytes | Sequence[str | bytes] | None,
        header_name: str,
        baggage: bool,
    ) -> None:
        hosts = [] if isinstance(allowed_hosts, str) else [h.lower() for h in allowed_hosts]
        if not hosts:
            raise ValueError(
                "allowed_hosts must list the hosts that may receive the session, "
                "e.g. ['tools.internal', '127.0.0.1:8001', '*.svc.cluster.local']"
            )
        self._exact = frozenset(h for h in hosts if not h.startswith("*."))
        self._suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        self._signer = SessionSigner(resolve_secret_keys(secret_key))
        self._header_name = header_name
        self._baggage = baggage

    def allows(self, url: httpx.URL) -> bool:
        host = url.host.lower()
        port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)
        if host in self._exact or f"{host}:{port}" in self._exact:
            return True
        return bool(self._suffixes) and host.endswith(self._suffixes)

    def __call__(self, request: httpx.Request) -> None:
        """Runs for every request httpx sends, each hop of a redirect included."""
        _take_back(request)
        if self.allows(request.url):
            _set_headers(request, self._headers(request.headers))

    def _headers(self, existing: httpx.Headers) -> dict[str, str]:
        """The headers this request gets: trace context, and the session when bound."""
        headers: dict[str, str] = {}
        otel_propagate.inject(headers)
        session_id = current_session_id()
        if session_id is None:
            return headers
        headers[self._header_name] = self._signer.sign(session_id)
        if self._baggage:
            member = f"{_BAGGAGE_KEY}={quote(session_id, safe='')}"
            before = headers.get("baggage", existing.get("baggage"))
            headers["baggage"] = f"{before},{member}" if before else member
        return headers


def _set_headers(request: httpx.Request, headers: dict[str, str]) -> None:
    """Set ``headers`` on ``request``, remembering the values they replace."""
    request.extensions[_ADDED_HEADERS] = {name: request.headers.get(name) for name in headers}
    request.headers.update(headers)


def _take_back(request: httpx.Request) -> None:
    """Restore the headers a previous hop's ``_set_headers`` replaced (a redirect
    copied them here), so a host that is not allowed receives none of them."""
    for name, before in request.extensions.pop(_ADDED_HEADERS, {}).items():
        if before is None:
            request.headers.pop(name, None)
        else:
            request.headers[name] = before


def propagate(
    client: ClientT,
    allowed_hosts: Iterable[str],
    secret_key: str | bytes | Sequence[str | bytes] | None = None,
    *,
    header_name: str = "X-Neatlogs-Session-Id",
    baggage: bool = False,
) -> ClientT:
    """Install session propagation on an ``httpx.Client`` or ``AsyncClient``; return it.

    ``allowed_hosts``: hosts (``"tools.internal"``), host and port
    (``"127.0.0.1:8001"``) or subdomain wildcards (``"*.svc.cluster.local"``)
    that receive the session; ``secret_key`` signs it (default
    ``NEATLOGS_SECRET_KEY``; with a list, the first key signs); ``baggage``
    also sends W3C baggage ``session.id`` for downstreams that opt in to it.
    The headers are added by a request event hook, which httpx runs for every
    hop of a redirect: they reflect the session bound where each request is
    sent, and a redirect to a host that is not allowed arrives without them.
    """
    propagator = _Propagator(allowed_hosts, secret_key, header_name, baggage)
    if isinstance(client, httpx.AsyncClient):

        async def add_session_async(request: httpx.Request) -> None:
            propagator(request)

        client.event_hooks["request"].append(add_session_async)
    else:

        def add_session(request: httpx.Request) -> None:
            propagator(request)

        client.event_hooks["request"].append(add_session)
    return client
