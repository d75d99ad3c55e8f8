"""Which session a request belongs to: sources in order, trust, and memory.

Sans-IO and shared by both middlewares: the adapters hand over the raw
request values (``RequestInputs``) and get back a ``Resolution`` saying what
to bind and what to add to the response. When resolution reaches the
JSON-body source it returns ``NeedsBody``; the adapter reads the body (async
or not) and resumes. A returning user's token is decided once and the
decision remembered until the token's age calls for another look, so the
common request is a lookup.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Collection
from typing import Final, NamedTuple

from neatlogs_web._session.counters import reject
from neatlogs_web._session.ids import MAX_ID_LENGTH, is_valid_session_id, new_session_id
from neatlogs_web._session.memo import DecisionMemo, Remembered
from neatlogs_web._session.options import SessionConfig
from neatlogs_web._session.resolution import NeedsBody, Resolution
from neatlogs_web._session.response import ResponseHeaders
from neatlogs_web._session.signing import (
    MAX_TOKEN_LENGTH,
    TOKEN_RE,
    VERIFIED_CACHE_SIZE,
    SessionSigner,
    VerifiedToken,
    looks_like_token,
    resolve_secret_keys,
)
from neatlogs_web._session.sources import (
    ConversationCopies,
    RequestInputs,
    baggage_session_ids,
    cookie_values,
    header_copies,
    json_field,
)

__all__ = ["MAX_COOKIE_CANDIDATES", "SessionResolver"]

# Allowed clock skew between processes that share a key.
_FUTURE_SKEW_S: Final = 300
# Longer Cookie headers are not remembered, to bound the memory used.
_REMEMBERED_HEADER_LENGTH: Final = 1024
# An app's own validator replaces the charset rule; input stays bounded.
_CUSTOM_ID_LIMIT: Final = 1024
#: Values of the session cookie's name checked per request. A browser sends a
#: name a few times at most (cookies of other paths or domains); each value
#: checked costs an HMAC per key, so a request must not choose how many.
MAX_COOKIE_CANDIDATES: Final = 4


class _Candidate(NamedTuple):
    """A valid value a source found, before the policy decides what to do with it."""

    session_id: str
    token: VerifiedToken | None = None
    #: What the decision is remembered under (the token, or the whole Cookie header).
    memo_key: str | bytes | None = None


_SourceOutcome = _Candidate | Resolution | None


class _Step(NamedTuple):
    source: str
    read: Callable[[RequestInputs], _SourceOutcome]
    reads_body: bool = False
    #: The one request header the step reads, when it reads nothing else: a
    #: request without that header is decided by the steps after it.
    header: str | None = None


class SessionResolver:
    """The configured sources, in order, and the decisions about what they found."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.signer = SessionSigner(resolve_secret_keys(config.secret_key))
        self._validator = config.validator or is_valid_session_id
        self._max_id_length = MAX_ID_LENGTH if config.validator is None else _CUSTOM_ID_LIMIT
        self._conversation = ConversationCopies(
            config.conversation_paths,
            config.conversation_query,
            config.conversation_header,
            config.conversation_json_field,
        )
        self.confirms_conversations = config.conversation_binding == "when_confirmed"
        self._exclude_exact = frozenset(p for p in config.exclude_paths if not p.endswith("*"))
        self._exclude_prefixes = tuple(p[:-1] for p in config.exclude_paths if p.endswith("*"))
        #: Whether any path is excluded: most apps exclude none, and skip the check.
        self.excludes_paths = bool(config.exclude_paths)
        self._steps = self._build_steps()
        sources = [step.source for step in self._steps]
        self.reads_cookie = "cookie" in sources
        self.reads_session_header = "header" in sources
        self.reads_baggage = "baggage" in sources
        self.reads_conversation_header = bool(config.conversation_header) and (
            "conversation" in config.sources
        )
        self.reads_body = any(step.reads_body for step in self._steps)
        # A request that sends none of the headers read before the cookie is
        # decided by its cookie alone, and a remembered decision answers it
        # (see recall()). Sources before the cookie that read the path, the
        # query or the body rule that out.
        before_cookie = self._steps[: sources.index("cookie")] if self.reads_cookie else []
        #: Whether :meth:`recall` may answer requests whose cookie alone decides.
        self.recalls_cookie = self.reads_cookie and all(
            step.header is not None for step in before_cookie
        )
        #: Lower-case names of the headers that, when sent, decide before the cookie.
        self.headers_before_cookie = tuple(
            step.header.lower() for step in before_cookie if step.header is not None
        )

        # Refresh the token long before it lapses; with an idle timeout, often
        # enough that the signed timestamp tracks activity to within 10%.
        limits = [v / 2 for v in (config.max_age,) if v] + [
            v / 10 for v in (config.idle_timeout,) if v
        ]
        self._refresh_after = min(limits) if limits else None
        # A token's decision ("bind it, change nothing") holds while its age is
        # within every limit above.
        ages = [v for v in (config.max_age, config.idle_timeout, self._refresh_after) if v]
        self._steady_age = min(ages) if ages else float("inf")
        self._remembered_cookies = DecisionMemo(VERIFIED_CACHE_SIZE)
        self._remembered_headers = DecisionMemo(VERIFIED_CACHE_SIZE)

        self.response = ResponseHeaders(config)
        # A response may need a header whatever the session: the trace id, a feedback token.
        self._always_changes_response = config.expose_trace_id or config.feedback

    # -- per request ---------------------------------------------------------

    def recall(self, cookie_header: str | bytes) -> Resolution | None:
        """The decision remembered for a returning browser's ``Cookie`` header, or
        ``None``: call :meth:`resolve`. Only for requests that send none of
        :attr:`headers_before_cookie`, when :attr:`recalls_cookie` is true: then
        the cookie alone decides, and the common request is one lookup."""
        return self._remembered_cookies.recall(cookie_header)

    def is_excluded(self, path: str) -> bool:
        """Excluded paths (health checks, static files) bind nothing."""
        return path in self._exclude_exact or (
            bool(self._exclude_prefixes) and path.startswith(self._exclude_prefixes)
        )

    def resolve(
        self, inputs: RequestInputs, *, https: bool, resume_at: int = 0
    ) -> Resolution | NeedsBody:
        """Try each source in order; the first valid, trusted value wins.

        Returns ``NeedsBody`` when the JSON-body source is reached before the
        body was read: the caller reads it (``read_json_body``) and calls again
        with ``resume_at``.
        """
        steps = self._steps
        index = resume_at
        while index < len(steps):
            step = steps[index]
            if step.reads_body and not inputs.body_read:
                return NeedsBody(index)
            found = step.read(inputs)
            index += 1
            if found is None:
                continue
            if step.source == "conversation" and self.confirms_conversations:
                # Kept for the app to confirm; the session comes from the other sources.
                assert isinstance(found, _Candidate)
                inputs.pending_conversation_id = found.session_id
                continue
            resolution = (
                found if isinstance(found, Resolution) else self._decide(found, step.source, https)
            )
            return self._with_pending(resolution, inputs)
        return self._with_pending(self.new_session(https), inputs)

    def resume(self, inputs: RequestInputs, needs: NeedsBody, *, https: bool) -> Resolution:
        """The session, once the adapter read the body :meth:`resolve` asked for into
        ``inputs`` (:meth:`read_json_body`)."""
        resolved = self.resolve(inputs, https=https, resume_at=needs.resume_at)
        assert isinstance(resolved, Resolution)  # the body is read: nothing more to ask
        return resolved

    def body_may_hold_conversation(self, content_type: str) -> bool:
        """Whether an app might parse this request's body as JSON, whatever its
        method: when its type is none (``""``), mentions ``json`` or is
        ``text/plain``, all of which ``request.json()`` (Starlette, FastAPI)
        and ``get_json(force=True)`` (Flask) parse."""
        declared = content_type.lower()
        return not declared.strip() or "json" in declared or "text/plain" in declared

    def read_json_body(self, inputs: RequestInputs, body: bytes | None) -> None:
        """Record the JSON field of ``body`` (``b""``: the request has no body an
        app might parse as JSON). ``None``: it has one the adapter could not read
        (too large, of unknown length; counted by the adapter), so the request
        may hold a copy of the conversation id that no one here has seen."""
        inputs.body_read = True
        if body is None:
            inputs.json_unread = True
            return
        field = self.config.conversation_json_field
        assert field is not None
        try:
            inputs.json_value = json_field(body, field)
        except ValueError:
            reject("conversation_json", "not_json")

    def new_session(self, https: bool, previous_session_id: str | None = None) -> Resolution:
        session_id = new_session_id()
        token = self.signer.sign(session_id)
        return Resolution(
            session_id,
            "new",
            previous_session_id,
            self.response.set_cookie(token, https) if self.reads_cookie else None,
            token,
            changes_response=True,
        )

    def fallback(self) -> Resolution:
        """A fresh session that needs nothing that could fail: used when resolution
        itself failed. It is not persisted (no cookie, no token)."""
        return self._unchanged(new_session_id(), "new")

    # -- decisions -----------------------------------------------------------

    def _decide(self, candidate: _Candidate, source: str, https: bool) -> Resolution:
        token = candidate.token
        if token is None:
            return self._unchanged(candidate.session_id, source)
        age = time.time() - token.signed_at
        if self.config.idle_timeout is not None and age > self.config.idle_timeout:
            return self.new_session(https, previous_session_id=candidate.session_id)
        if token.old_key or (self._refresh_after is not None and age > self._refresh_after):
            fresh = self.signer.sign(candidate.session_id)
            cookie = self.response.set_cookie(fresh, https) if source == "cookie" else None
            return Resolution(
                candidate.session_id, source, None, cookie, fresh, changes_response=True
            )
        resolution = self._unchanged(candidate.session_id, source)
        if candidate.memo_key is not None:
            # Valid while -skew <= age <= every limit: the checks above and in _signed.
            memo = self._remembered_cookies if source == "cookie" else self._remembered_headers
            memo.put(
                candidate.memo_key,
                Remembered(
                    token.signed_at - _FUTURE_SKEW_S,
                    token.signed_at + self._steady_age,
                    resolution,
                ),
            )
        return resolution

    def _unchanged(self, session_id: str, source: str) -> Resolution:
        """Bind ``session_id``; the response changes only to expose the trace id or
        the turn's feedback token."""
        return Resolution(session_id, source, changes_response=self._always_changes_response)

    @staticmethod
    def _with_pending(resolution: Resolution, inputs: RequestInputs) -> Resolution:
        if inputs.pending_conversation_id is None:
            return resolution
        return dataclasses.replace(
            resolution, pending_conversation_id=inputs.pending_conversation_id
        )

    def _build_steps(self) -> list[_Step]:
        config = self.config
        found = self._conversation
        # One step reads every copy of the conversation id.
        conversation = [
            _Step("conversation", self._from_conversation, found.reads_body, found.only_header)
        ]
        by_source = {
            "conversation": conversation if found else [],
            "header": [_Step("header", self._from_session_header, header=config.header_name)],
            "cookie": [_Step("cookie", self._from_cookie)],
            "baggage": [_Step("baggage", self._from_baggage, header="baggage")],
        }
        return [step for source in config.sources for step in by_source[source]]

    # -- sources ---------------------------------------------------------------

    def _plain(self, source: str, value: str) -> _Candidate | None:
        """An untrusted plain id: bounded, then the app's or the charset rule."""
        if len(value) > self._max_id_length:
            reject(source, "oversized")
            return None
        if not self._validator(value):
            reject(source, "invalid")
            return None
        return _Candidate(value)

    def _signed(self, source: str, value: str, memo_key: str | bytes | None) -> _Candidate | None:
        """Verify a signed token and its age."""
        if len(value) > MAX_TOKEN_LENGTH:
            reject(source, "oversized")
            return None
        if not TOKEN_RE.fullmatch(value):
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
        if self.config.max_age is not None and age > self.config.max_age:
            reject(source, "expired")
            return None
        if age < -_FUTURE_SKEW_S:
            reject(source, "future_timestamp")
            return None
        return _Candidate(verified.session_id, verified, memo_key)

    def _from_conversation(self, inputs: RequestInputs) -> _Candidate | None:
        """The conversation id, when every copy of it in the request agrees: the
        app may read another copy than ours, and a request naming two binds neither.
        A copy we cannot compare (a body we could not read, a JSON value that is
        not an id) is one that may disagree."""
        found = self._conversation.find(inputs)
        if not found:
            return None
        if inputs.json_unread:
            # The app may read the body's field, which we could not: the copies
            # we found may not be all the request holds.
            reject("conversation", "unread_body")
            return None
        copies = [(source, value) for source, value in found if isinstance(value, str)]
        if len(copies) < len(found):
            reject("conversation_json", "invalid")  # a JSON value that is no id
            return None
        sources = {source for source, _ in copies}
        label = sources.pop() if len(sources) == 1 else "conversation"
        value = _agreed(label, [value for _, value in copies])
        return None if value is None else self._plain(copies[0][0], value)

    def _from_session_header(self, inputs: RequestInputs) -> _SourceOutcome:
        header = inputs.session_header
        if header is None:
            return None
        value = _agreed("header", header_copies(header))
        if value is None:
            return None
        remembered = self._remembered_headers.recall(value)
        if remembered is not None:
            return remembered
        if self.config.trust_plain_header and not (
            looks_like_token(value) and self.signer.verify(value) is not None
        ):
            return self._plain("header", value)
        return self._signed("header", value, value)

    def _from_cookie(self, inputs: RequestInputs) -> _SourceOutcome:
        header = inputs.cookie
        if not header:
            return None
        # Remembered under the whole header as the server handed it over, which a
        # browser repeats verbatim: a hit skips decoding and parsing too.
        as_sent = header if inputs.cookie_as_sent is None else inputs.cookie_as_sent
        memo_key = as_sent if len(as_sent) <= _REMEMBERED_HEADER_LENGTH else None
        if memo_key is not None:
            remembered = self.recall(memo_key)
            if remembered is not None:
                return remembered
        # Several values: a stale cookie of another path may come first. Only the
        # first few are checked, whatever the request holds after them.
        values = cookie_values(header, self.config.cookie_name)
        for value in itertools.islice(values, MAX_COOKIE_CANDIDATES):
            candidate = self._signed("cookie", value, memo_key)
            if candidate is not None:
                return candidate
        if next(values, None) is not None:
            reject("cookie", "too_many")
        return None

    def _from_baggage(self, inputs: RequestInputs) -> _Candidate | None:
        copies = baggage_session_ids(inputs.baggage) if inputs.baggage else []
        value = _agreed("baggage", copies) if copies else None
        return None if value is None else self._plain("baggage", value)


def _agreed(source: str, copies: Collection[str]) -> str | None:
    """The value every copy holds; ``None``, counted, when copies disagree: a
    request that says two things says nothing. Identical copies are one value."""
    distinct = set(copies)
    if len(distinct) > 1:
        reject(source, "ambiguous")
        return None
    return distinct.pop()
