"""FastAPI dependencies: bind a route's conversation id, read the session.

The middleware resolves a session before routing. Routes that name the
conversation in a path parameter, a query parameter, a header or a JSON body
field can make it the session after routing, where FastAPI has already
parsed it: ``Depends(bind_session_from("conversation_id"))``. The request's
one binding is changed in place, so the streamed body, background tasks and
sync endpoints (run in the thread pool) of that request follow.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Path, Query, Request

from neatlogs_web._session.binding import current_session_id
from neatlogs_web._session.rebinding import bind_session

__all__ = ["CurrentSession", "bind_session_from", "current_session"]

Source = Literal["path", "query", "header", "body"]

_PARAMS: dict[str, Callable[..., Any]] = {"path": Path, "query": Query, "header": Header}
_SOURCES = (*_PARAMS, "body")


def bind_session_from(
    name: str = "conversation_id", *, source: Source = "path"
) -> Callable[..., Awaitable[str | None]]:
    """A dependency that binds request parameter ``name`` as the session.

    ``source``: ``"path"`` (the default), ``"query"``, ``"header"`` or
    ``"body"`` (a top-level field of a JSON body; the route's own body model
    is unaffected). The dependency returns the session id in effect
    afterwards. A missing or invalid value leaves the middleware's session in
    place (invalid values are counted in ``neatlogs_web.stats()``), never an
    error response — except a missing path parameter, which FastAPI reports.
    """
    if source == "body":
        return _bind_body_field(name)
    if source not in _PARAMS:
        raise ValueError(f"source must be one of {', '.join(_SOURCES)}, not {source!r}")
    default: Any = Path(alias=name) if source == "path" else _PARAMS[source](None, alias=name)

    async def bind_parameter(value: str | None) -> str | None:
        if value is not None:
            bind_session(value)
        return current_session_id()

    # FastAPI reads the parameter's source and alias from the signature.
    bind_parameter.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "value",
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=str if source == "path" else str | None,
            )
        ],
        return_annotation=str | None,
    )
    return bind_parameter


def _bind_body_field(name: str) -> Callable[[Request], Awaitable[str | None]]:
    # Read through the Request rather than a Body() parameter: a second body
    # parameter would make FastAPI expect the route's own model embedded.
    async def bind_body_field(request: Request) -> str | None:
        try:
            document = await request.json()
        except (ValueError, RecursionError):  # not JSON, or nested deeper than it parses
            return current_session_id()
        value = document.get(name) if isinstance(document, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            bind_session(value)
        return current_session_id()

    return bind_body_field


async def current_session() -> str | None:
    """A dependency returning the session id in effect for this request."""
    return current_session_id()


#: ``session_id: CurrentSession`` in an endpoint's parameters.
CurrentSession = Annotated[str | None, Depends(current_session)]
