"""A signed token's age and key: kept, refreshed, rotated, expired or idle.

A token is refreshed (re-signed with the newest key, same session) once it is
older than half of ``max_age`` or a tenth of ``idle_timeout``, or when an
older key signed it; past ``max_age`` it is refused, and past
``idle_timeout`` a new session starts that remembers the one it replaces.
"""

from __future__ import annotations

from collections import Counter

import pytest

from neatlogs_web._session.signing import SessionSigner
from tests.tokens import make_token, session_of
from tests.unit.resolving import SECRET, cookie_header, rejected, resolve, resolver

DAY = 24 * 3600


def cookie_value(set_cookie: str | None) -> str:
    assert set_cookie is not None
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def test_a_young_token_is_kept_as_it_is() -> None:
    chosen = resolve(resolver(), cookie=cookie_header(make_token("alice", SECRET, age_s=60)))
    assert (chosen.session_id, chosen.source) == ("alice", "cookie")
    assert (chosen.set_cookie, chosen.echo_token, chosen.changes_response) == (None, None, False)


@pytest.mark.parametrize(
    ("options", "age_s"),
    [({}, 8 * DAY), ({"max_age": 100}, 51), ({"idle_timeout": 1000}, 101)],
    ids=["past-half-of-14-days", "past-half-of-max-age", "past-a-tenth-of-idle-timeout"],
)
def test_an_aging_token_is_refreshed_in_the_same_session(
    options: dict[str, int], age_s: int
) -> None:
    old = make_token("alice", SECRET, age_s=age_s)
    chosen = resolve(resolver(**options), cookie=cookie_header(old))
    assert (chosen.session_id, chosen.source, chosen.changes_response) == ("alice", "cookie", True)
    fresh = cookie_value(chosen.set_cookie)
    assert fresh == chosen.echo_token and fresh != old
    verified = SessionSigner([SECRET.encode()]).verify(fresh)
    assert verified is not None and verified.session_id == "alice"


def test_a_refreshed_header_token_is_echoed_and_sets_no_cookie() -> None:
    old = make_token("tab", SECRET, age_s=8 * DAY)
    chosen = resolve(resolver(), session_header=old)
    assert (chosen.session_id, chosen.source, chosen.set_cookie) == ("tab", "header", None)
    assert chosen.echo_token is not None and session_of(chosen.echo_token) == "tab"


def test_a_token_of_an_older_key_verifies_and_is_resigned_with_the_newest() -> None:
    rotating = resolver(secret_key=["newest-key", SECRET])
    chosen = resolve(rotating, cookie=cookie_header(make_token("alice", SECRET)))
    assert (chosen.session_id, chosen.source) == ("alice", "cookie")
    fresh = cookie_value(chosen.set_cookie)
    assert SessionSigner([b"newest-key"]).verify(fresh) is not None
    assert SessionSigner([SECRET.encode()]).verify(fresh) is None
    # The newest key's own token needs no refresh.
    kept = resolve(rotating, cookie=cookie_header(fresh))
    assert (kept.session_id, kept.set_cookie) == ("alice", None)


def test_a_token_of_a_key_removed_from_the_rotation_is_refused() -> None:
    before = rejected()
    rotated = resolver(secret_key=["newest-key"])
    chosen = resolve(rotated, cookie=cookie_header(make_token("alice", SECRET)))
    assert chosen.source == "new" and chosen.session_id != "alice"
    assert rejected() - before == Counter({"cookie.bad_signature": 1})


def test_a_token_past_max_age_is_refused() -> None:
    before = rejected()
    chosen = resolve(
        resolver(max_age=100), cookie=cookie_header(make_token("alice", SECRET, age_s=101))
    )
    assert chosen.source == "new" and chosen.session_id != "alice"
    assert chosen.previous_session_id is None
    assert rejected() - before == Counter({"cookie.expired": 1})


def test_a_token_signed_far_in_the_future_is_refused() -> None:
    before = rejected()
    future = make_token("alice", SECRET, age_s=-3600)
    assert resolve(resolver(), cookie=cookie_header(future)).source == "new"
    assert rejected() - before == Counter({"cookie.future_timestamp": 1})
    # A few seconds of clock skew between processes sharing the key is fine.
    skewed = make_token("alice", SECRET, age_s=-60)
    assert resolve(resolver(), cookie=cookie_header(skewed)).session_id == "alice"


def test_past_the_idle_timeout_a_new_session_starts_and_names_the_old_one() -> None:
    idle = make_token("yesterday", SECRET, age_s=1801)
    chosen = resolve(resolver(idle_timeout=1800), cookie=cookie_header(idle))
    assert chosen.source == "new" and chosen.session_id != "yesterday"
    assert chosen.previous_session_id == "yesterday"
    assert session_of(cookie_value(chosen.set_cookie)) == chosen.session_id
    assert chosen.echo_token is not None and session_of(chosen.echo_token) == chosen.session_id
