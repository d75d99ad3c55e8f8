"""What a decision adds to the response: the cookie, ``Vary``, the echoed token.

A new or refreshed session sets the cookie (when the cookie is a source) with
the configured attributes, and echoes the token in the session header for
clients that keep it themselves; a kept session changes nothing.
"""

from __future__ import annotations

import pytest

from tests.tokens import make_token, session_of
from tests.unit.resolving import SECRET, cookie_header, resolve, resolver


def test_a_new_session_sets_the_cookie_varies_on_it_and_echoes_the_token() -> None:
    deciding = resolver()
    chosen = resolve(deciding)
    assert chosen.changes_response
    token = chosen.echo_token
    assert token is not None and session_of(token) == chosen.session_id
    assert deciding.response.headers(chosen, None) == [
        (
            "Set-Cookie",
            f"neatlogs_session={token}; Path=/; Max-Age=1209600; HttpOnly; SameSite=Lax",
        ),
        ("Vary", "Cookie"),
        ("X-Neatlogs-Session-Id", token),
    ]


@pytest.mark.parametrize(
    ("secure", "https", "flagged"),
    [(None, False, False), (None, True, True), (False, True, False), (True, False, True)],
    ids=["default-http", "default-https", "never", "always"],
)
def test_the_cookie_is_secure_on_https_unless_the_app_says_otherwise(
    secure: bool | None, https: bool, flagged: bool
) -> None:
    chosen = resolve(resolver(secure=secure), https=https)
    assert chosen.set_cookie is not None
    assert chosen.set_cookie.endswith("; Secure") is flagged


def test_the_cookie_carries_the_configured_attributes() -> None:
    configured = resolver(
        cookie_name="chat_session",
        cookie_path="/app",
        cookie_domain="example.test",
        max_age=None,
        same_site="strict",
    )
    chosen = resolve(configured)
    assert chosen.set_cookie == (
        f"chat_session={chosen.echo_token}; Path=/app; Domain=example.test; HttpOnly; "
        "SameSite=Strict"
    )
    returning = resolve(configured, cookie=cookie_header(chosen.echo_token, name="chat_session"))
    assert (returning.session_id, returning.set_cookie) == (chosen.session_id, None)


def test_a_kept_session_adds_nothing_to_the_response() -> None:
    deciding = resolver()
    chosen = resolve(deciding, cookie=cookie_header(make_token("alice", SECRET)))
    assert not chosen.changes_response
    assert deciding.response.headers(chosen, None) == []


def test_without_the_cookie_as_a_source_only_the_token_is_echoed() -> None:
    header_only = resolver(sources=("conversation", "header"), header_name="X-Chat-Session")
    chosen = resolve(header_only)
    assert chosen.set_cookie is None and chosen.echo_token is not None
    assert header_only.response.headers(chosen, None) == [("X-Chat-Session", chosen.echo_token)]
