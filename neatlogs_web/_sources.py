"""Where a request may carry a session: the raw values and how to find them.

Everything here reads untrusted input and returns a raw string (or
``None``); whether a value is valid, and whether it can be trusted, is the
resolver's decision. The protocol adapters fill in ``RequestInputs`` with
only the headers the configuration asks for.
"""

from __future__ import annotations

import json
import re
from typing import Final
from urllib.parse import parse_qsl, unquote

__all__ = [
    "RequestInputs",
    "baggage_session_id",
    "compile_template",
    "cookie_values",
    "json_field",
    "query_value",
]

_PLACEHOLDER_RE: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BAGGAGE_KEY: Final = "session.id"
_COOKIE_PAIR_END: Final = re.compile("[;,]")


class RequestInputs:
    """The raw, unvalidated values of one request that resolution may use."""

    # Class-level defaults: one is made per request and most requests carry
    # only a cookie, so only the values given are stored.
    cookie: str | None = None
    #: The ``Cookie`` header's bytes as an ASGI server handed them over: its decision
    #: is remembered under them, so a returning request looks it up undecoded.
    cookie_as_sent: bytes | None = None
    session_header: str | None = None
    conversation_header: str | None = None
    baggage: str | None = None
    #: Set by the adapter once it has read the body for the JSON field.
    body_read: bool = False
    json_value: object = None
    #: A conversation id found but not yet bound (``conversation_binding="when_confirmed"``).
    pending_conversation_id: str | None = None

    def __init__(self, path: str, query: str) -> None:
        self.path = path
        self.query = query


def compile_template(template: str) -> re.Pattern[str]:
    """``"/chat/{conversation_id}"`` -> a regex matching whole paths, the id in ``cid``.

    Whole paths only: ``/chat/{conversation_id}`` must not match
    ``/chat/victim/no/such/route``, a request no route will serve.
    """
    where = f"conversation_paths: template {template!r}"
    if not isinstance(template, str) or not template.startswith("/"):
        raise ValueError(f"{where} must be a string starting with '/'")
    names = _PLACEHOLDER_RE.findall(template)
    literals = _PLACEHOLDER_RE.split(template)[::2]
    if any("{" in part or "}" in part for part in literals):
        raise ValueError(
            f"{where} has unbalanced or invalid braces: write placeholders as {{name}}"
        )
    if names.count("conversation_id") != 1:
        raise ValueError(
            f"{where} needs exactly one {{conversation_id}} placeholder, "
            "e.g. '/chat/{conversation_id}'"
        )
    pattern = ""
    for index, literal in enumerate(literals):
        pattern += re.escape(literal)
        if index < len(names):
            pattern += "(?P<cid>[^/]+)" if names[index] == "conversation_id" else "[^/]+"
    return re.compile(pattern)


def query_value(query: str, name: str) -> str | None:
    """The first value of parameter ``name`` in a query string."""
    if name not in query:
        return None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return None


def cookie_values(header: str, name: str) -> list[str]:
    """The values of cookie ``name`` in a ``Cookie`` header, in order, without a full parse.

    A browser sends a name more than once when cookies of several paths or
    domains hold it (the longest path first), e.g. after ``cookie_path``
    changed. WSGI servers join repeated ``Cookie`` headers with ``,``
    (gunicorn) or ``, `` (waitress), and no cookie value may hold a comma
    (RFC 6265): a comma ends a pair like a semicolon does.
    """
    target = name + "="
    values = []
    start = 0
    while (at := header.find(target, start)) >= 0:
        start = at + len(target)
        # At the start of a cookie-pair, not the tail of another name.
        if at == 0 or header[at - 1] in " ;,":
            value = _COOKIE_PAIR_END.split(header[start:], maxsplit=1)[0].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            values.append(value)
    return values


def baggage_session_id(header: str) -> str | None:
    """The W3C ``baggage`` member ``session.id``, percent-decoded."""
    if _BAGGAGE_KEY not in header:
        return None
    for member in header.split(","):
        key, _, rest = member.partition("=")
        if key.strip() == _BAGGAGE_KEY:
            return unquote(rest.split(";", 1)[0].strip())
    return None


def json_field(body: bytes, field: str) -> object:
    """The top-level ``field`` of a JSON object body; ``None`` if absent.

    Raises ``ValueError`` for a body that is not a JSON object, however it
    fails (bad bytes, bad syntax, nesting too deep for the parser).
    """
    if not body.lstrip().startswith(b"{"):
        raise ValueError("not a JSON object")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, RecursionError) as error:
        raise ValueError("not a JSON object") from error
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document.get(field)
