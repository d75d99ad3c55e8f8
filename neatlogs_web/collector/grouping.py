"""What a span says about its session, workflow, token usage, end user and kind, and
whether it is a user's turn or only an HTTP request.

Different SDKs put the same facts under different keys; this module is the one place
that knows them (`conversation` knows those of input, output and messages), so the
store can group spans from the neatlogs SDK, OpenInference / Phoenix instrumentations
and Langfuse-style code alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import conversation
from .limits import clip_name
from .otlp import Span

#: Session keys, most specific first: the OpenTelemetry convention, the neatlogs
#: backend's key, then Langfuse's.
SESSION_KEYS = ("session.id", "neatlogs.session.id", "langfuse.session.id")

#: Resource keys naming the workflow (application) a span comes from.
WORKFLOW_KEYS = ("neatlogs.workflow_name", "service.name")

#: Input / output / total token keys: GenAI semantic conventions, OpenInference, then
#: the neatlogs SDK's.
_INPUT_KEYS = (
    "gen_ai.usage.input_tokens",
    "llm.token_count.prompt",
    "neatlogs.llm.token_count.prompt",
)
_OUTPUT_KEYS = (
    "gen_ai.usage.output_tokens",
    "llm.token_count.completion",
    "neatlogs.llm.token_count.completion",
)
_TOTAL_KEYS = ("llm.token_count.total", "neatlogs.llm.token_count.total")
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


# -- turns and requests ---------------------------------------------------------------

#: Instrumentation scopes whose spans describe the HTTP transport of a request
#: (FastAPI's own telemetry, the OpenTelemetry ASGI / WSGI / client instrumentations).
TRANSPORT_SCOPES = ("fastapi", "opentelemetry.instrumentation.")

_HTTP_KEYS = frozenset(
    {
        "http.method",
        "http.request.method",
        "http.route",
        "http.target",
        "http.url",
        "http.status_code",
        "http.response.status_code",
        "url.full",
        "url.path",
    }
)
_HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
_SPAN_KIND_SERVER = 2
_SPAN_KIND_CLIENT = 3


def is_transport_scope(scope: Mapping[str, Any]) -> bool:
    """True for the instrumentation scope of a framework's or an HTTP instrumentation's
    spans; the store asks once per scope, not once per span."""
    name = scope.get("name")
    return isinstance(name, str) and name.startswith(TRANSPORT_SCOPES)


def is_transport(span: Span, scope_is_transport: bool | None = None) -> bool:
    """True for a span that only describes an HTTP request: a framework's own request
    span, a server or client span with HTTP attributes. A trace made only of these is
    a request, never a user turn."""
    if scope_is_transport is None:
        scope_is_transport = is_transport_scope(span.scope)
    if scope_is_transport:
        return True
    if span.kind == _SPAN_KIND_SERVER or span.kind == _SPAN_KIND_CLIENT:
        return not span.attributes.keys().isdisjoint(_HTTP_KEYS)
    return False


def http_status_of(span: Span) -> int | None:
    """The HTTP status code a request span reports, if any."""
    return _first_int(span.attributes, _HTTP_STATUS_KEYS)


def linked_trace_of(span: Span) -> str | None:
    """The first other trace this span links to: a turn's link to its request."""
    for link in span.links:
        trace_id = link.get("trace_id")
        if isinstance(trace_id, str) and trace_id and trace_id != span.trace_id:
            return trace_id
    return None


# -- who: the end user -------------------------------------------------------------------

#: End-user keys: the neatlogs SDKs', OpenInference / Phoenix's, the OpenTelemetry
#: convention's, Langfuse's.
END_USER_KEYS = (
    "neatlogs.end_user.id",
    "user.id",
    "neatlogs.user.id",
    "enduser.id",
    "langfuse.user.id",
)
_END_USER_KEY_SET = frozenset(END_USER_KEYS)


def end_user_of(span: Span) -> str | None:
    """The end user a span was recorded for, or None."""
    attributes = span.attributes
    if attributes.keys().isdisjoint(_END_USER_KEY_SET):
        return None
    return _first_str(attributes, END_USER_KEYS)


# -- what: span kinds ------------------------------------------------------------------

#: The kinds OpenInference names (`openinference.span.kind`), which the neatlogs SDK
#: also uses in lower case (`neatlogs.span.kind`).
AI_KINDS = frozenset(
    {
        "LLM",
        "TOOL",
        "RETRIEVER",
        "CHAIN",
        "AGENT",
        "EMBEDDING",
        "RERANKER",
        "GUARDRAIL",
        "EVALUATOR",
        "WORKFLOW",
        "VECTOR_STORE",
    }
)
_KIND_KEYS = ("openinference.span.kind", "neatlogs.span.kind")
#: GenAI `gen_ai.operation.name` values and the kind each one is.
_GENAI_OPERATIONS = {
    "chat": "LLM",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "execute_tool": "TOOL",
    "embeddings": "EMBEDDING",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
}
_MODEL_KEYS = frozenset(
    {"gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "neatlogs.llm.model_name"}
)
_TOOL_KEYS = frozenset({"tool.name", "gen_ai.tool.name", "neatlogs.tool.name"})


def ai_kind_of(span: Span) -> str | None:
    """LLM, TOOL, RETRIEVER, CHAIN, ... as OpenInference names them, or None."""
    attributes = span.attributes
    for key in _KIND_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            kind = value.rsplit(".", 1)[-1].upper()
            if kind in AI_KINDS:
                return kind
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in _GENAI_OPERATIONS:
        return _GENAI_OPERATIONS[operation]
    keys = attributes.keys()
    if not keys.isdisjoint(_TOOL_KEYS):
        return "TOOL"
    if not keys.isdisjoint(_MODEL_KEYS) or not keys.isdisjoint(_TOKEN_KEYS):
        return "LLM"
    return None


def _first_str(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of these keys' string values, cut as names are (traces are filed under
    it: a session, an end user, a workflow)."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return clip_name(value)
    return None


#: Counts (tokens, an HTTP status) are read up to this: more than any model call uses,
#: so a session's sums stay far inside SQLite's 64-bit integers.
_MAX_COUNT = 2**32
_MAX_COUNT_DIGITS = len(str(_MAX_COUNT))


def _first_int(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of these keys' values that is a count; a value out of range is none."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, bool):
            continue  # bool is an int subclass, and a flag is no token count
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        # isdigit() alone takes "²", which int() refuses; a long string is no count.
        elif isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value) if len(value) <= _MAX_COUNT_DIGITS else None
        if isinstance(value, int) and 0 <= value < _MAX_COUNT:
            return value
    return None


#: Any of these present means a span may report tokens, an end user, input, output or
#: messages: a span with none of them (most spans) is checked no further.
NOTABLE_KEYS = _TOKEN_KEYS | _END_USER_KEY_SET | conversation.IO_KEYS
