"""Whole-session sampling: keep or drop a session as a whole.

Backends sample trace by trace, which leaves a sampled session with holes.
Deciding root spans by a stable hash of the session id keeps every trace of
a kept session and none of a dropped one, in every process that shares the
rate; child spans follow their parent. Spans with no session fall back to
trace-id ratio sampling.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from neatlogs_web._session.binding import current_session_id

__all__ = ["SessionRatioSampler", "session_sampler"]

_HASH_SPACE = 2**64


@functools.lru_cache(maxsize=8192)
def _session_fraction(session_id: str) -> float:
    """A stable number in [0, 1) for a session id, the same in every process."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE


class SessionRatioSampler(Sampler):
    """Samples a root span if its session's hash falls under ``rate``."""

    def __init__(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0.0 and 1.0, not {rate!r}")
        self.rate = rate
        self._by_trace_id = TraceIdRatioBased(rate)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        session_id = current_session_id()
        if session_id is None:
            return self._by_trace_id.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        keep = _session_fraction(session_id) < self.rate
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE if keep else Decision.DROP, attributes, trace_state
        )

    def get_description(self) -> str:
        return f"SessionRatioSampler{{{self.rate}}}"


def session_sampler(rate: float) -> Sampler:
    """Children follow their parent; roots are decided by session."""
    return ParentBased(root=SessionRatioSampler(rate))
