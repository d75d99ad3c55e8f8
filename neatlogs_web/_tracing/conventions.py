"""What a span says about the conversation, in the keys every backend reads.

Backends agree on sessions but not on the rest: Phoenix reads OpenInference
(``input.value``, ``output.value``, ``openinference.span.kind``,
``llm.token_count.*``), OpenTelemetry's GenAI conventions name usage and
models their own way (``gen_ai.usage.*``, ``gen_ai.request.model``), and
the neatlogs backend has its own names (``neatlogs.input.value``, ...). A
turn's input and output, a span's kind, model and token usage are written
here once, under each convention's keys, so one call serves all of them.
"""

from __future__ import annotations

import json
from typing import Final, Literal

from opentelemetry import trace as otel_trace
from opentelemetry.trace import Span

__all__ = ["SpanKind", "set_input", "set_kind", "set_output", "set_usage"]

SpanKind = Literal[
    "chain", "llm", "tool", "retriever", "agent", "embedding", "reranker", "guardrail", "evaluator"
]
SPAN_KINDS: Final = frozenset(SpanKind.__args__)  # type: ignore[attr-defined]
#: The neatlogs SDK's span kind key; a framework's request span that became a
#: turn carries it too.
KIND_KEY: Final = "neatlogs.span.kind"

# GenAI's operation names for the kinds that have one.
_GENAI_OPERATIONS: Final = {
    "llm": "chat",
    "tool": "execute_tool",
    "agent": "invoke_agent",
    "embedding": "embeddings",
}


def check_kind(kind: str) -> SpanKind:
    """``kind`` (any case: OpenInference writes ``"LLM"``) if it is one of
    :data:`SpanKind`, else a ``ValueError`` listing them."""
    lowered = kind.lower() if isinstance(kind, str) else kind
    if lowered not in SPAN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(sorted(SPAN_KINDS))}, not {kind!r}")
    return lowered  # type: ignore[return-value]


def set_kind(kind: SpanKind, span: Span | None = None) -> None:
    """Mark ``span`` (default: the current span) as an LLM call, a tool call, a
    retrieval, ...: backends style and count spans by kind (Phoenix counts
    tokens on LLM spans only)."""
    span = span or otel_trace.get_current_span()
    kind = check_kind(kind)
    span.set_attribute("openinference.span.kind", kind.upper())
    span.set_attribute(KIND_KEY, kind.upper())
    operation = _GENAI_OPERATIONS.get(kind)
    if operation is not None:
        span.set_attribute("gen_ai.operation.name", operation)


def set_input(value: object, span: Span | None = None) -> None:
    """What the user (or the caller) said: text as is, anything else as JSON."""
    _set_value(span or otel_trace.get_current_span(), "input", value)


def set_output(value: object, span: Span | None = None) -> None:
    """What the app answered: text as is, anything else as JSON."""
    _set_value(span or otel_trace.get_current_span(), "output", value)


def set_usage(
    *,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    model: str | None = None,
    span: Span | None = None,
) -> None:
    """Token usage and model of an LLM call, on ``span`` (default: the current span)."""
    span = span or otel_trace.get_current_span()
    if prompt_tokens is not None:
        for key in ("llm.token_count.prompt", "gen_ai.usage.input_tokens"):
            span.set_attribute(key, prompt_tokens)
        span.set_attribute("neatlogs.llm.token_count.prompt", prompt_tokens)
    if completion_tokens is not None:
        for key in ("llm.token_count.completion", "gen_ai.usage.output_tokens"):
            span.set_attribute(key, completion_tokens)
        span.set_attribute("neatlogs.llm.token_count.completion", completion_tokens)
    if prompt_tokens is not None or completion_tokens is not None:
        total = (prompt_tokens or 0) + (completion_tokens or 0)
        span.set_attribute("llm.token_count.total", total)
        span.set_attribute("neatlogs.llm.token_count.total", total)
    if model is not None:
        for key in ("llm.model_name", "gen_ai.request.model", "neatlogs.llm.model_name"):
            span.set_attribute(key, model)


def _set_value(span: Span, which: Literal["input", "output"], value: object) -> None:
    if isinstance(value, str):
        text, mime_type = value, "text/plain"
    else:
        text, mime_type = json.dumps(value, default=str, ensure_ascii=False), "application/json"
    span.set_attribute(f"{which}.value", text)
    span.set_attribute(f"{which}.mime_type", mime_type)
    span.set_attribute(f"neatlogs.{which}.value", text)
