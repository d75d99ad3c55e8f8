"""Where a request may carry a session: the raw values and how to find them.

Everything here reads untrusted input and returns raw strings, every
copy of a value a request holds; whether a value is valid, whether its
copies agree, and whether it can be trusted, is the resolver's decision.
The protocol adapters fill in ``RequestInputs`` with only the headers the
configuration asks for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Final
from urllib.parse import parse_qsl, unquote

__all__ = [
    "ConversationCopies",
    "RequestInputs",
    "baggage_session_ids",
    "compile_template",
    "cookie_values",
    "header_copies",
    "json_field",
    "query_values",
]

_PLACEHOLDER_RE: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BAGGAGE_KEY: Final = "session.id"
#: Whitespace around a header value or list item, as HTTP has it (RFC 9110): space
#: and tab only. ``str.strip()`` would also take off what a server passes through
#: and an app keeps (a no-break space), and bind another id than the app reads.
_OWS: Final = " \t"
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
    #: The body may hold the JSON field but could not be read (too large, of
    #: unknown length): the app may read a copy of the conversation id there.
    json_unread: bool = False
    #: A conversation id found but not yet bound (``conversation_binding="when_confirmed"``).
    pending_conversation_id: str | None = None

    def __init__(self, path: str, query: str) -> None:
        self.path = path
        self.query = query


class ConversationCopies:
    """Where the app said a conversation id may be, and every copy a request holds.

    Every copy, not the first found: the app may read another one than the
    middleware would (a repeated query parameter's last value, a header's
    first line, the body rather than the path), and the resolver binds an id
    only when all of them agree.
    """

    def __init__(
        self,
        paths: Sequence[str],
        query: str | None,
        header: str | None,
        json_field: str | None,
    ) -> None:
        self._templates = tuple(compile_template(template) for template in paths)
        self._query = query
        self._reads_header = bool(header)
        #: Whether a copy may be in the JSON body, read before :meth:`find`.
        self.reads_body = bool(json_field)
        #: The header, when it is the only place configured: without it, no copy.
        self.only_header = (
            header if not (self._templates or self._query or self.reads_body) else None
        )

    def __bool__(self) -> bool:
        return bool(self._templates or self._query or self._reads_header or self.reads_body)

    def find(self, inputs: RequestInputs) -> list[tuple[str, object]]:
        """``(source, value)`` per copy, in source order. A JSON number is its
        digits; any other JSON value is given as is, for the resolver to refuse."""
        copies: list[tuple[str, object]] = []
        for template in self._templates:
            match = template.fullmatch(inputs.path)
            if match is not None:
                copies.append(("conversation_path", match.group("cid")))
                break
        if self._query is not None:
            copies += [("conversation_query", v) for v in query_values(inputs.query, self._query)]
        if self._reads_header and inputs.conversation_header is not None:
            copies += [
                ("conversation_header", v) for v in header_copies(inputs.conversation_header)
            ]
        value = inputs.json_value
        if value is not None:
            is_number = isinstance(value, int) and not isinstance(value, bool)
            copies.append(("conversation_json", str(value) if is_number else value))
        return copies


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


def query_values(query: str, name: str) -> list[str]:
    """Every value of parameter ``name`` in a query string, in order.

    All of them, not the first: frameworks disagree on which one an app gets
    (Starlette and Django hand it the last, Flask the first). Parsed as they
    all parse it, with ``parse_qsl``: a key is percent-decoded (and ``+`` is a
    space) before it is compared, so ``conversation%5Fid`` is a copy too.
    """
    return [value for key, value in parse_qsl(query, keep_blank_values=True) if key == name]


def header_copies(value: str) -> list[str]:
    """The copies a header's value holds: servers join the lines of a repeated
    header with commas (RFC 9110, section 5.3), so ``"a, b"`` is two copies.
    Neither a token nor an id of the default charset holds a comma."""
    return [copy.strip(_OWS) for copy in value.split(",")]


def cookie_values(header: str, name: str) -> Iterator[str]:
    """The values of cookie ``name`` in a ``Cookie`` header, in order, without a full parse.

    A browser sends a name more than once when cookies of several paths or
    domains hold it (the longest path first), e.g. after ``cookie_path``
    changed. WSGI servers join repeated ``Cookie`` headers with ``,``
    (gunicorn) or ``, `` (waitress), and no cookie value may hold a comma
    (RFC 6265): a comma ends a pair like a semicolon does. Found lazily, so a
    caller that checks only the first few values never scans a huge header.
    """
    target = name + "="
    start = 0
    while (at := header.find(target, start)) >= 0:
        start = at + len(target)
        # At the start of a cookie-pair, not the tail of another name.
        if at == 0 or header[at - 1] in " ;,":
            pair_end = _COOKIE_PAIR_END.search(header, start)
            value = header[start : pair_end.start() if pair_end else len(header)].strip(_OWS)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            yield value


def baggage_session_ids(header: str) -> list[str]:
    """Every W3C ``baggage`` member ``session.id``, percent-decoded, in order."""
    if _BAGGAGE_KEY not in header:
        return []
    values = []
    for member in header.split(","):
        key, _, rest = member.partition("=")
        if key.strip(_OWS) == _BAGGAGE_KEY:
            values.append(unquote(rest.split(";", 1)[0].strip(_OWS)))
    return values


def json_field(body: bytes, field: str) -> object:
    """The top-level ``field`` of a JSON object body; ``None`` if absent or no body.

    Decoded as ``json.loads`` decodes bytes, as the frameworks' JSON readers
    do: UTF-8 with or without a BOM, UTF-16 or UTF-32. Raises ``ValueError``
    for a body that is not a JSON object, however it fails (bad bytes, bad
    syntax, nesting too deep for the parser).
    """
    if not body:
        return None
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, RecursionError) as error:
        raise ValueError("not a JSON object") from error
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document.get(field)
