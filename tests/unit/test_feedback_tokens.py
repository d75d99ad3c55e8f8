"""The feedback token codec: what it names, and every way a token is refused."""

from __future__ import annotations

import time

import pytest

from neatlogs_web._session.feedback_tokens import (
    FeedbackRefused,
    FeedbackTokens,
    FeedbackTurn,
    check_feedback_token,
)
from neatlogs_web._session.signing import SessionSigner

TURN = FeedbackTurn("session-a", 0x0123456789ABCDEF0123456789ABCDEF, 0x0011223344556677)


def refusal(tokens: FeedbackTokens, token: str, session_id: str | None, **kw: float) -> str:
    with pytest.raises(FeedbackRefused) as refused:
        tokens.check(token, session_id, **kw)
    return refused.value.reason


def test_a_token_names_its_session_and_turn() -> None:
    tokens = FeedbackTokens([b"key"], max_age=60)
    token = tokens.issue(TURN)
    assert token.startswith("0123456789abcdef0123456789abcdef-0011223344556677-session-a.")
    assert tokens.check(token, "session-a") == TURN


def test_another_sessions_token_is_refused() -> None:
    tokens = FeedbackTokens([b"key"], max_age=60)
    assert refusal(tokens, tokens.issue(TURN), "session-b") == "wrong_session"
    assert refusal(tokens, tokens.issue(TURN), None) == "no_session"


def test_a_tampered_token_is_forged() -> None:
    tokens = FeedbackTokens([b"key"], max_age=60)
    token = tokens.issue(TURN)
    # Another session id under the same signature.
    assert refusal(tokens, token.replace("session-a", "session-b"), "session-b") == "forged"
    # Another turn under the same signature.
    assert refusal(tokens, "f" + token[1:], "session-a") == "forged"
    assert refusal(tokens, "not a token", "session-a") == "forged"
    assert refusal(tokens, "x" * 1000, "session-a") == "malformed"


def test_an_expired_token_is_refused() -> None:
    tokens = FeedbackTokens([b"key"], max_age=60)
    token = tokens.issue(TURN)
    assert tokens.check(token, "session-a", now=time.time() + 59) == TURN
    assert refusal(tokens, token, "session-a", now=time.time() + 62) == "expired"
    assert refusal(tokens, token, "session-a", now=time.time() - 3600) == "forged"


def test_keys_rotate_the_first_signs_all_verify() -> None:
    old = FeedbackTokens([b"old"], max_age=60).issue(TURN)
    rotated = FeedbackTokens([b"new", b"old"], max_age=60)
    assert rotated.check(old, "session-a") == TURN
    assert FeedbackTokens([b"new"], max_age=60).check(rotated.issue(TURN), "session-a") == TURN
    assert refusal(FeedbackTokens([b"new"], max_age=60), old, "session-a") == "forged"


def test_session_and_feedback_tokens_never_pass_for_each_other() -> None:
    signer = SessionSigner([b"key"])
    tokens = FeedbackTokens([b"key"], max_age=60)
    feedback = tokens.issue(TURN)
    assert signer.verify(feedback) is None
    session_token = signer.sign(f"{TURN.trace_id:032x}-{TURN.span_id:016x}-session-a")
    assert refusal(tokens, session_token, "session-a") == "forged"


def test_outside_requests_the_issuer_whose_checks_got_furthest_answers() -> None:
    """Middlewares sharing a key with different feedback_max_age: a token of another
    session is that, not "expired", in whatever order the middlewares are tried
    (a set's: pairs made one after the other land in either)."""
    later = time.time() + 10
    pairs = []
    for index in range(20):
        for ages in ((1, 3600), (3600, 1)):
            pair = [FeedbackTokens([b"key-%d" % index], max_age=age) for age in ages]
            pairs.append(pair)
            token = pair[0].issue(TURN)
            with pytest.raises(FeedbackRefused) as refused:
                check_feedback_token(token, "session-b", now=later)
            assert refused.value.reason == "wrong_session", ages
            assert check_feedback_token(token, "session-a", now=later) == TURN
