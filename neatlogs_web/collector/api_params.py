"""The JSON API's query parameters and paging cursors, read strictly: a bad one is a
`BadQuery`, which the API answers with 400 and its message, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from .limits import MAX_NAME

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


def encode_cursor(key: tuple[int, str] | None) -> str | None:
    """A row key as the opaque `next` value, or None."""
    if key is None:
        return None
    ns, name = key
    return base64.urlsafe_b64encode(f"{ns}:{name}".encode()).decode()


def read_cursor(raw: str | None, name: str = "before") -> tuple[int, str] | None:
    """A `next` value taken back as `name`, as the row key it encodes; None if absent."""
    if not raw:
        return None
    try:
        ns_text, key = base64.urlsafe_b64decode(raw.encode()).decode().split(":", 1)
        ns = int(ns_text)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise BadQuery(f"{name} must be a 'next' value from a previous answer") from exc
    if not 0 <= ns < 2**63:  # what SQLite's integers hold; stored times are capped below
        raise BadQuery(f"{name} must be a 'next' value from a previous answer")
    return ns, key
