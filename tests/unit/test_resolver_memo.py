"""The memo of remembered decisions: a returning token is decided once.

A token that needs nothing ("bind it, change nothing") is remembered under
the token (session header) or the whole ``Cookie`` header, so the common
request is a lookup. The memory lapses exactly when the token's age calls
for another look: a refresh, then expiry.
"""

from __future__ import annotations

import time

import pytest

from tests.tokens import make_token
from tests.unit.resolving import SECRET, cookie_header, resolve, resolver

MAX_AGE = 100  # refreshed once older than 50 s, refused once older than 100 s


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the clock the resolver reads ``seconds`` ahead."""
    now = time.time
    monkeypatch.setattr(time, "time", lambda: now() + seconds)


def sent_as(source: str, token: str) -> dict[str, str]:
    return {source: cookie_header(token) if source == "cookie" else token}


@pytest.mark.parametrize("source", ["cookie", "session_header"])
def test_a_returning_token_is_verified_once(source: str, verified_tokens: list[str]) -> None:
    token = make_token("alice", SECRET)
    deciding = resolver()
    chosen = [resolve(deciding, **sent_as(source, token)) for _ in range(3)]
    assert [c.session_id for c in chosen] == ["alice"] * 3
    assert verified_tokens == [token]


@pytest.mark.parametrize("source", ["cookie", "session_header"])
def test_a_remembered_decision_lapses_when_the_tokens_age_calls_for_another_look(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = sent_as(source, make_token("alice", SECRET))
    deciding = resolver(max_age=MAX_AGE)
    assert resolve(deciding, **sent).echo_token is None
    later(monkeypatch, MAX_AGE / 2 + 1)
    refreshed = resolve(deciding, **sent)
    assert refreshed.session_id == "alice" and refreshed.echo_token is not None
    later(monkeypatch, MAX_AGE / 2)
    expired = resolve(deciding, **sent)
    assert expired.source == "new" and expired.session_id != "alice"


def test_a_long_cookie_header_is_decided_every_time(verified_tokens: list[str]) -> None:
    token = make_token("alice", SECRET)
    long_header = f"theme={'x' * 1100}; {cookie_header(token)}"
    deciding = resolver()
    for _ in range(3):
        assert resolve(deciding, cookie=long_header).session_id == "alice"
    assert verified_tokens == [token] * 3


def test_a_remembered_cookie_never_outranks_a_source_before_it() -> None:
    cookie = cookie_header(make_token("browser", SECRET))
    deciding = resolver()
    assert resolve(deciding, cookie=cookie).session_id == "browser"
    assert deciding.recall(cookie) is not None
    tab = make_token("tab", SECRET)
    chosen = resolve(deciding, cookie=cookie, session_header=tab)
    assert (chosen.session_id, chosen.source) == ("tab", "header")


def test_only_a_kept_token_is_remembered() -> None:
    deciding = resolver(max_age=MAX_AGE)
    aging = cookie_header(make_token("alice", SECRET, age_s=MAX_AGE / 2 + 1))
    assert resolve(deciding, cookie=aging).set_cookie is not None
    assert deciding.recall(aging) is None
    assert resolve(deciding, cookie=aging).set_cookie is not None
