"""What a person thought of an answer, recorded as part of that answer's turn.

The middleware (``feedback=True``) gives each response that carried a turn
a feedback token naming the session and the turn's span. Later, in another
request of the same session, :func:`record_feedback` checks the token
against the session bound there and records a ``feedback`` span whose
parent is the turn's span: the judgment sits in the turn's trace, carrying
the session like every span started while it is bound. An answer whose
headers went out before its turn began (a streamed reply opening the turn)
or that has none (a WebSocket reply) sends :func:`feedback_token` in its body.
"""

from __future__ import annotations

import math
from typing import Final

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from neatlogs_web._session.binding import current_session_id
from neatlogs_web._session.counters import reject
from neatlogs_web._session.feedback_tokens import (
    FeedbackRefused,
    FeedbackTurn,
    check_feedback_token,
    serving_issuer,
)
from neatlogs_web._tracing import setup
from neatlogs_web._tracing.request_trace import (
    RequestTrace,
    Turn,
    current_request_trace,
    turn_in_effect,
)

__all__ = [
    "FEEDBACK_COMMENT_KEY",
    "FEEDBACK_LABEL_KEY",
    "FEEDBACK_SCORE_KEY",
    "FEEDBACK_SPAN_NAME",
    "feedback_token",
    "feedback_turn",
    "record_feedback",
]

FEEDBACK_SPAN_NAME: Final = "feedback"
FEEDBACK_SCORE_KEY: Final = "neatlogs.feedback.score"
FEEDBACK_LABEL_KEY: Final = "neatlogs.feedback.label"
FEEDBACK_COMMENT_KEY: Final = "neatlogs.feedback.comment"
MAX_LABEL_LENGTH: Final = 100
MAX_COMMENT_LENGTH: Final = 4000


def feedback_turn(trace: RequestTrace) -> FeedbackTurn | None:
    """The request's latest turn, as its response's feedback token names it."""
    return _as_feedback_turn(trace.last_turn)


def feedback_token() -> str | None:
    """A feedback token for the turn whose block the caller runs in (else the
    request's latest turn), to send in the answer itself.

    For an answer whose headers went out before its turn began (a streamed
    body that opens the turn, as a chat reply does) or that has no headers (a
    WebSocket reply): call it inside the turn's block and send the token with
    the answer; the page sends it back with the judgment, as it would the
    ``X-Neatlogs-Feedback-Token`` header's. ``None`` outside a request, before
    its first turn, for a turn not recorded, or unless the middleware was
    given ``feedback=True``.
    """
    issuer, request = serving_issuer(), current_request_trace()
    if issuer is None or request is None:
        return None
    turn = _as_feedback_turn(turn_in_effect() or request.last_turn)
    return None if turn is None else issuer.issue(turn)


def _as_feedback_turn(turn: Turn | None) -> FeedbackTurn | None:
    """``turn`` as a feedback token names it: none when it carries no session or
    was not recorded (sampled out, tracing not set up)."""
    if turn is None or turn.session_id is None:
        return None
    span = turn.span_context
    if not span.is_valid or not span.trace_flags.sampled:
        return None
    return FeedbackTurn(turn.session_id, span.trace_id, span.span_id)


def record_feedback(
    token: str,
    *,
    score: float | None = None,
    label: str | None = None,
    comment: str | None = None,
) -> FeedbackTurn:
    """Record a judgment of the turn ``token`` names, as a ``feedback`` span in
    that turn's trace (its parent is the turn's span).

    The token must be one the middleware issued (``feedback=True``), unexpired,
    and of the session bound now (the request's). Otherwise nothing is recorded
    and :class:`FeedbackRefused` says why (its ``reason``). ``score`` is a
    number (e.g. 1 / 0 for thumbs up / down), ``label`` a short category,
    ``comment`` free text; at least one is needed (``ValueError`` otherwise).
    Returns the turn judged.
    """
    attributes = _feedback_attributes(score, label, comment)
    try:
        turn = check_feedback_token(token, current_session_id())
    except FeedbackRefused as refused:
        reject("feedback", refused.reason)
        raise
    parent = SpanContext(turn.trace_id, turn.span_id, is_remote=False, trace_flags=TraceFlags(1))
    # A context of its own: inside a trace() block, the turn named is still the parent.
    context = otel_trace.set_span_in_context(NonRecordingSpan(parent), Context())
    pipeline = setup.active_pipeline()
    tracer = pipeline.tracer if pipeline is not None else setup.tracer_before_init()
    tracer.start_span(FEEDBACK_SPAN_NAME, context=context, attributes=attributes).end()
    return turn


def _feedback_attributes(
    score: float | None, label: str | None, comment: str | None
) -> dict[str, float | str]:
    """The judgment as span attributes; ``ValueError`` naming the argument at fault."""
    if score is None and label is None and comment is None:
        raise ValueError("record_feedback() needs a score, a label or a comment")
    attributes: dict[str, float | str] = {}
    if score is not None:
        attributes[FEEDBACK_SCORE_KEY] = _finite_score(score)
    for key, name, value, limit in (
        (FEEDBACK_LABEL_KEY, "label", label, MAX_LABEL_LENGTH),
        (FEEDBACK_COMMENT_KEY, "comment", comment, MAX_COMMENT_LENGTH),
    ):
        if value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= limit or not _is_unicode_text(value):
            raise ValueError(f"{name} must be text of 1 to {limit} characters, no lone surrogates")
        attributes[key] = value
    return attributes


def _is_unicode_text(value: str) -> bool:
    """Whether ``value`` can be sent as UTF-8: a lone surrogate (``"\\ud800"``, valid
    in JSON) cannot, and the exporter would drop the attribute."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite_score(score: object) -> float:
    """``score`` as a float; ``ValueError`` unless it is a finite number (an integer
    too large for a float included)."""
    if isinstance(score, int | float) and not isinstance(score, bool):
        try:
            value = float(score)
        except OverflowError:
            value = math.inf
        if math.isfinite(value):
            return value
    raise ValueError(f"score must be a finite number, not {score!r}"[:200])
