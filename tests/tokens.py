"""Make session tokens the way a client (or an attacker) could, for tests."""

from __future__ import annotations

import hashlib
import time

from itsdangerous import TimestampSigner

from neatlogs_web._session.signing import SIGNING_SALT


def make_token(session_id: str, key: str, *, age_s: float = 0.0) -> str:
    """A token for ``session_id`` signed with ``key``, ``age_s`` seconds old."""

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_s)

    signer = Signer(key, salt=SIGNING_SALT, digest_method=hashlib.sha256)
    return signer.sign(session_id).decode()


def session_of(token: str) -> str:
    """The session id a token carries (its signature unchecked)."""
    return token.rsplit(".", 2)[0]
