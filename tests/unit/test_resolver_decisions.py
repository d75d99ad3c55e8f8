"""The resolver's decisions, without a server: the unit tier, it runs in seconds.

Each test hands ``SessionResolver`` the raw values a request carries, as the
adapters would, and reads the decision and the rejections counted in
``neatlogs_web.stats()``. The same rules on real servers are in
``tests/test_conversation_authorization.py`` and ``tests/test_bad_input.py``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from neatlogs_web._session.options import SessionConfig
from neatlogs_web._session.resolver import MAX_COOKIE_CANDIDATES, SessionResolver
from tests.tokens import make_token
from tests.unit.resolving import SECRET, cookie_header, rejected, resolve, resolver

CONFIRMED = {
    "conversation_paths": ["/chat/{conversation_id}"],
    "conversation_query": "conversation_id",
    "conversation_header": "X-Conversation-Id",
    "conversation_json_field": "conversation_id",
    "conversation_binding": "when_confirmed",
}


# -- a conversation id is bound only when every copy of it agrees -------------

ATTACKER_JSON = b'{"conversation_id": "conv-attacker"}'

AMBIGUOUS_REQUESTS = {
    "two_query_values": (
        {"query": "conversation_id=conv-victim&conversation_id=conv-attacker"},
        "conversation_query.ambiguous",
    ),
    "two_header_lines_as_asgi_joins_them": (
        {"conversation_header": "conv-attacker, conv-victim"},
        "conversation_header.ambiguous",
    ),
    "two_header_lines_as_gunicorn_joins_them": (
        {"conversation_header": "conv-attacker,conv-victim"},
        "conversation_header.ambiguous",
    ),
    "path_and_query": (
        {"path": "/chat/conv-attacker", "query": "conversation_id=conv-victim"},
        "conversation.ambiguous",
    ),
    "query_and_json_body": (
        {"query": "conversation_id=conv-victim", "body": b'{"conversation_id": "conv-attacker"}'},
        "conversation.ambiguous",
    ),
    "header_and_json_body": (
        {"conversation_header": "conv-victim", "body": b'{"conversation_id": "conv-attacker"}'},
        "conversation.ambiguous",
    ),
    # Frameworks percent-decode a query's keys before they look one up.
    "path_and_query_key_with_an_encoded_underscore": (
        {"path": "/chat/conv-victim", "query": "conversation%5Fid=conv-attacker"},
        "conversation.ambiguous",
    ),
    "path_and_query_key_with_an_encoded_letter": (
        {"path": "/chat/conv-victim", "query": "%63onversation_id=conv-attacker"},
        "conversation.ambiguous",
    ),
    # json.loads reads bytes with a BOM, in UTF-16 and in UTF-32.
    "path_and_json_body_with_a_bom": (
        {"path": "/chat/conv-victim", "body": b"\xef\xbb\xbf" + ATTACKER_JSON},
        "conversation.ambiguous",
    ),
    "path_and_json_body_in_utf_16": (
        {"path": "/chat/conv-victim", "body": ATTACKER_JSON.decode().encode("utf-16")},
        "conversation.ambiguous",
    ),
    "path_and_json_body_in_utf_32": (
        {"path": "/chat/conv-victim", "body": ATTACKER_JSON.decode().encode("utf-32")},
        "conversation.ambiguous",
    ),
    # The app reads a value the middleware cannot compare: it may be any id.
    "path_and_json_value_that_is_no_id": (
        {"path": "/chat/conv-victim", "body": b'{"conversation_id": ["conv-attacker"]}'},
        "conversation_json.invalid",
    ),
    # The app may read a copy in a body the adapter could not read.
    "path_and_unread_body": (
        {"path": "/chat/conv-victim", "body": None},
        "conversation.unread_body",
    ),
}


@pytest.mark.parametrize("binding", ["when_confirmed", "on_arrival"])
@pytest.mark.parametrize(
    ("request_values", "counted"),
    list(AMBIGUOUS_REQUESTS.values()),
    ids=list(AMBIGUOUS_REQUESTS),
)
def test_a_request_naming_two_conversations_binds_neither(
    binding: str, request_values: dict[str, Any], counted: str
) -> None:
    """Nothing to confirm, nothing bound on arrival: the session is the browser's."""
    before = rejected()
    options = {**CONFIRMED, "conversation_binding": binding}
    resolution = resolve(resolver(**options), **request_values)
    assert (resolution.source, resolution.pending_conversation_id) == ("new", None)
    assert resolution.session_id not in ("conv-victim", "conv-attacker")
    assert rejected() - before == Counter({counted: 1})


@pytest.mark.parametrize(
    "request_values",
    [
        {"query": "conversation_id=conv-1&conversation_id=conv-1"},
        {"conversation_header": "conv-1, conv-1"},
        {"path": "/chat/conv-1", "query": "conversation_id=conv-1"},
        {
            "path": "/chat/conv-1",
            "conversation_header": "conv-1",
            "body": b'{"conversation_id": "conv-1"}',
        },
        {"path": "/chat/conv-1", "query": "conversation%5Fid=conv-1"},
        {"path": "/chat/conv-1", "body": '{"conversation_id": "conv-1"}'.encode("utf-16")},
    ],
    ids=[
        "query",
        "header",
        "path_and_query",
        "path_header_and_body",
        "path_and_encoded_query_key",
        "path_and_utf_16_body",
    ],
)
def test_copies_that_agree_name_the_conversation(request_values: dict[str, Any]) -> None:
    before = rejected()
    assert resolve(resolver(**CONFIRMED), **request_values).pending_conversation_id == "conv-1"
    options = {**CONFIRMED, "conversation_binding": "on_arrival"}
    assert resolve(resolver(**options), **request_values).session_id == "conv-1"
    assert rejected() == before


def test_a_conversation_skipped_as_ambiguous_leaves_the_session_to_the_cookie() -> None:
    cookie = cookie_header(make_token("browser", SECRET))
    query = "conversation_id=conv-victim&conversation_id=conv-attacker"
    resolution = resolve(resolver(**CONFIRMED), query=query, cookie=cookie)
    assert (resolution.session_id, resolution.source) == ("browser", "cookie")
    assert resolution.pending_conversation_id is None


def test_an_unread_body_with_no_other_copy_is_a_missing_conversation() -> None:
    """Nothing else names a conversation: nothing to doubt, nothing counted."""
    cookie = cookie_header(make_token("browser", SECRET))
    before = rejected()
    resolution = resolve(resolver(**CONFIRMED), body=None, cookie=cookie)
    assert (resolution.session_id, resolution.source) == ("browser", "cookie")
    assert resolution.pending_conversation_id is None
    assert rejected() == before


@pytest.mark.parametrize(
    ("content_type", "may_hold_json"),
    [
        ("", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ("text/plain;charset=UTF-8", True),
        ("image/png, application/json", True),
        ("multipart/form-data; boundary=x", False),
        ("application/x-www-form-urlencoded", False),
        ("application/octet-stream", False),
    ],
)
def test_every_body_an_app_might_parse_as_json_is_read(
    content_type: str, may_hold_json: bool
) -> None:
    """``request.json()`` parses a body whatever its type says; frameworks' body
    parameters take one without a type too."""
    assert resolver(**CONFIRMED).body_may_hold_conversation(content_type) is may_hold_json


def test_two_session_header_lines_that_disagree_are_skipped() -> None:
    mine, other = make_token("mine", SECRET), make_token("other", SECRET)
    before = rejected()
    resolution = resolve(resolver(), session_header=f"{mine}, {other}")
    assert resolution.source == "new"
    assert rejected() - before == Counter({"header.ambiguous": 1})
    assert resolve(resolver(), session_header=f"{mine}, {mine}").session_id == "mine"


def test_two_baggage_session_ids_that_disagree_are_skipped() -> None:
    trusting = resolver(sources=("baggage", "cookie"))
    before = rejected()
    resolution = resolve(trusting, baggage="session.id=conv-a, user=1, session.id=conv-b")
    assert resolution.source == "new"
    assert rejected() - before == Counter({"baggage.ambiguous": 1})
    assert resolve(trusting, baggage="session.id=conv-a,session.id=conv-a").session_id == "conv-a"


def test_only_a_conversation_header_still_lets_the_cookie_decide_alone() -> None:
    """The conversation's one step reads every copy; a request without the header
    is still answered from the decision remembered for its cookie."""
    header_only = resolver(conversation_header="X-Conversation-Id")
    assert header_only.recalls_cookie
    assert header_only.headers_before_cookie == ("x-conversation-id", "x-neatlogs-session-id")
    assert not resolver(conversation_query="conversation_id").recalls_cookie


# -- at most MAX_COOKIE_CANDIDATES values of the cookie name are checked -------


def forged_tokens(count: int) -> list[str]:
    return [make_token(f"forged-{index}", "attacker-key") for index in range(count)]


def test_a_valid_cookie_within_the_bound_is_the_session() -> None:
    forged = forged_tokens(MAX_COOKIE_CANDIDATES - 1)
    valid = make_token("alice", SECRET)
    resolution = resolve(resolver(), path="/", cookie=cookie_header(*forged, valid))
    assert (resolution.session_id, resolution.set_cookie) == ("alice", None)


def test_a_valid_cookie_after_the_bound_is_not_looked_at(hmac_checks: list[None]) -> None:
    """Only the first values count, as a browser sends at most a few: a request
    with more starts a new session, however many it holds and wherever its
    valid one is."""
    before = rejected()
    cookie = cookie_header(*forged_tokens(1400), make_token("alice", SECRET))
    resolution = resolve(resolver(), path="/", cookie=cookie)
    assert resolution.source == "new" and resolution.set_cookie is not None
    assert len(hmac_checks) == MAX_COOKIE_CANDIDATES
    assert rejected() - before == Counter(
        {"cookie.bad_signature": MAX_COOKIE_CANDIDATES, "cookie.too_many": 1}
    )


def test_the_bound_holds_with_every_key_of_a_rotation(hmac_checks: list[None]) -> None:
    rotating = SessionResolver(SessionConfig(secret_key=[SECRET, "older-key"]))
    for _ in range(3):
        resolve(rotating, path="/", cookie=cookie_header(*forged_tokens(200)))
    assert len(hmac_checks) == 3 * MAX_COOKIE_CANDIDATES * 2


@pytest.mark.parametrize("space", ["\xa0", "\x85", "\u2003"])
def test_a_header_copy_keeps_what_http_does_not_call_whitespace(space: str) -> None:
    # Servers pass a no-break space through and the app reads it as part of the
    # id: stripping it would bind "conv-victim" while the app serves another id.
    header_only = resolver(conversation_header="X-Conversation-Id")
    resolution = resolve(header_only, conversation_header=f"conv-victim{space}")
    assert resolution.session_id != "conv-victim"
    assert resolve(header_only, conversation_header=" conv-a\t").session_id == "conv-a"
