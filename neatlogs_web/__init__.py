"""Per-request tracing sessions for multi-user Python web apps.

``init()`` once at startup; a middleware (``neatlogs_web.asgi`` or
``neatlogs_web.wsgi``) resolves each request's session; ``trace()`` blocks
become root traces or child spans that carry it.
"""

from neatlogs_web._session.binding import (
    current_end_user_id,
    current_session_id,
    session,
    with_current_session,
)
from neatlogs_web._session.feedback_tokens import FeedbackRefused, FeedbackTurn
from neatlogs_web._session.rebinding import bind_conversation, bind_session, confirm_conversation
from neatlogs_web._tracing.conventions import set_input, set_kind, set_output, set_usage
from neatlogs_web._tracing.feedback import feedback_token, record_feedback
from neatlogs_web._tracing.setup import flush, init, shutdown, stats
from neatlogs_web._tracing.stamping import (
    END_USER_KEY_PRESETS,
    SESSION_KEY_PRESETS,
    SessionSpanProcessor,
)
from neatlogs_web._tracing.trace import trace
from neatlogs_web._version import __version__

__all__ = [
    "END_USER_KEY_PRESETS",
    "SESSION_KEY_PRESETS",
    "FeedbackRefused",
    "FeedbackTurn",
    "SessionSpanProcessor",
    "__version__",
    "bind_conversation",
    "bind_session",
    "confirm_conversation",
    "current_end_user_id",
    "current_session_id",
    "feedback_token",
    "flush",
    "init",
    "record_feedback",
    "session",
    "set_input",
    "set_kind",
    "set_output",
    "set_usage",
    "shutdown",
    "stats",
    "trace",
    "with_current_session",
]
