"""Signed session tokens: itsdangerous ``TimestampSigner`` with a key list.

A token is ``<id>.<timestamp>.<signature>`` (HMAC-SHA256, our own salt).
The first key signs, every key verifies, so keys rotate without logging
anyone out. A returning user sends the same token on every request, so a
verified token is remembered: the HMAC runs once per token, not per request.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import warnings
from collections.abc import Sequence
from typing import Final, NamedTuple

from itsdangerous import BadSignature, TimestampSigner

from neatlogs_web._app_frame import app_stacklevel
from neatlogs_web._session.cache import BoundedCache
from neatlogs_web._session.ids import MAX_ID_LENGTH, is_valid_session_id

SIGNING_SALT: Final = b"neatlogs_web.session"
# "<id>.<timestamp>.<signature>": the id plus at most ~60 characters.
MAX_TOKEN_LENGTH: Final = MAX_ID_LENGTH + 80
VERIFIED_CACHE_SIZE: Final = 16384

TOKEN_RE: Final = re.compile(r"[A-Za-z0-9._:@/+=\-]{1,208}")

SecretKeys = str | bytes | Sequence[str | bytes]


class VerifiedToken(NamedTuple):
    session_id: str
    signed_at: int
    #: Signed by a key other than the first: re-sign with the current key.
    old_key: bool


_process_key: bytes | None = None
_process_key_lock = threading.Lock()


def _random_process_key() -> bytes:
    global _process_key
    with _process_key_lock:
        if _process_key is None:
            warnings.warn(
                "neatlogs_web: no secret_key and no NEATLOGS_SECRET_KEY; using a random "
                "per-process key. Session cookies will not survive a restart nor work "
                "across worker processes: set NEATLOGS_SECRET_KEY (make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))').",
                RuntimeWarning,
                stacklevel=app_stacklevel(),
            )
            _process_key = secrets.token_bytes(32)
        return _process_key


def resolve_secret_keys(secret_key: SecretKeys | None) -> list[bytes]:
    """The ``secret_key`` option as a key list, newest first.

    ``None`` reads ``NEATLOGS_SECRET_KEY``, else falls back to a random
    per-process key with a warning.
    """
    if secret_key is None:
        env_key = os.environ.get("NEATLOGS_SECRET_KEY")
        return [env_key.encode()] if env_key else [_random_process_key()]
    if isinstance(secret_key, str | bytes):
        keys = [secret_key]
    elif isinstance(secret_key, list | tuple):
        keys = list(secret_key)
    else:
        # A dict or a set would sign with its key names, or in no stable order.
        raise ValueError(
            "secret_key must be a str, bytes or a list of them (newest first), "
            f"not {type(secret_key).__name__}"
        )
    if not keys:
        raise ValueError(
            "secret_key is an empty list: give at least one key (the first signs, all verify)"
        )
    if not all(isinstance(key, str | bytes) and key for key in keys):
        raise ValueError("secret_key: every key must be a non-empty str or bytes")
    return [key.encode() if isinstance(key, str) else key for key in keys]


class SessionSigner:
    """Signs session ids and verifies tokens; safe to share between threads."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._current = key_list_signer([keys[0]])
        self._fallback = key_list_signer(keys[1:]) if len(keys) > 1 else None
        self._verified: BoundedCache[str, VerifiedToken] = BoundedCache(VERIFIED_CACHE_SIZE)

    def sign(self, session_id: str) -> str:
        return self._current.sign(session_id).decode("ascii")

    def verify(self, token: str) -> VerifiedToken | None:
        """The token's session if its signature is valid, else ``None``.

        Age is not checked here: the caller knows the policy.
        """
        verified = self._verified.get(token)
        if verified is None:
            verified = _unsign(token, self._current, old_key=False)
            if verified is None and self._fallback is not None:
                verified = _unsign(token, self._fallback, old_key=True)
            if verified is not None:
                self._verified.put(token, verified)
        return verified


def looks_like_token(value: str) -> bool:
    """Whether ``value`` has a token's shape (not whether it verifies)."""
    return (
        len(value) <= MAX_TOKEN_LENGTH
        and TOKEN_RE.fullmatch(value) is not None
        and value.count(".") >= 2
    )


def key_list_signer(keys: Sequence[bytes], salt: bytes = SIGNING_SALT) -> TimestampSigner:
    """A signer that signs with the first of ``keys`` and verifies with each of them,
    under ``salt`` (one per kind of token, so no kind passes for another)."""
    # itsdangerous signs with the last key of its list.
    return TimestampSigner(list(reversed(keys)), salt=salt, digest_method=hashlib.sha256)


def _unsign(token: str, signer: TimestampSigner, *, old_key: bool) -> VerifiedToken | None:
    try:
        value, signed_at = signer.unsign(token, return_timestamp=True)
    except BadSignature:
        return None
    session_id = value.decode("ascii", "replace")
    if not is_valid_session_id(session_id):
        return None
    return VerifiedToken(session_id, int(signed_at.timestamp()), old_key)
