"""Where a request's session id comes from, and why it can be trusted.

Both middlewares share this module: the id rules, the signer (itsdangerous
``TimestampSigner`` with a key list), the source order, the cookie policy and
the counters of rejected input. The protocol glue in ``asgi.py`` and
``wsgi.py`` only extracts raw values and applies the returned decision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypedDict
from urllib.parse import parse_qsl, unquote

from itsdangerous import BadSignature, TimestampSigner

__all__ = [
    "MAX_ID_LENGTH",
    "NeedsBody",
    "RequestInputs",
    "Resolution",
    "SessionOptions",
    "SessionPolicy",
    "is_valid_session_id",
    "new_session_id",
    "rejection_counts",
]

logger = logging.getLogger("neatlogs_web")

MAX_ID_LENGTH: Final = 128
# A token is "<id>.<timestamp>.<signature>": the id plus at most ~60 characters.
MAX_TOKEN_LENGTH: Final = MAX_ID_LENGTH + 80
SIGNING_SALT: Final = b"neatlogs_web.session"
SOURCES: Final = ("conversation", "header", "cookie", "baggage")
DEFAULT_SOURCES: Final = ("conversation", "header", "cookie")
DEFAULT_MAX_AGE: Final = 14 * 24 * 3600
DEFAULT_JSON_BODY_LIMIT: Final = 64 * 1024
TRACE_ID_HEADER: Final = "X-Neatlogs-Trace-Id"
# Allowed clock skew between processes that share a key.
_FUTURE_SKEW_S: Final = 300
_VERIFIED_CACHE_SIZE: Final = 16384
_REMEMBERED_HEADER_LENGTH: Final = 1024
_CUSTOM_ID_LIMIT: Final = 1024

_ID_RE: Final = re.compile(r"[A-Za-z0-9._:@/+=\-]{1,128}")
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9._:@/+=\-]{1,208}")
_TEMPLATE_PART_RE: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

SameSite = Literal["lax", "strict", "none"]
Validator = Callable[[str], bool]


class SessionOptions(TypedDict, total=False):
    """Options both middlewares accept (``secret_key`` and ``end_user`` aside).

    The README documents each; ``SessionPolicy`` checks them at startup.
    """

    cookie_name: str
    max_age: int | None
    idle_timeout: int | None
    cookie_path: str
    cookie_domain: str | None
    secure: bool | None
    same_site: SameSite
    header_name: str
    trust_plain_header: bool
    conversation_paths: Iterable[str]
    conversation_query: str | None
    conversation_header: str | None
    conversation_json_field: str | None
    json_body_limit: int
    sources: Sequence[str]
    exclude_paths: Iterable[str]
    validator: Validator | None
    expose_trace_id: bool


def is_valid_session_id(value: str) -> bool:
    """True for 1-128 characters of ``[A-Za-z0-9._:@/+=-]``: safe in cookies,
    headers, URLs and span attributes of every backend we know."""
    return _ID_RE.fullmatch(value) is not None


def new_session_id() -> str:
    """An unguessable, URL-safe id (128 random bits)."""
    return secrets.token_urlsafe(16)


# --------------------------------------------------------------------------
# Counting rejected input: bad values are skipped, never an error page, but the
# operator must be able to see that they happen.

_rejections: Counter[str] = Counter()
_rejections_lock = threading.Lock()


def reject(source: str, reason: str) -> None:
    """Count and debug-log a skipped value; the value itself is never logged."""
    key = f"{source}.{reason}"
    with _rejections_lock:
        _rejections[key] += 1
    logger.debug("neatlogs_web skipped a session value from %s: %s", source, reason)


def rejection_counts() -> dict[str, int]:
    """Skipped session values so far, by ``"<source>.<reason>"``."""
    with _rejections_lock:
        return dict(_rejections)


# --------------------------------------------------------------------------
# Signing


_process_key: bytes | None = None
_process_key_lock = threading.Lock()


def _random_process_key() -> bytes:
    global _process_key
    with _process_key_lock:
        if _process_key is None:
            warnings.warn(
                "neatlogs_web: no secret_key and no NEATLOGS_SECRET_KEY; using a random "
                "per-process key. Session cookies will not survive a restart nor work "
                "across worker processes: set NEATLOGS_SECRET_KEY.",
                RuntimeWarning,
                stacklevel=4,
            )
            _process_key = secrets.token_bytes(32)
        return _process_key


def resolve_secret_keys(
    secret_key: str | bytes | Sequence[str | bytes] | None,
) -> list[bytes]:
    """Normalise the ``secret_key`` option into a key list, newest first."""
    if secret_key is None:
        env_key = os.environ.get("NEATLOGS_SECRET_KEY")
        return [env_key.encode()] if env_key else [_random_process_key()]
    keys: list[str | bytes] = (
        [secret_key] if isinstance(secret_key, str | bytes) else list(secret_key)
    )
    if not keys:
        raise ValueError(
            "secret_key is an empty list: give at least one key (the first signs, all verify)"
        )
    out = []
    for key in keys:
        if not isinstance(key, str | bytes) or not key:
            raise ValueError("every secret_key must be a non-empty str or bytes")
        out.append(key.encode() if isinstance(key, str) else key)
    return out


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    session_id: str
    signed_at: int
    #: Signed by a key other than the first: re-sign with the current key.
    old_key: bool


class SessionSigner:
    """Signs session ids and verifies tokens, with key rotation and a cache.

    A returning user sends the same token on every request; verifying it once
    and remembering the result (the expiry is still checked on each use) keeps
    the per-request cost to a dict lookup instead of an HMAC.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        def signer(key_list: list[bytes]) -> TimestampSigner:
            # itsdangerous signs with the last key of its list.
            return TimestampSigner(
                list(reversed(key_list)), salt=SIGNING_SALT, digest_method=hashlib.sha256
            )

        self._current = signer([keys[0]])
        self._fallback = signer(list(keys[1:])) if len(keys) > 1 else None
        self._verified: dict[str, VerifiedToken] = {}

    def sign(self, session_id: str) -> str:
        return self._current.sign(session_id).decode("ascii")

    def verify(self, token: str) -> VerifiedToken | None:
        """The token's session if the signature is valid, else ``None``.

        Age is not checked here: the caller knows the policy.
        """
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        verified = self._unsign(token, self._current, old_key=False)
        if verified is None and self._fallback is not None:
            verified = self._unsign(token, self._fallback, old_key=True)
        if verified is not None:
            cache = self._verified
            if len(cache) >= _VERIFIED_CACHE_SIZE:
                # Evict the oldest entry (dicts keep insertion order).
                cache.pop(next(iter(cache)), None)
            cache[token] = verified
        return verified

    @staticmethod
    def _unsign(token: str, signer: TimestampSigner, *, old_key: bool) -> VerifiedToken | None:
        try:
            value, signed_at = signer.unsign(token, return_timestamp=True)
        except BadSignature:
            return None
        session_id = value.decode("ascii", "replace")
        if not is_valid_session_id(session_id):
            return None
        return VerifiedToken(session_id, int(signed_at.timestamp()), old_key)


# --------------------------------------------------------------------------
# Resolution


class RequestInputs:
    """The raw, unvalidated values of one request that resolution may use.

    The protocol glue fills in only what the policy asked for, so a request
    costs one pass over its headers.
    """

    __slots__ = (
        "baggage",
        "conversation_header",
        "cookie",
        "json_value",
        "path",
        "query",
        "session_header",
    )

    def __init__(
        self,
        path: str,
        query: str,
        cookie: str | None = None,
        session_header: str | None = None,
        conversation_header: str | None = None,
        baggage: str | None = None,
    ) -> None:
        self.path = path
        self.query = query
        self.cookie = cookie
        self.session_header = session_header
        self.conversation_header = conversation_header
        self.baggage = baggage
        #: Set by the protocol glue only if resolution reaches the JSON-body step.
        self.json_value: object = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the middleware binds and what it adds to the response."""

    session_id: str
    #: Which source won: "conversation", "header", "cookie", "baggage" or "new".
    source: str
    #: Set when an idle timeout started this session.
    previous_session_id: str | None = None
    #: A full ``Set-Cookie`` value, only when the cookie must change.
    set_cookie: str | None = None
    #: The signed token to echo in the session header, when issued or refreshed.
    echo_token: str | None = None


#: A remembered decision: (valid from, valid until, resolution), wall-clock seconds.
Remembered = tuple[float, float, Resolution]


@dataclass(frozen=True, slots=True)
class NeedsBody:
    """Resolution reached the JSON-body step: read the body and resume."""

    resume_at: int


class _Candidate:
    """A valid value a source found, before the policy decides what to do with it."""

    __slots__ = ("raw", "session_id", "token")

    def __init__(
        self, session_id: str, token: VerifiedToken | None = None, raw: str | None = None
    ) -> None:
        self.session_id = session_id
        self.token = token
        #: What the decision is remembered under (the token, or the whole Cookie header).
        self.raw = raw


# A step returns a Resolution directly when it remembered the decision for its input.
_Step = Callable[[RequestInputs], "_Candidate | Resolution | None"]
_JSON_STEP: Final = "json"


def _compile_template(template: str) -> re.Pattern[str]:
    """``"/chat/{conversation_id}"`` -> a regex whose ``cid`` group is the id."""
    if not template.startswith("/"):
        raise ValueError(f"conversation path template {template!r} must start with '/'")
    names = _TEMPLATE_PART_RE.findall(template)
    literal_parts = _TEMPLATE_PART_RE.split(template)[::2]
    if any("{" in part or "}" in part for part in literal_parts):
        raise ValueError(
            f"conversation path template {template!r} has unbalanced or invalid braces: "
            "write placeholders as {name}"
        )
    if names.count("conversation_id") != 1:
        raise ValueError(
            f"conversation path template {template!r} needs exactly one "
            "{conversation_id} placeholder, e.g. '/chat/{conversation_id}'"
        )
    pattern = ""
    for index, literal in enumerate(literal_parts):
        pattern += re.escape(literal)
        if index < len(names):
            pattern += "(?P<cid>[^/]+)" if names[index] == "conversation_id" else "[^/]+"
    return re.compile(pattern + r"(?:/|$)")


class SessionPolicy:
    """The middleware options, checked once at startup, and the resolver.

    Everything that does not change per request (compiled templates, the
    signer, cookie attribute strings) is prepared here so a request does only
    lookups.
    """

    def __init__(
        self,
        *,
        secret_key: str | bytes | Sequence[str | bytes] | None = None,
        cookie_name: str = "neatlogs_session",
        max_age: int | None = DEFAULT_MAX_AGE,
        idle_timeout: int | None = None,
        cookie_path: str = "/",
        cookie_domain: str | None = None,
        secure: bool | None = None,
        same_site: SameSite = "lax",
        header_name: str = "X-Neatlogs-Session-Id",
        trust_plain_header: bool = False,
        conversation_paths: Iterable[str] = (),
        conversation_query: str | None = None,
        conversation_header: str | None = None,
        conversation_json_field: str | None = None,
        json_body_limit: int = DEFAULT_JSON_BODY_LIMIT,
        sources: Sequence[str] = DEFAULT_SOURCES,
        exclude_paths: Iterable[str] = (),
        validator: Validator | None = None,
        expose_trace_id: bool = False,
    ) -> None:
        if isinstance(sources, str):
            raise ValueError(f"sources must be a sequence of names, e.g. ({sources!r},)")
        for name in sources:
            if name not in SOURCES:
                raise ValueError(
                    f"unknown session source {name!r}: choose from {', '.join(SOURCES)}"
                )
        if len(set(sources)) != len(sources):
            raise ValueError(f"sources lists a name twice: {tuple(sources)!r}")
        same_site_lower = str(same_site).lower()
        if same_site_lower not in ("lax", "strict", "none"):
            raise ValueError(f"same_site must be 'lax', 'strict' or 'none', not {same_site!r}")
        if same_site_lower == "none" and secure is not True:
            raise ValueError(
                "same_site='none' needs secure=True: browsers drop SameSite=None cookies "
                "that are not Secure"
            )
        for option, value in (("max_age", max_age), ("idle_timeout", idle_timeout)):
            if value is not None and value <= 0:
                raise ValueError(f"{option} must be a positive number of seconds or None")
        if json_body_limit <= 0:
            raise ValueError("json_body_limit must be a positive number of bytes")
        if not _TOKEN_RE.fullmatch(cookie_name) or "=" in cookie_name:
            raise ValueError(f"cookie_name {cookie_name!r} is not a valid cookie name")

        self.sources = tuple(sources)
        self.signer = SessionSigner(resolve_secret_keys(secret_key))
        self.validator = validator or is_valid_session_id
        # An app's own validator replaces the charset rule; input stays bounded.
        self.max_id_length = MAX_ID_LENGTH if validator is None else _CUSTOM_ID_LIMIT
        self.cookie_name = cookie_name
        self.max_age = max_age
        self.idle_timeout = idle_timeout
        self.header_name = header_name
        self.expose_trace_id = expose_trace_id
        self.header_name_lower = header_name.lower()
        self.trust_plain_header = trust_plain_header
        self.conversation_query = conversation_query
        self.conversation_header_lower = (
            conversation_header.lower() if conversation_header else None
        )
        self.conversation_json_field = conversation_json_field
        self.json_body_limit = json_body_limit
        self.conversation_templates = tuple(_compile_template(t) for t in conversation_paths)

        exclude = tuple(exclude_paths)
        # "/static/*" is a prefix; anything else, "/" included, is an exact path.
        self.exclude_exact = frozenset(p for p in exclude if not p.endswith("*"))
        self.exclude_prefixes = tuple(p[:-1] for p in exclude if p.endswith("*"))

        # Refresh the token long before it lapses; with an idle timeout, often
        # enough that the signed timestamp tracks activity to within 10%.
        limits = [v / 2 for v in (max_age,) if v] + [v / 10 for v in (idle_timeout,) if v]
        self.refresh_after = min(limits) if limits else None
        # A returning token's decision ("bind it, change nothing") holds while its age
        # stays within every limit above; until then it is remembered per source, so a
        # returning request neither verifies, checks nor allocates.
        ages = [v for v in (max_age, idle_timeout, self.refresh_after) if v is not None]
        self._steady_age = min(ages) if ages else math.inf
        self._decided: dict[str, dict[str, Remembered]] = {"header": {}, "cookie": {}}
        #: ``Cookie`` header -> (valid from, valid until, decision), wall-clock seconds.
        #: When ``cookie_decides_alone`` and a request has no other session input, a
        #: current entry is what :meth:`resolve` would return: the middlewares check it
        #: inline (a dict lookup and a clock read) before building ``RequestInputs``.
        self.remembered_cookies = self._decided["cookie"]

        attributes = f"; Path={cookie_path}"
        if max_age is not None:
            attributes += f"; Max-Age={max_age}"
        if cookie_domain:
            attributes += f"; Domain={cookie_domain}"
        attributes += f"; HttpOnly; SameSite={same_site_lower.capitalize()}"
        self._cookie_attributes = {
            False: attributes + ("; Secure" if secure else ""),
            True: attributes + ("; Secure" if secure is not False else ""),
        }

        self.wants_cookie = "cookie" in sources
        self.wants_session_header = "header" in sources
        self.wants_baggage = "baggage" in sources
        self._steps = self._build_steps()
        self.wants_conversation_header = (
            self.conversation_header_lower is not None and "conversation" in sources
        )
        # When every step before the cookie reads a header, a request without those
        # headers is decided by its cookie alone: see remembered_cookies.
        self.reads_json_body = _JSON_STEP in self._steps
        header_steps = (
            self._from_session_header,
            self._from_conversation_header,
            self._from_baggage,
        )
        cookie_at = self._step_sources.index("cookie") if self.wants_cookie else -1
        self.cookie_decides_alone = cookie_at >= 0 and all(
            step in header_steps for step in self._steps[:cookie_at]
        )

    # -- per request ---------------------------------------------------------

    def is_excluded(self, path: str) -> bool:
        return path in self.exclude_exact or (
            bool(self.exclude_prefixes) and path.startswith(self.exclude_prefixes)
        )

    def resolve(
        self, inputs: RequestInputs, *, https: bool, resume_at: int = 0
    ) -> Resolution | NeedsBody:
        """Try each source in order; the first valid value wins.

        Returns ``NeedsBody`` when the JSON-body step is reached and the body
        has not been read: the caller reads it into ``inputs.json_value`` and
        calls again with ``resume_at``.
        """
        steps = self._steps
        for index in range(resume_at, len(steps)):
            step = steps[index]
            candidate: _Candidate | Resolution | None
            if step is _JSON_STEP:
                if index != resume_at:
                    return NeedsBody(index)
                candidate = self._from_json(inputs)
            else:
                candidate = step(inputs)  # type: ignore[operator]
            if candidate is not None:
                if isinstance(candidate, Resolution):
                    return candidate
                return self._decide(candidate, index, https)
        return self.new_session(https)

    def new_session(self, https: bool, previous_session_id: str | None = None) -> Resolution:
        session_id = new_session_id()
        token = self.signer.sign(session_id)
        return Resolution(
            session_id,
            "new",
            previous_session_id,
            self.cookie_header(token, https) if self.wants_cookie else None,
            token,
        )

    def cookie_header(self, token: str, https: bool) -> str:
        return f"{self.cookie_name}={token}{self._cookie_attributes[https]}"

    def needs_body(self, content_type: str | None, method: str) -> bool:
        """Whether the JSON-body step could apply to this request at all."""
        return (
            method in ("POST", "PUT", "PATCH")
            and content_type is not None
            and "json" in content_type.lower()
        )

    # -- decisions -----------------------------------------------------------

    def _decide(self, candidate: _Candidate, step_index: int, https: bool) -> Resolution:
        source = self._step_sources[step_index]
        token = candidate.token
        if token is None:
            return Resolution(candidate.session_id, source)
        age = time.time() - token.signed_at
        if self.idle_timeout is not None and age > self.idle_timeout:
            return self.new_session(https, previous_session_id=candidate.session_id)
        if token.old_key or (self.refresh_after is not None and age > self.refresh_after):
            fresh = self.signer.sign(candidate.session_id)
            cookie = self.cookie_header(fresh, https) if source == "cookie" else None
            return Resolution(candidate.session_id, source, None, cookie, fresh)
        resolution = Resolution(candidate.session_id, source)
        decided = self._decided.get(source)
        if decided is not None and candidate.raw is not None:
            if len(decided) >= _VERIFIED_CACHE_SIZE:
                decided.pop(next(iter(decided)), None)
            # Valid while -skew <= age <= every limit: the checks above and in _signed.
            signed_at = token.signed_at
            decided[candidate.raw] = (
                signed_at - _FUTURE_SKEW_S,
                signed_at + self._steady_age,
                resolution,
            )
        return resolution

    def _build_steps(self) -> list[_Step | str]:
        steps: list[_Step | str] = []
        sources: list[str] = []
        for source in self.sources:
            if source == "conversation":
                found: list[_Step | str] = []
                if self.conversation_templates:
                    found.append(self._from_path)
                if self.conversation_query:
                    found.append(self._from_query)
                if self.conversation_header_lower:
                    found.append(self._from_conversation_header)
                if self.conversation_json_field:
                    found.append(_JSON_STEP)
                steps += found
                sources += [source] * len(found)
            elif source == "header":
                steps.append(self._from_session_header)
                sources.append(source)
            elif source == "cookie":
                steps.append(self._from_cookie)
                sources.append(source)
            else:
                steps.append(self._from_baggage)
                sources.append(source)
        self._step_sources = sources
        return steps

    def _plain(self, source: str, value: str) -> _Candidate | None:
        if len(value) > self.max_id_length:
            reject(source, "oversized")
            return None
        if not self.validator(value):
            reject(source, "invalid")
            return None
        return _Candidate(value)

    def _remembered(self, source: str, key: str) -> Resolution | None:
        """The decision remembered for ``key`` if the token's age still allows it."""
        decided = self._decided[source].get(key)
        if decided is not None and decided[0] <= time.time() <= decided[1]:
            return decided[2]
        return None

    def _signed(self, source: str, value: str, key: str | None) -> _Candidate | None:
        """Verify a token; ``key`` is what the decision will be remembered under."""
        if len(value) > MAX_TOKEN_LENGTH:
            reject(source, "oversized")
            return None
        if not _TOKEN_RE.fullmatch(value):
            reject(source, "invalid")
            return None
        if value.count(".") < 2:
            # A plain id where a signed token is expected: trust is opt-in.
            reject(source, "unsigned")
            return None
        verified = self.signer.verify(value)
        if verified is None:
            reject(source, "bad_signature")
            return None
        age = time.time() - verified.signed_at
        if self.max_age is not None and age > self.max_age:
            reject(source, "expired")
            return None
        if age < -_FUTURE_SKEW_S:
            reject(source, "future_timestamp")
            return None
        return _Candidate(verified.session_id, verified, key)

    def _from_path(self, inputs: RequestInputs) -> _Candidate | None:
        for template in self.conversation_templates:
            match = template.match(inputs.path)
            if match is not None:
                return self._plain("conversation_path", match.group("cid"))
        return None

    def _from_query(self, inputs: RequestInputs) -> _Candidate | None:
        name = self.conversation_query
        assert name is not None
        if name not in inputs.query:
            return None
        for key, value in parse_qsl(inputs.query, keep_blank_values=True):
            if key == name:
                return self._plain("conversation_query", value)
        return None

    def _from_conversation_header(self, inputs: RequestInputs) -> _Candidate | None:
        value = inputs.conversation_header
        return None if value is None else self._plain("conversation_header", value)

    def _from_json(self, inputs: RequestInputs) -> _Candidate | None:
        value = inputs.json_value
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            reject("conversation_json", "invalid")
            return None
        return self._plain("conversation_json", value)

    def _from_session_header(self, inputs: RequestInputs) -> _Candidate | Resolution | None:
        value = inputs.session_header
        if value is None:
            return None
        remembered = self._remembered("header", value)
        if remembered is not None:
            return remembered
        if self.trust_plain_header and not self._is_our_token(value):
            return self._plain("header", value)
        return self._signed("header", value, value)

    def _is_our_token(self, value: str) -> bool:
        return (
            len(value) <= MAX_TOKEN_LENGTH
            and _TOKEN_RE.fullmatch(value) is not None
            and self.signer.verify(value) is not None
        )

    def _from_cookie(self, inputs: RequestInputs) -> _Candidate | Resolution | None:
        header = inputs.cookie
        if not header:
            return None
        # Keyed by the whole header, which a browser repeats verbatim: a hit skips
        # parsing too. Long headers are not remembered, to bound the memory used.
        short = len(header) <= _REMEMBERED_HEADER_LENGTH
        if short:
            remembered = self._remembered("cookie", header)
            if remembered is not None:
                return remembered
        value = find_cookie(header, self.cookie_name)
        if value is None:
            return None
        return self._signed("cookie", value, header if short else None)

    def _from_baggage(self, inputs: RequestInputs) -> _Candidate | None:
        header = inputs.baggage
        if not header or "session.id" not in header:
            return None
        for member in header.split(","):
            key, _, rest = member.partition("=")
            if key.strip() == "session.id":
                value = unquote(rest.split(";", 1)[0].strip())
                return self._plain("baggage", value)
        return None


def find_cookie(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, without a full parse."""
    start = 0
    target = name + "="
    while True:
        at = header.find(target, start)
        if at < 0:
            return None
        # Must be at the start of a cookie-pair, not the tail of another name.
        if at == 0 or header[at - 1] in " ;":
            end = header.find(";", at)
            value = header[at + len(target) : end if end >= 0 else len(header)].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
        start = at + len(target)


def parse_json_field(body: bytes, field: str) -> object:
    """The top-level ``field`` of a JSON object body, ``None`` if absent or not JSON."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        reject("conversation_json", "not_json")
        return None
    if not isinstance(document, dict):
        return None
    return document.get(field)
