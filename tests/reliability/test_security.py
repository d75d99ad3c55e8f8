"""The threat model of SECURITY.md, tested on both middlewares.

A session id picks which timeline a user's traces land in, so a client must
not choose another user's: tokens are signed (itsdangerous TimestampSigner,
HMAC-SHA256, our salt, compared in constant time), plain ids are trusted only
where the app opts in, keys rotate, cookies carry the browser protections,
and no id, token or key is ever logged at INFO or above.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner
from itsdangerous.encoding import base64_decode

import neatlogs_web
from neatlogs_web._session.options import DEFAULT_MAX_AGE
from neatlogs_web._session.signing import SIGNING_SALT, SessionSigner
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiSessions
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiSessions
from tests.apps import HEADER, SECRET, client_for, cookie_of, json_body
from tests.otlp_receiver import OTLPReceiver
from tests.pipeline import spans_after_flush
from tests.reliability.report import record
from tests.tokens import make_token, session_of


def whoami(http: httpx.Client, **kwargs: Any) -> str:
    return str(json_body(http.get("/whoami", **kwargs))["session_id"])


def with_cookie(token: str) -> dict[str, str]:
    return {"cookie": f"neatlogs_session={token}"}


def test_token_issued_by_an_app_with_another_key_is_rejected(kind: str) -> None:
    with client_for(kind, secret_key="app-a-key") as app_a:
        issued = app_a.get("/whoami")
        token = issued.headers[HEADER]
        victim = json_body(issued)["session_id"]
        # Positive control: app A itself accepts its token, by cookie and by header.
        assert whoami(app_a, headers=with_cookie(token)) == victim
    with client_for(kind, secret_key="app-b-key") as app_b:
        assert whoami(app_b, headers=with_cookie(token)) != victim
        assert whoami(app_b, headers={HEADER: token}) != victim


@pytest.mark.parametrize(
    "signer",
    [
        TimestampSigner(SECRET),  # itsdangerous's default salt: another use of the same key
        TimestampSigner(SECRET, salt="cookie-session"),  # Flask's session cookie salt
        TimestampSigner(SECRET, salt=SIGNING_SALT, digest_method=hashlib.sha1),
    ],
    ids=["default-salt", "flask-session-salt", "sha1"],
)
def test_same_key_signing_for_another_purpose_is_rejected(kind: str, signer: Any) -> None:
    forged = signer.sign("victim-session").decode()
    with client_for(kind) as http:
        assert whoami(http, headers=with_cookie(forged)) != "victim-session"
        assert whoami(http, headers={HEADER: forged}) != "victim-session"


def test_signature_cannot_be_moved_to_another_id(kind: str) -> None:
    token = make_token("mallory", SECRET)
    _, timestamp, signature = token.rsplit(".", 2)
    moved = f"victim-session.{timestamp}.{signature}"
    with client_for(kind) as http:
        assert whoami(http, headers=with_cookie(token)) == "mallory"
        assert whoami(http, headers=with_cookie(moved)) != "victim-session"


# Tokens carry whole seconds and the request comes a moment after signing: the
# future case is 10 s past the 300 s allowed skew, not 1 s, so it cannot drift in.
@pytest.mark.parametrize(("age_s", "accepted"), [(60, True), (3601, False), (-310, False)])
def test_token_age_is_bounded_both_ways(kind: str, age_s: int, accepted: bool) -> None:
    token = make_token("aged-session", SECRET, age_s=age_s)
    with client_for(kind, max_age=3600) as http:
        assert (whoami(http, headers=with_cookie(token)) == "aged-session") is accepted


def test_plain_id_is_ignored_unless_the_app_trusts_it(kind: str) -> None:
    plain = {HEADER: "chosen-by-client", "baggage": "session.id=chosen-by-client"}
    with client_for(kind) as untrusted:
        assert whoami(untrusted, headers=plain) != "chosen-by-client"
    with client_for(kind, trust_plain_header=True) as trusted:
        assert whoami(trusted, headers={HEADER: "chosen-by-client"}) == "chosen-by-client"
    with client_for(kind, sources=("baggage",)) as baggage:
        assert whoami(baggage, headers={"baggage": "session.id=chosen-by-client"}) == (
            "chosen-by-client"
        )


def test_key_rotation_reissues_old_tokens_and_drops_removed_keys(kind: str) -> None:
    old = make_token("rotated-session", "old-key")
    with client_for(kind, secret_key=["new-key", "old-key"]) as rotating:
        response = rotating.get("/whoami", headers=with_cookie(old))
        assert json_body(response)["session_id"] == "rotated-session"
        fresh = cookie_of(response)
        assert response.headers[HEADER] == fresh
        by_header = rotating.get("/whoami", headers={HEADER: old}).headers[HEADER]
    # Both re-issued tokens verify with the new key alone.
    new_only = SessionSigner([b"new-key"])
    for token in (fresh, by_header):
        verified = new_only.verify(token)
        assert verified is not None and verified.session_id == "rotated-session"
    with client_for(kind, secret_key=["new-key"]) as rotated:
        assert whoami(rotated, headers=with_cookie(fresh)) == "rotated-session"
        assert whoami(rotated, headers=with_cookie(old)) != "rotated-session"


@pytest.mark.parametrize(
    ("base_url", "options", "secure"),
    [
        ("http://testserver", {}, False),
        ("https://testserver", {}, True),
        ("http://testserver", {"secure": True}, True),
        ("https://testserver", {"secure": False}, False),
    ],
)
def test_cookie_flags(kind: str, base_url: str, options: dict[str, Any], secure: bool) -> None:
    with client_for(kind, base_url=base_url, **options) as http:
        cookie = http.get("/whoami").headers["set-cookie"]
    flags = [part.strip() for part in cookie.split(";")[1:]]
    assert "HttpOnly" in flags
    assert "SameSite=Lax" in flags
    assert "Path=/" in flags
    assert ("Secure" in flags) is secure
    assert f"Max-Age={DEFAULT_MAX_AGE}" in flags


def test_same_site_strict_and_none_with_secure(kind: str) -> None:
    with client_for(kind, same_site="strict") as http:
        assert "SameSite=Strict" in http.get("/whoami").headers["set-cookie"]
    with client_for(kind, same_site="none", secure=True) as http:
        cookie = http.get("/whoami").headers["set-cookie"]
    assert "SameSite=None" in cookie and "Secure" in cookie


@pytest.mark.parametrize("secure", [None, False])
def test_same_site_none_without_secure_is_refused_at_startup(secure: bool | None) -> None:
    def app(*args: Any) -> Any:
        raise AssertionError("never called")

    middlewares: list[Callable[..., Any]] = [AsgiSessions, WsgiSessions]
    for middleware in middlewares:
        with pytest.raises(ValueError, match="same_site='none' needs secure=True"):
            middleware(app, secret_key=SECRET, same_site="none", secure=secure)


def test_signature_is_compared_in_constant_time(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    def signature(token: str) -> bytes:
        return base64_decode(token.rsplit(".", 1)[1])

    monkeypatch.setattr(hmac, "compare_digest", spy)
    # A fresh id, so no verified-token cache answers for it.
    token = make_token(f"timing-{kind}-{time.monotonic_ns()}", SECRET)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with client_for(kind) as http:
        whoami(http, headers=with_cookie(forged))
        assert any(given == signature(forged) for given, _ in compared)
        compared.clear()
        assert whoami(http, headers=with_cookie(token)) == session_of(token)
    assert any(given == signature(token) for given, _ in compared)


def test_no_id_token_or_key_is_logged_at_info_or_above(
    kind: str, tracing: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets_seen: set[str] = {SECRET}
    credentials: set[str] = {SECRET}
    bad_inputs = 0
    with client_for(kind) as http:
        for index in range(20):
            http.cookies.clear()
            response = http.get("/whoami")
            token = response.headers[HEADER]
            secrets_seen |= {token, session_of(token)}
            forged = make_token(f"forged-{index}", "attacker-key")
            tampered = token[:-3] + "xyz"
            expired = make_token(f"expired-{index}", SECRET, age_s=10**7)
            for headers in (
                with_cookie(forged),
                with_cookie(tampered),
                with_cookie(expired),
                {HEADER: f"plain-{index}"},
                {HEADER: "bad\x01value"},
                with_cookie("A" * 5000),
            ):
                bad_inputs += 1
                http.get("/whoami", headers=headers)
            http.post(f"/chat/{'c' * 200}{index}")
            http.post("/json", content=b"{not json", headers={"content-type": "application/json"})
            secrets_seen |= {forged, tampered, expired, f"forged-{index}", f"plain-{index}"}
            credentials |= {token, forged, tampered, expired}
        # Every request's turn was exported with its session id, never a token or the key.
        spans = spans_after_flush(tracing, 20 * 9)
        assert len(spans) == 20 * 9 and all("session.id" in span.attributes for span in spans)
        exported = [str(value) for span in spans for value in span.attributes.values()]
        assert [value for value in exported if any(c in value for c in credentials)] == []
        # The receiver starts failing: export errors are logged too.
        tracing.status = 500
        http.get("/whoami")
        neatlogs_web.flush(timeout_s=5)
    # The test's own HTTP client logs the URLs it requested; the app side is what counts.
    records = [r for r in caplog.records if not r.name.startswith("httpx")]
    debug = [r for r in records if r.levelno < logging.INFO]
    loud = [r for r in records if r.levelno >= logging.INFO]
    assert any("skipped a session value" in r.getMessage() for r in debug), "capture is on"
    assert any(
        r.levelno >= logging.WARNING and "could not export" in r.getMessage() for r in loud
    ), "the export failure was logged"
    leaks = [
        r.getMessage()
        for r in loud
        if any(secret in r.getMessage() or secret in (r.exc_text or "") for secret in secrets_seen)
    ]
    record(
        "security",
        f"log scan ({kind})",
        bad_inputs=bad_inputs,
        records_debug=len(debug),
        records_info_or_above=len(loud),
        values_searched=len(secrets_seen),
        leaks=len(leaks),
    )
    assert leaks == []
