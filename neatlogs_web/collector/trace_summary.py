"""What a batch's spans add to their traces' summary rows.

A trace's spans arrive over several exports, in any order, and a retried export
repeats them; the store adds only new spans, so a trace's row is its stored row
merged with what the batch adds (`TraceDelta`), never rebuilt from its spans. A
person's feedback on the turn, however late it comes, adds a judgment to the row and
nothing else: no span, no time, no name, and never the session or workflow it is
filed under.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import conversation, felt, grouping
from .felt import Judgment, ResponseFigures
from .otlp import STATUS_ERROR, Span
from .summaries import NO_WORKFLOW

#: Longest input or output text kept on a trace row; the spans keep it whole.
TEXT_LIMIT = 2_000

# A trace row before any span of the trace was stored, in `schema.TRACE_COLUMNS` order
# after the trace id: no session, name, times or figures, zero counts, no marker.
_EMPTY_ROW = (None,) * 7 + (0, 0, None, None, None, 0, 0) + (None,) * 11 + (0, 0, 0, None)
_NO_FIGURES = ResponseFigures(None, None, None, None)


def trace_deltas(spans: Sequence[Span]) -> dict[str, TraceDelta]:
    """What these new spans add to each of their traces."""
    deltas: dict[str, TraceDelta] = {}
    # A batch part's spans share one scope dict: whether it is a transport scope is
    # asked once per part.
    transport_scopes: dict[int, bool] = {}
    for span in spans:
        delta = deltas.get(span.trace_id)
        if delta is None:
            delta = deltas[span.trace_id] = TraceDelta()
        transport = transport_scopes.get(id(span.scope))
        if transport is None:
            transport = grouping.is_transport_scope(span.scope)
            transport_scopes[id(span.scope)] = transport
        delta.add(span, transport)
    return deltas


@dataclass(slots=True)
class TraceDelta:
    """What one batch adds to a trace; merged into its stored row."""

    span_count: int = 0
    error_count: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    neatlogs_complete: bool = False
    session_id: str | None = None
    workflow: str | None = None
    root: Span | None = None
    earliest: Span | None = None
    app_spans: int = 0
    end_user: str | None = None
    input: str | None = None
    input_key: int | None = None
    output: str | None = None
    output_key: int | None = None
    judgments: list[Judgment] = field(default_factory=list)
    feedback_up: int = 0
    feedback_down: int = 0

    def add(self, span: Span, transport_scope: bool) -> None:
        """Count a new span; the SDK's completion marker only says the trace is complete,
        a feedback span only judges the turn."""
        if felt.is_feedback(span):
            # Its session and workflow are the sender's, who may judge from another tab
            # or app: only the turn's own spans say where the turn is filed.
            self._judged(felt.judgment_of(span))
            return
        if self.session_id is None:
            self.session_id = grouping.session_of(span)
        if self.workflow is None:
            self.workflow = grouping.workflow_of(span.resource)
        if grouping.is_marker(span):
            self.neatlogs_complete = True
            return
        self.span_count += 1
        self.error_count += span.status_code == STATUS_ERROR
        if span.parent_span_id is None:
            self.root = span
        if self.earliest is None or span.start_ns < self.earliest.start_ns:
            self.earliest = span
        self.start_ns = _min(self.start_ns, span.start_ns)
        self.end_ns = _max(self.end_ns, span.end_ns)
        if not grouping.is_transport(span, transport_scope):
            self.app_spans += 1
        if span.attributes.keys().isdisjoint(grouping.NOTABLE_KEYS):
            return  # most spans: no usage, end user, input or output to look for
        tokens = grouping.tokens_of(span)
        if tokens is not None:
            self.input_tokens = _add(self.input_tokens, tokens.input)
            self.output_tokens = _add(self.output_tokens, tokens.output)
            self.total_tokens = _add(self.total_tokens, tokens.total)
        if self.end_user is None:
            self.end_user = grouping.end_user_of(span)
        if conversation.may_converse(span):
            self._converse(span)

    def _judged(self, judgment: Judgment) -> None:
        self.judgments.append(judgment)
        self.feedback_up += judgment.thumb == "up"
        self.feedback_down += judgment.thumb == "down"

    def _converse(self, span: Span) -> None:
        """Keep the span's input and output when they beat the trace's so far.

        The root's input and output win (what backends that read one span per trace
        show); then an LLM span's; then any span's. Among equals the earliest input and
        the latest output win. Rank and time fit one integer: the rank above bit 56,
        the time in microseconds-ish (ns >> 10, under 2**54 until the year 2500) below.
        """
        talk = conversation.conversation_of(span)
        if span.parent_span_id is None:
            rank = 2
        elif talk.input_messages or talk.output_messages or grouping.ai_kind_of(span) == "LLM":
            rank = 1
        else:
            rank = 0
        if talk.input is not None:
            key = ((2 - rank) << 56) | (span.start_ns >> 10)
            if self.input_key is None or key < self.input_key:
                self.input, self.input_key = _clip(talk.input), key
        if talk.output is not None:
            key = (rank << 56) | (span.end_ns >> 10)
            if self.output_key is None or key > self.output_key:
                self.output, self.output_key = _clip(talk.output), key

    def merged_into(self, trace_id: str, old: Sequence[Any] | None) -> tuple[Any, ...]:
        """The trace's new row, in `schema.TRACE_COLUMNS` order."""
        if old is None:
            old = (trace_id, *_EMPTY_ROW)
        (_, session_id, workflow, name, root_span_id, root_status, start_ns, end_ns) = old[:8]
        (link_trace, http_status, end_user, text_in, in_key, text_out, out_key) = old[15:22]
        figures = old[22:26]
        root = self.root
        root_session = grouping.session_of(root) if root is not None else None
        # The root's session wins: it is what backends that read one span per trace show.
        session_id = root_session or session_id or self.session_id
        if root is not None:
            workflow = grouping.workflow_of(root.resource) or workflow or self.workflow
            name, root_span_id, root_status = root.name, root.span_id, root.status_code
            link_trace = grouping.linked_trace_of(root)
            http_status = grouping.http_status_of(root)
            figures = felt.response_figures(root.attributes) or _NO_FIGURES
        else:
            workflow = workflow or self.workflow
            earliest = self.earliest
            # Until the root arrives, the trace is named after its earliest span.
            if (
                root_span_id is None
                and earliest is not None
                and (start_ns is None or earliest.start_ns < start_ns)
            ):
                name = earliest.name
        if self.input_key is not None and (in_key is None or self.input_key < in_key):
            text_in, in_key = self.input, self.input_key
        if self.output_key is not None and (out_key is None or self.output_key > out_key):
            text_out, out_key = self.output, self.output_key
        app_spans = old[14] + self.app_spans
        return (
            trace_id,
            session_id,
            workflow or NO_WORKFLOW,
            name,
            root_span_id,
            root_status,
            _min(start_ns, self.start_ns),
            _max(end_ns, self.end_ns),
            old[8] + self.span_count,
            old[9] + self.error_count,
            _add(old[10], self.input_tokens),
            _add(old[11], self.output_tokens),
            _add(old[12], self.total_tokens),
            int(bool(old[13]) or self.neatlogs_complete),
            app_spans,
            link_trace,
            http_status,
            end_user or self.end_user,
            text_in,
            in_key,
            text_out,
            out_key,
            *figures,
            old[26] + self.feedback_up,
            old[27] + self.feedback_down,
            old[28] + len(self.judgments),
            figures[1] if app_spans else None,  # a turn's wait, not a request's
        )


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b
