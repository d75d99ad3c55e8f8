"""Each session source on both middlewares, cookie refresh, and key defaults."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import neatlogs_web
from neatlogs_web._session import signing as _signing
from neatlogs_web._session.options import SessionConfig
from neatlogs_web._session.resolver import SessionResolver
from tests.apps import SECRET, client_for, json_body
from tests.otlp_receiver import OTLPReceiver
from tests.tokens import make_token, session_of


def whoami(http: httpx.Client, **kwargs: object) -> str:
    return str(json_body(http.get("/whoami", **kwargs))["session_id"])  # type: ignore[arg-type]


def test_conversation_query_parameter(kind: str) -> None:
    with client_for(kind, conversation_query="conversation") as http:
        assert whoami(http, params={"conversation": "conv-q", "other": "1"}) == "conv-q"


def test_conversation_header(kind: str) -> None:
    with client_for(kind, conversation_header="X-Conversation-Id") as http:
        assert whoami(http, headers={"x-conversation-id": "conv-h"}) == "conv-h"


def test_baggage_is_opt_in(kind: str) -> None:
    baggage = {"baggage": "user=1,session.id=conv%2Fb;prop=1"}
    with client_for(kind) as http:
        assert whoami(http, headers=baggage) != "conv/b"
    with client_for(kind, sources=("baggage", "cookie")) as http:
        assert whoami(http, headers=baggage) == "conv/b"


def test_source_order_is_configurable(kind: str) -> None:
    token = make_token("from-header", SECRET)
    with client_for(kind, sources=("cookie", "header")) as http:
        cookie_session = whoami(http)
        assert whoami(http, headers={"x-neatlogs-session-id": token}) == cookie_session
    with client_for(kind) as http:
        whoami(http)
        assert whoami(http, headers={"x-neatlogs-session-id": token}) == "from-header"


def test_old_cookie_is_refreshed_with_the_same_session(kind: str) -> None:
    aged = make_token("long-lived", SECRET, age_s=8 * 24 * 3600)  # past half of 14 days
    with client_for(kind) as http:
        response = http.get("/whoami", headers={"cookie": f"neatlogs_session={aged}"})
    assert json_body(response)["session_id"] == "long-lived"
    fresh = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert session_of(fresh) == "long-lived" and fresh != aged


def test_custom_validator_replaces_the_charset_rule(kind: str) -> None:
    def uuid_like(value: str) -> bool:
        return len(value) == 8 and value.isalnum()

    with client_for(kind, validator=uuid_like, conversation_header="x-conv") as http:
        assert whoami(http, headers={"x-conv": "abcd1234"}) == "abcd1234"
        assert whoami(http, headers={"x-conv": "short"}) != "short"


def test_secret_key_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEATLOGS_SECRET_KEY", "from-env")
    resolver = SessionResolver(SessionConfig())
    assert resolver.signer.verify(make_token("s", "from-env")) is not None


def test_missing_secret_key_warns_and_uses_a_process_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEATLOGS_SECRET_KEY", raising=False)
    monkeypatch.setattr(_signing, "_process_key", None)
    with pytest.warns(RuntimeWarning, match="NEATLOGS_SECRET_KEY"):
        first = SessionResolver(SessionConfig())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = SessionResolver(SessionConfig())  # same process key, warned once
    assert second.signer.verify(first.signer.sign("s")) is not None


def test_with_current_session_carries_into_threads_and_executors(tracing: OTLPReceiver) -> None:
    seen: dict[str, str | None] = {}

    def work(label: str) -> str | None:
        with neatlogs_web.trace(label):
            seen[label] = neatlogs_web.current_session_id()
            return seen[label]

    with neatlogs_web.session("threaded"):
        with ThreadPoolExecutor(max_workers=4) as pool:
            wrapped = neatlogs_web.with_current_session(work)
            results = list(pool.map(wrapped, [f"pool-{i}" for i in range(8)]))
        thread = threading.Thread(target=neatlogs_web.with_current_session(work), args=("t",))
        thread.start()
        thread.join()
        unwrapped = threading.Thread(target=work, args=("bare",))
        unwrapped.start()
        unwrapped.join()
    assert results == ["threaded"] * 8
    assert seen["t"] == "threaded"
    assert seen["bare"] is None  # a plain thread starts with an empty context
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: len(s) >= 10)
    stamped = {s.name for s in spans if s.attributes.get("session.id") == "threaded"}
    assert stamped == {f"pool-{i}" for i in range(8)} | {"t"}


def test_exclude_paths_are_exact_unless_they_end_in_a_star(kind: str) -> None:
    with client_for(kind, exclude_paths=["/", "/stre*"]) as http:
        assert json_body(http.get("/healthz"))["session_id"] is not None  # not excluded now
        assert "set-cookie" not in http.get("/stream").headers  # prefix match
        assert json_body(http.get("/whoami"))["session_id"] is not None  # "/" is exact
