"""What a span says about its session, workflow, token usage, end user, kind, input
and output, and whether it is a user's turn or only an HTTP request.

Different SDKs put the same facts under different keys; this module is the one place
that knows them, so the store can group spans from the neatlogs SDK, OpenInference /
Phoenix instrumentations and Langfuse-style code alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


# -- what: span kinds, input, output and messages ------------------------------------------

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

_NEATLOGS_KINDS = ("llm", "tool", "agent", "chain", "workflow", "retriever", "embedding")
_INPUT_VALUE_KEYS = (
    "input.value",
    "neatlogs.input.value",
    *(f"neatlogs.{kind}.input" for kind in _NEATLOGS_KINDS),
    "neatlogs.retriever.query",
)
_OUTPUT_VALUE_KEYS = (
    "output.value",
    "neatlogs.output.value",
    *(f"neatlogs.{kind}.output" for kind in _NEATLOGS_KINDS),
)
#: Indexed message attributes: (prefix, role field, content field), per convention.
_INPUT_MESSAGE_PREFIXES = (
    ("llm.input_messages", "message.role", "message.content"),
    ("neatlogs.llm.input_messages", "role", "content"),
    ("gen_ai.prompt", "role", "content"),
)
_OUTPUT_MESSAGE_PREFIXES = (
    ("llm.output_messages", "message.role", "message.content"),
    ("neatlogs.llm.output_messages", "role", "content"),
    ("gen_ai.completion", "role", "content"),
)
_INPUT_JSON_MESSAGES = "gen_ai.input.messages"
_OUTPUT_JSON_MESSAGES = "gen_ai.output.messages"
#: Any one of these present means the span may carry an input, output or messages.
_IO_KEYS = frozenset(
    {
        *_INPUT_VALUE_KEYS,
        *_OUTPUT_VALUE_KEYS,
        _INPUT_JSON_MESSAGES,
        _OUTPUT_JSON_MESSAGES,
        *(
            f"{prefix}.0.{field}"
            for prefix, role, content in _INPUT_MESSAGE_PREFIXES + _OUTPUT_MESSAGE_PREFIXES
            for field in (role, content)
        ),
        "llm.input_messages.0.message.contents.0.message_content.text",
        "llm.output_messages.0.message.contents.0.message_content.text",
    }
)


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: who said it, and what, as text."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """What a span says it took in and gave back; each part None or empty when absent."""

    input: str | None
    output: str | None
    input_messages: list[Message]
    output_messages: list[Message]


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


def may_converse(span: Span) -> bool:
    """Cheap test: could `conversation_of` find anything on this span?"""
    return not span.attributes.keys().isdisjoint(_IO_KEYS)


def conversation_of(span: Span) -> Conversation:
    """The span's input and output as text, and its chat messages.

    Input is the first of `input.value`, the neatlogs SDK's input keys, or the last
    user message; output the first of `output.value`, the neatlogs SDK's output keys,
    or the last output message.
    """
    attributes = span.attributes
    inputs = _messages(attributes, _INPUT_MESSAGE_PREFIXES, _INPUT_JSON_MESSAGES)
    outputs = _messages(attributes, _OUTPUT_MESSAGE_PREFIXES, _OUTPUT_JSON_MESSAGES)
    text_in = _first_text(attributes, _INPUT_VALUE_KEYS)
    if text_in is None:
        users = [m for m in inputs if m.role == "user"] or inputs
        text_in = users[-1].content if users else None
    text_out = _first_text(attributes, _OUTPUT_VALUE_KEYS)
    if text_out is None and outputs:
        text_out = outputs[-1].content
    return Conversation(text_in or None, text_out or None, inputs, outputs)


def readable(value: Any) -> str | None:
    """A value as the text a person wants to read: a chat payload's last user message,
    a one-field object's field, JSON text otherwise."""
    if isinstance(value, str):
        text: str = value
        stripped = text.strip()
        if not stripped.startswith(("{", "[")):
            return text
        value = _parsed(stripped)
        if value is None:
            return text
    if value is None:
        return None
    if isinstance(value, dict):
        messages = value.get("messages")
        if isinstance(messages, list):
            parsed = _json_messages(messages)
            users = [m for m in parsed if m.role == "user"] or parsed
            if users:
                return users[-1].content
        texts = [v for v in value.values() if isinstance(v, str)]
        if len(value) == 1 and texts:
            return texts[0]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        parsed = _json_messages(value)
        if parsed:
            return parsed[-1].content
    return json.dumps(value, ensure_ascii=False)


def _first_text(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return readable(value)
    return None


def _messages(
    attributes: Mapping[str, Any], prefixes: tuple[tuple[str, str, str], ...], json_key: str
) -> list[Message]:
    raw = attributes.get(json_key)
    if isinstance(raw, str):
        document = _parsed(raw)
        if isinstance(document, list):
            found = _json_messages(document)
            if found:
                return found
    for prefix, role_field, content_field in prefixes:
        if f"{prefix}.0.{content_field}" not in attributes and (
            f"{prefix}.0.{role_field}" not in attributes
        ):
            continue
        found = []
        index = 0
        while True:
            role = attributes.get(f"{prefix}.{index}.{role_field}")
            content = attributes.get(f"{prefix}.{index}.{content_field}")
            if role is None and content is None:
                break
            if content is None:
                content = attributes.get(
                    f"{prefix}.{index}.message.contents.0.message_content.text"
                )
            found.append(Message(str(role or ""), _text(content)))
            index += 1
        return found
    return []


def _json_messages(items: list[Any]) -> list[Message]:
    """Messages as the GenAI conventions' JSON has them ({role, parts}) or as chat
    APIs do ({role, content})."""
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        role = str(item.get("role") or "")
        if "parts" in item and isinstance(item["parts"], list):
            texts = []
            for part in item["parts"]:
                if isinstance(part, dict):
                    if isinstance(part.get("content"), str):
                        texts.append(part["content"])
                    elif part.get("type") == "tool_call":
                        texts.append(f"[tool call] {part.get('name', '')}")
                    elif isinstance(part.get("result"), str):
                        texts.append(part["result"])
            found.append(Message(role, "\n".join(texts)))
        else:
            found.append(Message(role, _text(item.get("content"))))
    return found


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [part.get("text") for part in value if isinstance(part, dict)]
        if texts and all(isinstance(text, str) for text in texts):
            return "\n".join(t for t in texts if isinstance(t, str))
    return json.dumps(value, ensure_ascii=False)


def _parsed(text: str) -> Any:
    """JSON text as a value, or None if it is not JSON or nests too deep to read."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
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
NOTABLE_KEYS = _TOKEN_KEYS | _END_USER_KEY_SET | _IO_KEYS
