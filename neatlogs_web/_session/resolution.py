"""What resolution decides: the session to bind and what the response gets.

Values only, shared by the resolver that makes them, the memo that keeps
them for returning users and the adapters that act on them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NeedsBody", "Resolution"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the middleware binds and what it adds to the response."""

    session_id: str
    #: Which source won: "conversation", "header", "cookie", "baggage" or "new".
    source: str
    #: Set when an idle timeout started this session.
    previous_session_id: str | None = None
    #: A full ``Set-Cookie`` value, only when the cookie must change.
    set_cookie: str | None = None
    #: The signed token to echo in the session header, when issued or refreshed.
    echo_token: str | None = None
    #: A conversation id the app may confirm (``conversation_binding="when_confirmed"``).
    pending_conversation_id: str | None = None
    #: Whether the response needs :meth:`ResponseHeaders.headers`. Decided
    #: with the resolution, which a returning user's requests share, not per request.
    changes_response: bool = False


@dataclass(frozen=True, slots=True)
class NeedsBody:
    """Resolution reached the JSON-body source: read the body, then resume here."""

    resume_at: int
