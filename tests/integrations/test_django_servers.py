"""Django on the servers Django users run: gunicorn (sync, gthread), uvicorn, daphne.

The test project (``django_site``) wraps its application with
``wrap_wsgi()`` / ``wrap_asgi()`` and lists ``NeatlogsMiddleware`` in
``MIDDLEWARE``. Concurrent users, each with a cookie jar of their own, call
sync and async views (with ``async_to_sync`` / ``sync_to_async`` hops),
streamed replies, views whose URL names the conversation, a template, and
(on ASGI) Channels consumers. Every exported span must carry its user's
session: 0 in a wrong session, 0 without one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner
from websockets.sync.client import connect

from neatlogs_web._session.signing import SIGNING_SALT
from tests.integrations._processes import DJANGO_SERVERS, django_server
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.tokens import make_token, session_of

USERS = 8
ROUNDS = 2
WEB = "django-web"
# Route -> spans one request records (see django_site/views.py).
COOKIE_ROUTES = {
    "sync/turn": 2,
    "async/turn": 3,
    "sync/stream": 4,
    "async/stream": 4,
    "template": 0,
}
CONVERSATION_ROUTES = {
    "sync/chat/conv-{user}": 2,
    "async/chat/conv-{user}": 3,
    "sync/chat/conv-{user}/stream": 4,
}
WS_MESSAGES = 3
WS_SPANS_PER_USER = 4 * WS_MESSAGES  # async and sync consumers, connection and message sessions


def expected_session(label: str, cookie_sessions: dict[str, str]) -> str:
    """``user-3`` -> that user's cookie session; ``user-3:conv`` -> ``conv-user-3``, ..."""
    user, _, kind = label.partition(":")
    return f"{kind}-{user}" if kind else cookie_sessions[user]


def run_user(base: str, user: str, asgi: bool) -> tuple[str, list[str]]:
    """One user's requests; returns the cookie session and any wrong answers."""
    wrong: list[str] = []
    with httpx.Client(base_url=base, timeout=20) as client:
        sessions: set[str] = set()
        for _ in range(ROUNDS):
            for route in COOKIE_ROUTES:
                response = client.get(f"/{route}", params={"u": user})
                response.raise_for_status()
                sessions.update(_seen(route, response.text))
            for template in CONVERSATION_ROUTES:
                route = template.format(user=user)
                response = client.get(f"/{route}", params={"u": f"{user}:conv"})
                response.raise_for_status()
                if _seen(route, response.text) != {f"conv-{user}"}:
                    wrong.append(f"{route}: {response.text}")
        if len(sessions) != 1:
            wrong.append(f"{user} saw sessions {sessions}")
        cookie_session = min(sessions)
        if asgi:
            wrong += _websocket_user(base, user, cookie_session, client.cookies["neatlogs_session"])
    return cookie_session, wrong


def _seen(route: str, text: str) -> set[str]:
    if route.endswith("stream"):
        return set(text.split())
    if route == "template":
        return set(text.strip().split("|"))
    body = json.loads(text)
    return {body["session"], body["hopped"]}


def _websocket_user(base: str, user: str, cookie_session: str, cookie: str) -> list[str]:
    ws = base.replace("http://", "ws://")
    headers = {"Cookie": f"neatlogs_session={cookie}"}
    wrong: list[str] = []
    for path, connection_session, label in (
        ("/ws/async/", cookie_session, user),
        ("/ws/sync/", cookie_session, user),
        (f"/ws/async/wsconv-{user}/", f"wsconv-{user}", f"{user}:wsconv"),
    ):
        with connect(ws + path, additional_headers=headers, open_timeout=10) as socket:
            if json.loads(socket.recv(timeout=10))["connected"] != connection_session:
                wrong.append(f"{path}: connected in the wrong session")
            for index in range(WS_MESSAGES):
                socket.send(json.dumps({"user": label}))
                if json.loads(socket.recv(timeout=10))["session"] != connection_session:
                    wrong.append(f"{path} message {index}: not the connection's session")
            if path == "/ws/async/":
                for index in range(WS_MESSAGES):
                    message = {"user": f"{user}:msg", "conversation_id": f"msg-{user}"}
                    socket.send(json.dumps(message))
                    if json.loads(socket.recv(timeout=10))["session"] != f"msg-{user}":
                        wrong.append(f"{path} message {index}: not rebound to its conversation")
    return wrong


def spans_per_user(asgi: bool) -> int:
    http = sum(COOKIE_ROUTES.values()) + sum(CONVERSATION_ROUTES.values())
    return ROUNDS * http + (WS_SPANS_PER_USER if asgi else 0)


@pytest.mark.parametrize("server", DJANGO_SERVERS)
def test_every_span_lands_in_its_users_session(
    server: str, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    asgi = server in ("uvicorn", "daphne")
    env = {"NEATLOGS_ENDPOINT": receiver.url, "NEATLOGS_SECRET_KEY": ""}
    users = [f"user-{index}" for index in range(USERS)]
    with django_server(server, env, tmp_path / "server.log") as base:
        with ThreadPoolExecutor(USERS) as pool:
            results = dict(
                zip(users, pool.map(lambda u: run_user(base, u, asgi), users), strict=True)
            )
        expected = USERS * spans_per_user(asgi)
        spans = [
            span
            for span in receiver.wait_for(lambda got: len(_web(got)) >= expected, timeout_s=30)
            if span.resource.get("service.name") == WEB
        ]

    assert [wrong for _, wrong in results.values() if wrong] == []
    cookie_sessions = {user: session for user, (session, _) in results.items()}
    assert len(set(cookie_sessions.values())) == USERS, "two users shared a session"
    assert len(spans) == expected, f"{len(spans)} spans, expected {expected}"
    without = [span.name for span in spans if "session.id" not in span.attributes]
    wrong = [
        (span.name, span.attributes["user"], span.attributes["session.id"])
        for span in spans
        if "session.id" in span.attributes
        and span.attributes["session.id"]
        != expected_session(span.attributes["user"], cookie_sessions)
    ]
    assert without == [], f"{len(without)} spans without a session"
    assert wrong == [], f"{len(wrong)} spans in a wrong session"
    assert all(s.attributes["neatlogs.session.id"] == s.attributes["session.id"] for s in spans)
    per_user = Counter(span.attributes["user"].partition(":")[0] for span in spans)
    assert set(per_user.values()) == {spans_per_user(asgi)}


def signed_with(key: str, token: str) -> bool:
    signer = TimestampSigner(key, salt=SIGNING_SALT, digest_method=hashlib.sha256)
    return signer.validate(token)


def _web(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.resource.get("service.name") == WEB]


@pytest.mark.parametrize("server", ["gunicorn-sync", "uvicorn"])
def test_django_secret_key_and_fallbacks_sign_the_cookie(
    server: str, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    """Without NEATLOGS_SECRET_KEY, the cookie is signed with Django's SECRET_KEY, and a
    token signed with a key of SECRET_KEY_FALLBACKS is accepted and re-signed."""
    env = {"NEATLOGS_ENDPOINT": receiver.url, "NEATLOGS_SECRET_KEY": ""}
    old = make_token("rotated-user", "django-site-old-key")
    forged = make_token("victim", "not-the-key")
    with django_server(server, env, tmp_path / "server.log") as base:
        cookie = {"Cookie": f"neatlogs_session={old}"}
        response = httpx.get(f"{base}/sync/turn?u=rotated", headers=cookie, timeout=20)
        rotated, renewed = response.json()["session"], response.cookies["neatlogs_session"]
        cookie = {"Cookie": f"neatlogs_session={forged}"}
        response = httpx.get(f"{base}/sync/turn?u=forged", headers=cookie, timeout=20)
        fresh, issued = response.json()["session"], response.cookies["neatlogs_session"]
        spans = receiver.wait_for(lambda got: len(_web(got)) >= 4, timeout_s=20)

    assert rotated == "rotated-user"
    assert renewed != old and session_of(renewed) == "rotated-user"
    assert signed_with("django-site-test-key", renewed)
    assert signed_with("django-site-test-key", issued)
    assert fresh != "victim" and session_of(issued) == fresh
    sessions = {span.attributes["user"]: span.attributes["session.id"] for span in _web(spans)}
    assert sessions == {"rotated": "rotated-user", "forged": fresh}
