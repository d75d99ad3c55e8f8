"""Header-only sessions, the per-tab setup for frontends: no cookie, a token per tab.

With ``sources=("conversation", "header")`` the session travels only in the
signed ``X-Neatlogs-Session-Id`` header. Both middlewares, on the wire: no
``Set-Cookie`` ever, a cookie the browser still sends is not read, and a
token that went bad (tampered, expired, unknown key, idle) is replaced by a
fresh session whose token is echoed, so the tab picks it up on its next
request. The exported spans show which session each request landed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import neatlogs_web
from neatlogs_web._session.signing import SessionSigner, resolve_secret_keys
from tests.apps import HEADER, SECRET, client_for
from tests.otlp_receiver import OTLPReceiver
from tests.tokens import make_token, session_of

HEADER_ONLY = ("conversation", "header")


@pytest.fixture
def header_only(kind: str, tracing: OTLPReceiver) -> Iterator[httpx.Client]:
    with client_for(kind, sources=HEADER_ONLY) as http:
        yield http


def turn_sessions(receiver: OTLPReceiver, count: int) -> list[str]:
    """The session id of each exported ``turn`` span, in the order the requests ran."""
    neatlogs_web.flush()
    spans = receiver.wait_for(lambda s: sum(x.name == "turn" for x in s) >= count)
    return [span.attributes["session.id"] for span in spans if span.name == "turn"]


def assert_no_cookie(response: httpx.Response) -> None:
    assert "set-cookie" not in response.headers
    assert "cookie" not in response.headers.get("vary", "").lower()


def test_header_only_sources_echo_a_new_token_and_set_no_cookie(
    header_only: httpx.Client, tracing: OTLPReceiver
) -> None:
    first = header_only.get("/whoami")
    assert_no_cookie(first)
    token = first.headers[HEADER]
    returning = [header_only.get("/whoami", headers={HEADER: token}) for _ in range(2)]
    for response in returning:
        assert_no_cookie(response)
        assert HEADER not in response.headers  # nothing to refresh
    assert len(header_only.cookies.jar) == 0
    assert turn_sessions(tracing, 3) == [session_of(token)] * 3


def test_header_only_sources_do_not_read_a_cookie_the_browser_sends(
    header_only: httpx.Client, tracing: OTLPReceiver
) -> None:
    cookie = make_token("shared-by-every-tab", SECRET)
    # Two tabs' first requests, both carrying the browser's one cookie.
    tabs = [
        header_only.get("/whoami", headers={"cookie": f"neatlogs_session={cookie}"})
        for _ in range(2)
    ]
    for response in tabs:
        assert_no_cookie(response)
    issued = [session_of(response.headers[HEADER]) for response in tabs]
    sessions = turn_sessions(tracing, 2)
    assert sessions == issued
    assert len(set(sessions)) == 2 and "shared-by-every-tab" not in sessions


BAD_TOKENS: dict[str, Any] = {
    "tampered": lambda: make_token("tab-a", SECRET)[:-2] + "xx",
    "expired": lambda: make_token("tab-a", SECRET, age_s=15 * 24 * 3600),
    "unknown-key": lambda: make_token("tab-a", "some-other-key"),
    "plain-id": lambda: "tab-a",
}


@pytest.mark.parametrize("bad", BAD_TOKENS)
def test_a_tab_whose_token_went_bad_gets_a_fresh_session_echoed(
    bad: str, header_only: httpx.Client, tracing: OTLPReceiver
) -> None:
    replaced = header_only.get("/whoami", headers={HEADER: BAD_TOKENS[bad]()})
    assert_no_cookie(replaced)
    fresh = replaced.headers[HEADER]
    assert SessionSigner(resolve_secret_keys(SECRET)).verify(fresh) is not None
    again = header_only.get("/whoami", headers={HEADER: fresh})
    assert_no_cookie(again)
    assert HEADER not in again.headers
    sessions = turn_sessions(tracing, 2)
    assert sessions == [session_of(fresh)] * 2
    assert "tab-a" not in sessions


def test_a_token_signed_by_a_retired_key_keeps_its_session_and_is_re_signed(
    kind: str, tracing: OTLPReceiver
) -> None:
    old = make_token("tab-a", "retired-key")
    with client_for(kind, secret_key=[SECRET, "retired-key"], sources=HEADER_ONLY) as http:
        response = http.get("/whoami", headers={HEADER: old})
    assert_no_cookie(response)
    re_signed = response.headers[HEADER]
    assert SessionSigner(resolve_secret_keys(SECRET)).verify(re_signed) is not None
    assert turn_sessions(tracing, 1) == ["tab-a"] == [session_of(re_signed)]


def test_an_idle_tab_starts_a_new_session_with_its_token_echoed(
    kind: str, tracing: OTLPReceiver
) -> None:
    idle = make_token("tab-a", SECRET, age_s=120)
    with client_for(kind, sources=HEADER_ONLY, idle_timeout=60) as http:
        response = http.get("/whoami", headers={HEADER: idle})
    assert_no_cookie(response)
    fresh = response.headers[HEADER]
    neatlogs_web.flush()
    (turn,) = [s for s in tracing.wait_for(lambda s: len(s) >= 1) if s.name == "turn"]
    assert turn.attributes["session.id"] == session_of(fresh) != "tab-a"
    assert turn.attributes["session.previous_id"] == "tab-a"
