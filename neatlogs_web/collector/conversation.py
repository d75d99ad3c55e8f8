"""What a span says it took in and gave back: its input and output as text, and its
chat messages, read from whichever convention the sender used.

Like `grouping`, this is the one place that knows these attribute keys: OpenInference
(`input.value`, `llm.input_messages.N.*`), the GenAI semantic conventions
(`gen_ai.input.messages`, `gen_ai.prompt.N.*`) and the neatlogs SDK's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .otlp import Span

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
IO_KEYS = frozenset(
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


def may_converse(span: Span) -> bool:
    """Cheap test: could `conversation_of` find anything on this span?"""
    return not span.attributes.keys().isdisjoint(IO_KEYS)


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
