"""Feedback tokens: a signed, expiring name for one turn of one session.

A response that carried a turn gets ``X-Neatlogs-Feedback-Token``:
``<trace id, 32 hex>-<root span id, 16 hex>-<session id>.<timestamp>.<signature>``,
itsdangerous ``TimestampSigner`` (HMAC-SHA256) over the middleware's key list,
with a salt of its own: a session token never passes as a feedback token,
nor the reverse. Whoever holds a token may judge that turn, and only from
the session it names, only until it expires.
"""

from __future__ import annotations

import contextvars
import re
import time
import weakref
from collections.abc import Sequence
from typing import Final, Literal, NamedTuple

from itsdangerous import BadSignature

from neatlogs_web._session.ids import MAX_ID_LENGTH, is_valid_session_id
from neatlogs_web._session.signing import key_list_signer

__all__ = [
    "FEEDBACK_TOKEN_HEADER",
    "FeedbackRefused",
    "FeedbackTokens",
    "FeedbackTurn",
    "RefusalReason",
    "check_feedback_token",
    "end_feedback",
    "serve_feedback",
    "serving_issuer",
]

FEEDBACK_TOKEN_HEADER: Final = "X-Neatlogs-Feedback-Token"
FEEDBACK_SALT: Final = b"neatlogs_web.feedback"
# "<32 hex>-<16 hex>-<id>.<timestamp>.<signature>": the id plus at most ~110 characters.
MAX_FEEDBACK_TOKEN_LENGTH: Final = MAX_ID_LENGTH + 120
# Allowed clock skew between processes that share a key.
_FUTURE_SKEW_S: Final = 300
_TOKEN_RE: Final = re.compile(
    r"(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})-(?P<session_id>[A-Za-z0-9._:@/+=\-]+)"
)

RefusalReason = Literal["malformed", "forged", "expired", "wrong_session", "no_session"]
#: The reasons in the order the checks find them.
_CHECK_ORDER: Final[tuple[RefusalReason, ...]] = (
    "malformed",
    "forged",
    "expired",
    "no_session",
    "wrong_session",
)


class FeedbackTurn(NamedTuple):
    """The turn a feedback token names."""

    session_id: str
    trace_id: int
    #: The turn's root span: the feedback span's parent.
    span_id: int


class FeedbackRefused(ValueError):
    """A feedback token that does not name a turn of the current session.

    ``reason`` says why: ``"malformed"`` (not a feedback token), ``"forged"``
    (its signature does not verify: tampered with, or signed with a key no
    longer listed), ``"expired"`` (older than ``feedback_max_age``),
    ``"wrong_session"`` (a turn of another session), ``"no_session"`` (no
    session is bound, or no middleware issues feedback tokens).
    """

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason: RefusalReason = reason


class FeedbackTokens:
    """Issues and checks one middleware's feedback tokens; holds no mutable state."""

    def __init__(self, keys: Sequence[bytes], max_age: float) -> None:
        self._signer = key_list_signer(keys, FEEDBACK_SALT)
        self.max_age = max_age
        _issuers.add(self)

    def issue(self, turn: FeedbackTurn) -> str:
        value = f"{turn.trace_id:032x}-{turn.span_id:016x}-{turn.session_id}"
        return self._signer.sign(value).decode("ascii")

    def check(self, token: str, session_id: str | None, now: float | None = None) -> FeedbackTurn:
        """The turn ``token`` names, if it is ours, unexpired and of ``session_id``;
        else :class:`FeedbackRefused` with the reason."""
        if not isinstance(token, str) or len(token) > MAX_FEEDBACK_TOKEN_LENGTH:
            raise FeedbackRefused("malformed", "this is not a feedback token")
        try:
            value, signed_at = self._signer.unsign(token, return_timestamp=True)
        except BadSignature:
            raise FeedbackRefused(
                "forged", "the feedback token's signature does not verify"
            ) from None
        named = _TOKEN_RE.fullmatch(value.decode("ascii", "replace"))
        if named is None or not is_valid_session_id(named["session_id"]):
            raise FeedbackRefused("malformed", "this is not a feedback token")
        age = (time.time() if now is None else now) - signed_at.timestamp()
        if age > self.max_age:
            raise FeedbackRefused("expired", "the feedback token has expired (feedback_max_age)")
        if age < -_FUTURE_SKEW_S:
            raise FeedbackRefused("forged", "the feedback token was signed in the future")
        turn = FeedbackTurn(
            named["session_id"], int(named["trace_id"], 16), int(named["span_id"], 16)
        )
        if session_id is None:
            raise FeedbackRefused("no_session", "no session is bound to check the token against")
        if turn.session_id != session_id:
            raise FeedbackRefused("wrong_session", "the feedback token is of another session")
        return turn


# Every middleware that issues feedback tokens, for record_feedback() outside a
# request; inside one, the middleware that serves it checks the token.
_issuers: weakref.WeakSet[FeedbackTokens] = weakref.WeakSet()
_request_issuer: contextvars.ContextVar[FeedbackTokens | None] = contextvars.ContextVar(
    "neatlogs_web_feedback_issuer", default=None
)


def serve_feedback(tokens: FeedbackTokens) -> contextvars.Token[FeedbackTokens | None]:
    """The request in effect is served by the middleware holding ``tokens``: its
    keys and ``feedback_max_age`` check the tokens it receives. Undo with
    :func:`end_feedback`."""
    return _request_issuer.set(tokens)


def serving_issuer() -> FeedbackTokens | None:
    """The feedback tokens of the middleware serving the request in effect, if it issues any."""
    return _request_issuer.get()


def end_feedback(token: contextvars.Token[FeedbackTokens | None]) -> None:
    try:
        _request_issuer.reset(token)
    except ValueError:
        return  # another context's token: that context dies with its task


def check_feedback_token(
    token: str, session_id: str | None, now: float | None = None
) -> FeedbackTurn:
    """The turn ``token`` names, checked by the middleware serving the request, or
    outside requests by each middleware that issues tokens; :class:`FeedbackRefused`
    with the reason of the one whose checks got furthest."""
    serving = _request_issuer.get()
    issuers = [serving] if serving is not None else list(_issuers)
    if not issuers:
        raise FeedbackRefused(
            "no_session",
            "no middleware issues feedback tokens: pass feedback=True to NeatlogsSessionMiddleware",
        )
    refusals = []
    for issuer in issuers:
        try:
            return issuer.check(token, session_id, now)
        except FeedbackRefused as refused:
            refusals.append(refused)
    # The check that got furthest says the most: a token that verifies and is
    # unexpired under one issuer (a longer feedback_max_age) is of another session.
    raise max(refusals, key=lambda refused: _CHECK_ORDER.index(refused.reason))
