"""The middleware options: declared once, checked once, at startup.

``SessionConfig`` is the one list of options, with their defaults and the
rules a value must follow; both middlewares and the Flask extension build
one. ``SessionOptions`` mirrors it for type checkers, so a typo in
``add_middleware(NeatlogsSessionMiddleware, ...)`` is caught before the app
runs; a test keeps the two and the README's table in step.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict

from neatlogs_web._option_names import check_option_names
from neatlogs_web._session.signing import TOKEN_RE, SecretKeys
from neatlogs_web._session.sources import compile_template

__all__ = ["ConversationBinding", "SameSite", "SessionConfig", "SessionOptions", "Validator"]

SameSite = Literal["lax", "strict", "none"]
ConversationBinding = Literal["on_arrival", "when_confirmed"]
Validator = Callable[[str], bool]

SOURCES: Final = ("conversation", "header", "cookie", "baggage")
DEFAULT_SOURCES: Final = ("conversation", "header", "cookie")
DEFAULT_MAX_AGE: Final = 14 * 24 * 3600
DEFAULT_JSON_BODY_LIMIT: Final = 64 * 1024
DEFAULT_FEEDBACK_MAX_AGE: Final = 7 * 24 * 3600
DEFAULT_FEEDBACK_PATH: Final = "/neatlogs/feedback"
# RFC 9110 token characters.
_HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# What a Set-Cookie attribute value may hold (RFC 6265: no controls, no ";").
_COOKIE_PATH_RE: Final = re.compile(r"/[\x20-\x3a\x3c-\x7e]*")
_COOKIE_DOMAIN_RE: Final = re.compile(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
# RFC 6265bis: user agents cap a cookie's Max-Age at 400 days.
_MAX_COOKIE_AGE: Final = 400 * 24 * 3600
# Headers the session or conversation header must not be: framing, routing,
# cookies, or what the middleware itself sets.
_RESERVED_HEADERS: Final = frozenset(
    {
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "cookie",
        "host",
        "keep-alive",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "vary",
    }
)
_OPTIONAL_STRINGS: Final = (
    "cookie_domain",
    "conversation_query",
    "conversation_header",
    "conversation_json_field",
)


def _items(option: str, value: str | Iterable[str]) -> tuple[str, ...]:
    """A list option given as one string is that one item, not its characters."""
    if isinstance(value, str):
        return (value,)
    items = tuple(value) if isinstance(value, Iterable) else None  # a generator, read once
    if items is None or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{option} must be a string or a list of strings, not {value!r}")
    return items


@dataclass(frozen=True, kw_only=True)
class SessionConfig:
    """Every option of the session middlewares (see the README's table)."""

    #: Key, or keys newest first (the first signs, all verify); ``None``: ``NEATLOGS_SECRET_KEY``.
    secret_key: SecretKeys | None = field(default=None, repr=False)
    cookie_name: str = "neatlogs_session"
    #: Token and cookie lifetime in seconds; ``None`` for a browser-session cookie.
    max_age: int | None = DEFAULT_MAX_AGE
    #: Seconds of inactivity after which a new session starts.
    idle_timeout: int | None = None
    cookie_path: str = "/"
    cookie_domain: str | None = None
    #: ``None``: ``Secure`` on https only.
    secure: bool | None = None
    same_site: SameSite = "lax"
    header_name: str = "X-Neatlogs-Session-Id"
    #: Accept plain ids in the session header (trusted callers only).
    trust_plain_header: bool = False
    conversation_paths: Sequence[str] = ()
    conversation_query: str | None = None
    conversation_header: str | None = None
    conversation_json_field: str | None = None
    json_body_limit: int = DEFAULT_JSON_BODY_LIMIT
    #: ``"when_confirmed"``: a conversation id found in the request binds only
    #: once the app confirms it (``neatlogs_web.confirm_conversation()``).
    conversation_binding: ConversationBinding = "on_arrival"
    sources: Sequence[str] = DEFAULT_SOURCES
    exclude_paths: Sequence[str] = ()
    validator: Validator | None = None
    expose_trace_id: bool = False
    #: Give each response that carried a turn a signed feedback token in a header.
    feedback: bool = False
    #: Seconds a feedback token stays good.
    feedback_max_age: int = DEFAULT_FEEDBACK_MAX_AGE
    #: Where the middleware takes feedback (POST JSON); ``None``: only ``record_feedback()``.
    feedback_path: str | None = DEFAULT_FEEDBACK_PATH

    def __post_init__(self) -> None:
        for name in ("conversation_paths", "exclude_paths", "sources"):
            object.__setattr__(self, name, _items(name, getattr(self, name)))
        _check(self)

    @classmethod
    def from_options(
        cls, owner: str, secret_key: SecretKeys | None, options: Mapping[str, Any]
    ) -> SessionConfig:
        """Build from keyword options; an unknown name is a ``TypeError`` naming
        ``owner`` (the public class) and the closest known option."""
        check_option_names(owner, options, OPTION_NAMES)
        return cls(secret_key=secret_key, **options)


def _check(config: SessionConfig) -> None:
    for name in ("cookie_name", "cookie_path", "header_name"):
        if not isinstance(getattr(config, name), str):
            raise ValueError(f"{name} must be a string, not {getattr(config, name)!r}")
    for name in _OPTIONAL_STRINGS:
        value = getattr(config, name)
        if value is not None and not (isinstance(value, str) and value):
            raise ValueError(f"{name} must be a non-empty string or None, not {value!r}")
    if not config.sources:
        raise ValueError(f"sources must name at least one of {', '.join(SOURCES)}")
    for name in config.sources:
        if name not in SOURCES:
            raise ValueError(f"sources: unknown source {name!r}; choose from {', '.join(SOURCES)}")
    if len(set(config.sources)) != len(config.sources):
        raise ValueError(f"sources lists a name twice: {tuple(config.sources)!r}")
    if config.same_site not in ("lax", "strict", "none"):
        raise ValueError(f"same_site must be 'lax', 'strict' or 'none', not {config.same_site!r}")
    if config.same_site == "none" and config.secure is not True:
        raise ValueError(
            "same_site='none' needs secure=True: browsers drop SameSite=None cookies "
            "that are not Secure"
        )
    for name in ("max_age", "idle_timeout"):
        value = getattr(config, name)
        if value is not None and not (_is_number(value) and 1 <= value <= _MAX_COOKIE_AGE):
            raise ValueError(
                f"{name} must be a number of seconds from 1 to {_MAX_COOKIE_AGE} "
                f"(400 days, the most browsers keep a cookie) or None, not {value!r}"
            )
    limit = config.json_body_limit
    if not (isinstance(limit, int) and _is_number(limit) and limit > 0):
        raise ValueError(f"json_body_limit must be a positive number of bytes, not {limit!r}")
    if config.conversation_binding not in ("on_arrival", "when_confirmed"):
        raise ValueError(
            "conversation_binding must be 'on_arrival' or 'when_confirmed', "
            f"not {config.conversation_binding!r}"
        )
    for name in ("trust_plain_header", "expose_trace_id", "feedback"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be True or False, not {getattr(config, name)!r}")
    if config.secure is not None and not isinstance(config.secure, bool):
        raise ValueError(f"secure must be True, False or None (https only), not {config.secure!r}")
    if not isinstance(config.cookie_path, str) or not _COOKIE_PATH_RE.fullmatch(config.cookie_path):
        raise ValueError(
            f"cookie_path {config.cookie_path!r} must start with '/' and hold only "
            "printable ASCII without ';'"
        )
    if config.cookie_domain is not None and not _COOKIE_DOMAIN_RE.fullmatch(
        str(config.cookie_domain)
    ):
        raise ValueError(f"cookie_domain {config.cookie_domain!r} is not a host name")
    if not TOKEN_RE.fullmatch(config.cookie_name) or "=" in config.cookie_name:
        raise ValueError(f"cookie_name {config.cookie_name!r} is not a valid cookie name")
    _check_cookie_prefix(config)
    for name in ("header_name", "conversation_header"):
        value = getattr(config, name)
        if value is not None and not _HEADER_NAME_RE.fullmatch(value):
            raise ValueError(f"{name} {value!r} is not a valid header name")
        if value is not None and value.lower() in _RESERVED_HEADERS:
            raise ValueError(
                f"{name} {value!r} is a header HTTP or cookies already use: choose another "
                "name, e.g. the default X-Neatlogs-Session-Id"
            )
    for template in config.conversation_paths:
        compile_template(template)
    for path in config.exclude_paths:
        if not path.startswith("/"):
            raise ValueError(f"exclude_paths: {path!r} must start with '/'")
    if config.validator is not None and not callable(config.validator):
        raise ValueError("validator must be a callable taking a str and returning a bool")
    _check_feedback(config)


def _check_feedback(config: SessionConfig) -> None:
    age = config.feedback_max_age
    if not (_is_number(age) and 1 <= age <= _MAX_COOKIE_AGE):
        raise ValueError(
            f"feedback_max_age must be a number of seconds from 1 to {_MAX_COOKIE_AGE}, not {age!r}"
        )
    path = config.feedback_path
    if path is not None and not (isinstance(path, str) and _COOKIE_PATH_RE.fullmatch(path)):
        raise ValueError(f"feedback_path must be a path starting with '/' or None, not {path!r}")
    excluded = any(
        path == pattern or (pattern.endswith("*") and path.startswith(pattern[:-1]))
        for pattern in config.exclude_paths
        if path is not None
    )
    if config.feedback and excluded:
        raise ValueError(
            f"feedback_path {path!r} is in exclude_paths: feedback needs the session, "
            "so the feedback path must not be excluded"
        )


def _check_cookie_prefix(config: SessionConfig) -> None:
    """Browsers drop ``__Secure-`` and ``__Host-`` cookies set without what the
    prefix promises (RFC 6265bis): say so at startup, not by a new session per request."""
    name = config.cookie_name
    if name.startswith(("__Secure-", "__Host-")) and config.secure is not True:
        raise ValueError(f"cookie_name {name!r} needs secure=True: browsers drop it otherwise")
    if name.startswith("__Host-") and (config.cookie_path != "/" or config.cookie_domain):
        raise ValueError(
            f"cookie_name {name!r} needs cookie_path='/' and no cookie_domain: "
            "browsers drop it otherwise"
        )


def _is_number(value: object) -> bool:
    # bool is an int to Python, but True is no number of seconds or bytes.
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_view_argument(option: str, value: object) -> None:
    """An integration's option naming the view argument that holds the conversation."""
    if value is not None and not (isinstance(value, str) and value):
        raise ValueError(
            f"{option} must name the view argument holding the conversation id "
            f"(a non-empty string) or be None, not {value!r}"
        )


def check_end_user(end_user: object) -> None:
    """The middlewares' ``end_user`` option: a callable from the request, or ``None``."""
    if end_user is not None and not callable(end_user):
        raise ValueError(
            f"end_user must be a callable from the request to an end-user id, not {end_user!r}"
        )


class SessionOptions(TypedDict, total=False):
    """``SessionConfig``'s options as keyword arguments (``secret_key`` aside)."""

    cookie_name: str
    max_age: int | None
    idle_timeout: int | None
    cookie_path: str
    cookie_domain: str | None
    secure: bool | None
    same_site: SameSite
    header_name: str
    trust_plain_header: bool
    conversation_paths: Sequence[str]
    conversation_query: str | None
    conversation_header: str | None
    conversation_json_field: str | None
    json_body_limit: int
    conversation_binding: ConversationBinding
    sources: Sequence[str]
    exclude_paths: Sequence[str]
    validator: Validator | None
    expose_trace_id: bool
    feedback: bool
    feedback_max_age: int
    feedback_path: str | None


OPTION_NAMES: Final = frozenset(f.name for f in dataclasses.fields(SessionConfig)) - {"secret_key"}
