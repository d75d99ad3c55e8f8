"""What a resolution adds to the response: the cookie, the echoed token, the trace id,
the feedback token.

Decided once per middleware from the options (the cookie's attributes), so
a response that needs headers builds them from a prepared string.
"""

from __future__ import annotations

from typing import Final

from neatlogs_web._session.feedback_tokens import (
    FEEDBACK_TOKEN_HEADER,
    FeedbackTokens,
    FeedbackTurn,
)
from neatlogs_web._session.options import SessionConfig
from neatlogs_web._session.resolution import Resolution
from neatlogs_web._session.signing import resolve_secret_keys

__all__ = ["TRACE_ID_HEADER", "ResponseHeaders"]

TRACE_ID_HEADER: Final = "X-Neatlogs-Trace-Id"


class ResponseHeaders:
    """The session cookie's ``Set-Cookie`` value and the headers a response gets."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        #: Signs each turn's feedback token; ``None`` unless ``feedback=True``.
        self.feedback_tokens = (
            FeedbackTokens(resolve_secret_keys(config.secret_key), config.feedback_max_age)
            if config.feedback
            else None
        )
        attributes = f"; Path={config.cookie_path}"
        if config.max_age is not None:
            attributes += f"; Max-Age={int(config.max_age)}"
        if config.cookie_domain:
            attributes += f"; Domain={config.cookie_domain}"
        attributes += f"; HttpOnly; SameSite={config.same_site.capitalize()}"
        # By whether the request came over https: Secure unless told otherwise.
        self._cookie_attributes = {
            False: attributes + ("; Secure" if config.secure else ""),
            True: attributes + ("; Secure" if config.secure is not False else ""),
        }

    def set_cookie(self, token: str, https: bool) -> str:
        """The ``Set-Cookie`` value carrying ``token``."""
        return f"{self.config.cookie_name}={token}{self._cookie_attributes[https]}"

    def headers(
        self, resolution: Resolution, trace_id: int | None, turn: FeedbackTurn | None = None
    ) -> list[tuple[str, str]]:
        """``Set-Cookie`` (with ``Vary: Cookie``), the echoed token, the latest
        turn's trace id and its feedback token, as the resolution and the options
        call for. ``turn`` is the latest turn known as the response starts."""
        headers = []
        if resolution.set_cookie is not None:
            headers.append(("Set-Cookie", resolution.set_cookie))
            headers.append(("Vary", "Cookie"))
        if resolution.echo_token is not None:
            headers.append((self.config.header_name, resolution.echo_token))
        if self.config.expose_trace_id and trace_id is not None:
            headers.append((TRACE_ID_HEADER, f"{trace_id:032x}"))
        if turn is not None and self.feedback_tokens is not None:
            headers.append((FEEDBACK_TOKEN_HEADER, self.feedback_tokens.issue(turn)))
        return headers
