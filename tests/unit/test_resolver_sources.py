"""Which source decides: the configured order, and which values each source trusts.

A signed token is trusted wherever it arrives; a plain id only where the app
said so (a conversation it routes, the session header with
``trust_plain_header``, baggage when listed). The first source whose value
is valid and trusted wins; a value that is not is counted and the next
source decides.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.tokens import make_token
from tests.unit.resolving import SECRET, cookie_header, rejected, resolve, resolver

COOKIE = cookie_header(make_token("from-cookie", SECRET))
HEADER_TOKEN = make_token("from-header", SECRET)


def tampered(token: str) -> str:
    """``token`` with the first character of its signature changed (the last one
    holds padding bits: changing it may leave the signature as it was)."""
    value, timestamp, signature = token.rsplit(".", 2)
    other = "B" if signature.startswith("A") else "A"
    return f"{value}.{timestamp}.{other}{signature[1:]}"


def test_by_default_the_conversation_then_the_header_then_the_cookie_decides() -> None:
    default = resolver(conversation_paths=["/chat/{conversation_id}"])
    everything = {"cookie": COOKIE, "session_header": HEADER_TOKEN}
    chosen = resolve(default, "/chat/conv-1", **everything)
    assert (chosen.session_id, chosen.source) == ("conv-1", "conversation")
    chosen = resolve(default, "/other", **everything)
    assert (chosen.session_id, chosen.source) == ("from-header", "header")
    chosen = resolve(default, "/other", cookie=COOKIE)
    assert (chosen.session_id, chosen.source) == ("from-cookie", "cookie")


def test_the_order_of_sources_is_the_order_tried() -> None:
    cookie_first = resolver(sources=("cookie", "header"))
    chosen = resolve(cookie_first, cookie=COOKIE, session_header=HEADER_TOKEN)
    assert (chosen.session_id, chosen.source) == ("from-cookie", "cookie")
    chosen = resolve(cookie_first, session_header=HEADER_TOKEN)
    assert (chosen.session_id, chosen.source) == ("from-header", "header")


def test_a_source_left_out_is_not_read_and_a_new_session_sets_no_cookie() -> None:
    header_only = resolver(sources=("header",))
    assert not header_only.reads_cookie
    chosen = resolve(header_only, cookie=COOKIE)
    assert chosen.source == "new" and chosen.session_id != "from-cookie"
    assert chosen.set_cookie is None and chosen.echo_token is not None


def test_a_value_that_fails_is_counted_and_the_next_source_decides() -> None:
    before = rejected()
    forged = make_token("victim", "attacker-key")
    chosen = resolve(resolver(), session_header=forged, cookie=COOKIE)
    assert (chosen.session_id, chosen.source) == ("from-cookie", "cookie")
    assert rejected() - before == Counter({"header.bad_signature": 1})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("plain-id", "unsigned"),
        (make_token("victim", "attacker-key"), "bad_signature"),
        (tampered(make_token("victim", SECRET)), "bad_signature"),
        ("not a token!", "invalid"),
        ("x" * 5000, "oversized"),
    ],
    ids=["plain", "other-key", "tampered", "bad-characters", "oversized"],
)
@pytest.mark.parametrize("source", ["cookie", "session_header"])
def test_a_session_value_that_is_no_valid_token_starts_a_new_session(
    source: str, value: str, reason: str
) -> None:
    before = rejected()
    sent = cookie_header(value) if source == "cookie" else value
    chosen = resolve(resolver(), **{source: sent})
    assert chosen.source == "new" and chosen.session_id not in ("victim", "plain-id")
    counted = "cookie" if source == "cookie" else "header"
    assert rejected() - before == Counter({f"{counted}.{reason}": 1})


def test_a_plain_header_id_is_trusted_only_where_the_app_opts_in() -> None:
    assert resolve(resolver(), session_header="tab-7").source == "new"
    trusting = resolve(resolver(trust_plain_header=True), session_header="tab-7")
    assert (trusting.session_id, trusting.source) == ("tab-7", "header")
    # Trusted as it came: nothing to set or echo back.
    assert (trusting.set_cookie, trusting.echo_token, trusting.changes_response) == (
        None,
        None,
        False,
    )


def test_a_signed_token_in_a_trusting_header_is_still_its_session_not_its_text() -> None:
    chosen = resolve(resolver(trust_plain_header=True), session_header=HEADER_TOKEN)
    assert chosen.session_id == "from-header"


def test_the_cookie_never_trusts_a_plain_id() -> None:
    chosen = resolve(resolver(trust_plain_header=True), cookie=cookie_header("plain-id"))
    assert chosen.source == "new" and chosen.session_id != "plain-id"


def test_baggage_is_read_only_when_listed_and_its_ids_are_checked() -> None:
    baggage = "user=1,session.id=conv%2Fb;prop=1"
    assert resolve(resolver(), baggage=baggage).source == "new"
    listed = resolver(sources=("baggage", "cookie"))
    chosen = resolve(listed, baggage=baggage)
    assert (chosen.session_id, chosen.source) == ("conv/b", "baggage")
    before = rejected()
    assert resolve(listed, baggage="session.id=bad%20id%0A").source == "new"
    assert rejected() - before == Counter({"baggage.invalid": 1})


def test_an_apps_validator_replaces_the_charset_rule_but_not_the_bound() -> None:
    conversation = {"conversation_paths": ["/chat/{conversation_id}"]}
    own_rule = resolver(validator=lambda value: value.startswith("room:"), **conversation)
    assert resolve(own_rule, "/chat/room:7").session_id == "room:7"
    assert resolve(own_rule, "/chat/conv-7").source == "new"
    long_id = "room:" + "x" * 1000
    assert resolve(own_rule, f"/chat/{long_id}").session_id == long_id
    assert resolve(own_rule, f"/chat/{long_id}{'x' * 100}").source == "new"


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("/healthz", True),
        ("/healthz/deep", False),
        ("/static/app.js", True),
        ("/static", False),
        ("/chat", False),
    ],
)
def test_excluded_paths_are_exact_unless_they_end_in_a_star(path: str, excluded: bool) -> None:
    assert resolver(exclude_paths=["/healthz", "/static/*"]).is_excluded(path) is excluded
