"""What a session id may be, and how a new one is made.

Ids travel in cookies, headers, URLs and span attributes of every backend:
the charset and length below are safe in all of them.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

MAX_ID_LENGTH: Final = 128
ID_CHARSET: Final = "[A-Za-z0-9._:@/+=-]"

_ID_RE: Final = re.compile(r"[A-Za-z0-9._:@/+=\-]{1,128}")


def is_valid_session_id(value: str) -> bool:
    """True for 1-128 characters of ``[A-Za-z0-9._:@/+=-]``."""
    return _ID_RE.fullmatch(value) is not None


def new_session_id() -> str:
    """An unguessable, URL-safe id (128 random bits)."""
    return secrets.token_urlsafe(16)
