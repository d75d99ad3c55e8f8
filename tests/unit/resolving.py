"""Requests as the adapters hand them to ``SessionResolver``: raw values in, a decision out."""

from __future__ import annotations

from collections import Counter
from typing import Any

import neatlogs_web
from neatlogs_web._session.options import SessionConfig
from neatlogs_web._session.resolution import NeedsBody, Resolution
from neatlogs_web._session.resolver import SessionResolver
from neatlogs_web._session.sources import RequestInputs

SECRET = "decisions-key"


def resolver(**options: Any) -> SessionResolver:
    """A resolver with these options, signing with ``SECRET`` unless they name keys."""
    return SessionResolver(SessionConfig(**{"secret_key": SECRET, **options}))


def resolve(
    resolver: SessionResolver,
    path: str = "/chat",
    query: str = "",
    body: bytes | None = b"",
    *,
    https: bool = False,
    **headers: str,
) -> Resolution:
    """Resolve a request as an adapter would: headers by ``RequestInputs`` field,
    the body read when resolution asks for it (``None``: one it could not read)."""
    inputs = RequestInputs(path, query)
    for field, value in headers.items():
        setattr(inputs, field, value)
    resolved = resolver.resolve(inputs, https=https)
    if isinstance(resolved, NeedsBody):
        resolver.read_json_body(inputs, body)
        resolved = resolver.resolve(inputs, https=https, resume_at=resolved.resume_at)
    assert isinstance(resolved, Resolution)
    return resolved


def rejected() -> Counter[str]:
    """Every skipped session value so far, by ``"<source>.<reason>"``."""
    return Counter(neatlogs_web.stats()["rejected"])


def cookie_header(*tokens: str, name: str = "neatlogs_session") -> str:
    return "; ".join(f"{name}={token}" for token in tokens)
