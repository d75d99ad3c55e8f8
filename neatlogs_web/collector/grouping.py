"""What a span says about its session, workflow, token usage and trace completion.

Different SDKs put the same facts under different keys; this module is the one place
that knows them, so the store can group spans from the neatlogs SDK, OpenInference /
Phoenix instrumentations and Langfuse-style code alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .otlp import Span

#: Session keys, most specific first: the OpenTelemetry convention, the neatlogs
#: backend's key, then Langfuse's.
SESSION_KEYS = ("session.id", "neatlogs.session.id", "langfuse.session.id")

#: Resource keys naming the workflow (application) a span comes from.
WORKFLOW_KEYS = ("neatlogs.workflow_name", "service.name")

#: Input / output / total token keys: GenAI semantic conventions, then OpenInference.
_INPUT_KEYS = ("gen_ai.usage.input_tokens", "llm.token_count.prompt")
_OUTPUT_KEYS = ("gen_ai.usage.output_tokens", "llm.token_count.completion")
_TOTAL_KEYS = ("llm.token_count.total",)
_TOKEN_KEYS = frozenset(_INPUT_KEYS + _OUTPUT_KEYS + _TOTAL_KEYS)

MARKER_NAME = "neatlogs.trace.complete"


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token usage of one span; each count is None when the span does not report it."""

    input: int | None
    output: int | None
    total: int | None


def session_of(span: Span) -> str | None:
    """The span's session id: from its own attributes, else from its resource."""
    return _first_str(span.attributes, SESSION_KEYS) or _first_str(span.resource, SESSION_KEYS)


def workflow_of(resource: Mapping[str, Any]) -> str | None:
    """The application a resource describes, as the neatlogs SDK names it."""
    return _first_str(resource, WORKFLOW_KEYS)


def is_marker(span: Span) -> bool:
    """True for the neatlogs SDK's "trace complete" marker, which is not a real operation."""
    return span.name == MARKER_NAME and span.attributes.get("neatlogs.internal") in (True, "true")


def tokens_of(span: Span) -> Tokens | None:
    """The span's token usage, or None if it reports none.

    One key per count is read (the first present), because instrumentations that emit
    both conventions report the same usage twice.
    """
    attributes = span.attributes
    if attributes.keys().isdisjoint(_TOKEN_KEYS):
        return None  # most spans: no usage at all, so no key-by-key search
    input_tokens = _first_int(attributes, _INPUT_KEYS)
    output_tokens = _first_int(attributes, _OUTPUT_KEYS)
    total = _first_int(attributes, _TOTAL_KEYS)
    if input_tokens is None and output_tokens is None and total is None:
        return None
    if total is None:
        total = (input_tokens or 0) + (output_tokens or 0)
    return Tokens(input_tokens, output_tokens, total)


def _first_str(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _first_int(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = attributes.get(key)
        # bool is an int subclass, and a flag is no token count.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None
