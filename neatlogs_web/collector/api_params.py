"""The JSON API's query parameters and paging cursors, read strictly: a bad one is a
`BadQuery`, which the API answers with 400 and its message, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from .felt import Thumb
from .limits import MAX_NAME
from .summaries import SessionOrder

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Search text, filters and ids: every session id, end user and workflow the store
#: files traces under fits (they are cut to this length at ingest).
TEXT_LIMIT = MAX_NAME
_LIMIT_DIGITS = len(str(MAX_LIMIT))


class BadQuery(ValueError):
    """A query parameter is invalid; answered with 400 and this message."""


def read_limit(raw: str | None, default: int = DEFAULT_LIMIT) -> int:
    """A page size from 1 to `MAX_LIMIT`; `default` when the parameter is absent or empty."""
    if raw is None or raw == "":
        return default
    # isdigit() alone takes "²" and other Unicode digits that int() reads differently;
    # int() refuses thousands of digits.
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw.lstrip("0")) > _LIMIT_DIGITS
        or not 1 <= int(raw) <= MAX_LIMIT
    ):
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def read_text(params: Any, name: str) -> str | None:
    """A text parameter, None when empty."""
    raw: str | None = params.get(name) or None
    if raw is not None:
        check_length(raw, name)
    return raw


def read_workflow(params: Any) -> str | None:
    """The `workflow` a session is in: None when the parameter is absent, "" (no
    workflow) when it is given empty."""
    raw: str | None = params.get("workflow")
    if raw is not None:
        check_length(raw, "workflow")
    return raw


def check_length(raw: str, name: str) -> None:
    """Refuse a text or id longer than any the store files traces under."""
    # SQLite refuses a LIKE pattern past 50,000 bytes; no stored key is longer than this.
    if len(raw) > TEXT_LIMIT:
        raise BadQuery(f"{name} must be at most {TEXT_LIMIT} characters, not {len(raw)}")


def read_flag(params: Any, name: str) -> bool:
    """A yes/no parameter: 1 or true, 0, false or absent."""
    raw = params.get(name, "")
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise BadQuery(f"{name} must be 1 or 0")


def read_order(params: Any) -> SessionOrder:
    """The sessions list's `sort`: `recent` (the default) or `wait`."""
    raw = params.get("sort") or "recent"
    if raw == "recent":
        return "recent"
    if raw == "wait":
        return "wait"
    raise BadQuery("sort must be 'recent' or 'wait'")


def read_thumb(params: Any, name: str) -> Thumb | None:
    """A `negative` / `positive` parameter as the thumb it keeps; None when absent."""
    raw = params.get(name) or None
    if raw is None:
        return None
    if raw == "negative":
        return "down"
    if raw == "positive":
        return "up"
    raise BadQuery(f"{name} must be 'negative' or 'positive'")


def read_time(params: Any, name: str) -> int | None:
    """An RFC 3339 time parameter as nanoseconds since the epoch."""
    raw = params.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise BadQuery(f"{name} must be an RFC 3339 time, such as 2025-01-31T12:00:00Z") from exc
    if moment.tzinfo is None:
        raise BadQuery(f"{name} must say its time zone, such as 2025-01-31T12:00:00Z")
    seconds = moment.timestamp()
    if not 0 <= seconds < 2**63 / 1e9:
        raise BadQuery(f"{name} is out of range")
    return int(seconds * 1_000_000) * 1000


def encode_cursor(
    key: tuple[int, str] | tuple[int, str, str] | tuple[int, str, str, str] | None,
) -> str | None:
    """A row key (a time, then names) as the opaque `next` value, or None."""
    if key is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, ensure_ascii=False).encode()).decode()


def read_cursor(raw: str | None, name: str = "before") -> tuple[int, str] | None:
    """A trace list's `next` value taken back as `name`: the (start, trace id) it
    encodes; None if absent."""
    if not raw:
        return None
    ns, (trace_id,) = _read_key(raw, name, 1)
    return ns, trace_id


def session_cursor(key: tuple[int, str, str], order: SessionOrder) -> str | None:
    """Where a sessions page ends, as its `next` value: the key in that order (a time,
    the session id, its workflow), and the order unless it is the default one, so a
    cursor is never taken back in another order."""
    return encode_cursor(key if order == "recent" else (*key, order))


def read_session_cursor(raw: str | None, order: SessionOrder) -> tuple[int, str, str] | None:
    """The sessions list's `next` value taken back as `before`: the (last activity or
    worst wait, session id, workflow) it encodes, in the list's order; None if absent."""
    if not raw:
        return None
    if order == "recent":
        ns, (session_id, workflow) = _read_key(raw, "before", 2)
        return ns, session_id, workflow
    ns, (session_id, workflow, named) = _read_key(raw, "before", 3)
    if named != order:
        raise BadQuery(f"before must be a 'next' value from a previous answer in sort={order}")
    return ns, session_id, workflow


def _read_key(raw: str, name: str, names: int) -> tuple[int, list[str]]:
    """A cursor's time and its ``names`` strings; BadQuery for anything else."""
    problem = BadQuery(f"{name} must be a 'next' value from a previous answer")
    try:
        key = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, UnicodeError, ValueError, RecursionError) as exc:
        raise problem from exc
    if (
        not isinstance(key, list)
        or len(key) != names + 1
        or type(key[0]) is not int
        or not all(isinstance(part, str) for part in key[1:])
    ):
        raise problem
    if not 0 <= key[0] < 2**63:  # what SQLite's integers hold; stored times are capped below
        raise problem
    return key[0], key[1:]
