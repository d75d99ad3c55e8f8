"""The Flask extension under waitress: config-driven keys, view-argument sessions.

Keys come from ``app.config`` as a Flask user keeps them; the view argument
naming the conversation becomes the session after routing, and a body
streamed with ``stream_with_context`` (consumed by waitress after the view
returned) keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, Response, jsonify, stream_with_context

import neatlogs_web
from neatlogs_web._session.signing import SessionSigner
from neatlogs_web.integrations.flask import NeatlogsFlask
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_waitress
from tests.tokens import make_token

HEADER = "x-neatlogs-session-id"


def make_app(config: dict[str, Any], **options: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)

    @app.get("/whoami")
    def whoami() -> Response:
        return jsonify(session_id=neatlogs_web.current_session_id())

    @app.post("/chat/<conversation_id>")
    def chat(conversation_id: str) -> Response:
        def chunks() -> Iterator[str]:
            with neatlogs_web.trace("turn", conversation=conversation_id):
                for index in range(3):
                    with neatlogs_web.trace(f"chunk-{index}"):
                        yield f"{neatlogs_web.current_session_id()}\n"

        return Response(stream_with_context(chunks()))

    @app.get("/threads/<thread_id>")
    def thread(thread_id: str) -> Response:
        return jsonify(session_id=neatlogs_web.current_session_id())

    NeatlogsFlask().init_app(app, **options)
    return app


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEATLOGS_SECRET_KEY", raising=False)


def whoami(base: str, token: str) -> str:
    return str(httpx.get(f"{base}/whoami", headers={HEADER: token}).json()["session_id"])


def test_keys_come_from_secret_key_and_its_fallbacks() -> None:
    app = make_app({"SECRET_KEY": "current", "SECRET_KEY_FALLBACKS": ["previous"]})
    with run_waitress(app) as base:
        assert whoami(base, make_token("signed-now", "current")) == "signed-now"
        old = httpx.get(f"{base}/whoami", headers={HEADER: make_token("older", "previous")})
        assert old.json()["session_id"] == "older"
        # Re-signed with the current key on the way out.
        refreshed = SessionSigner([b"current"]).verify(old.headers[HEADER])
        assert refreshed is not None and refreshed.session_id == "older"
        assert whoami(base, make_token("forged", "unknown")) != "forged"


def test_one_fallback_key_given_as_a_string_is_one_key() -> None:
    """Not a key per character, with which anyone could sign a session."""
    app = make_app({"SECRET_KEY": "current", "SECRET_KEY_FALLBACKS": "previous"})
    with run_waitress(app) as base:
        assert whoami(base, make_token("older", "previous")) == "older"
        assert whoami(base, make_token("forged", "p")) != "forged"


@pytest.mark.parametrize("bad", ["", [], 0])
def test_a_bad_secret_key_option_stops_the_app_rather_than_falling_back(bad: object) -> None:
    with pytest.raises(ValueError, match="secret_key"):
        make_app({"SECRET_KEY": "flask-key"}, secret_key=bad)


@pytest.mark.parametrize("bad", [["conversation_id"], 5, ""])
def test_a_bad_conversation_arg_stops_the_app(bad: object) -> None:
    with pytest.raises(ValueError, match="conversation_arg must name the view argument"):
        make_app({"SECRET_KEY": "flask-key"}, conversation_arg=bad)


def test_neatlogs_secret_key_in_the_config_wins_over_flasks() -> None:
    config = {"SECRET_KEY": "flask-key", "NEATLOGS_SECRET_KEY": ["ours", "ours-old"]}
    with run_waitress(make_app(config)) as base:
        assert whoami(base, make_token("ours", "ours")) == "ours"
        assert whoami(base, make_token("rotated", "ours-old")) == "rotated"
        assert whoami(base, make_token("flask", "flask-key")) != "flask"


def test_the_environments_key_wins_over_flasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEATLOGS_SECRET_KEY", "shared-by-services")
    with run_waitress(make_app({"SECRET_KEY": "flask-key"})) as base:
        assert whoami(base, make_token("shared", "shared-by-services")) == "shared"
        assert whoami(base, make_token("flask", "flask-key")) != "flask"


def test_view_argument_session_survives_stream_with_context(tracing: OTLPReceiver) -> None:
    app = make_app({"SECRET_KEY": "k", "NEATLOGS_EXCLUDE_PATHS": ["/whoami"]})
    with run_waitress(app) as base, httpx.Client(base_url=base) as http:
        for conversation in ("conv-1", "conv-2"):
            response = http.post(f"/chat/{conversation}")
            assert response.text.split() == [conversation] * 3
        # Options from the config: excluded paths bind nothing.
        assert http.get("/whoami").json()["session_id"] is None
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: len(s) >= 8)
    assert len(spans) == 8
    for span in spans:
        trace_root = next(s for s in spans if s.trace_id == span.trace_id and s.name == "turn")
        assert span.attributes["session.id"] == trace_root.attributes["conversation"]


def test_conversation_argument_name_and_explicit_options_override_the_config() -> None:
    app = make_app(
        {"SECRET_KEY": "k", "NEATLOGS_CONVERSATION_ARG": "conversation_id"},
        conversation_arg="thread_id",
        cookie_name="chat_session",
    )
    with run_waitress(app) as base:
        response = httpx.get(f"{base}/threads/t-9")
        assert response.json()["session_id"] == "t-9"
        assert response.headers["set-cookie"].startswith("chat_session=")
        # The default name no longer binds.
        chat = httpx.post(f"{base}/chat/c-1")
        assert chat.text.split()[0] != "c-1"


def test_unknown_options_are_configuration_errors() -> None:
    unknown = "NeatlogsFlask got an unknown option 'cookie_nmae': did you mean 'cookie_name'"
    with pytest.raises(TypeError, match=unknown):
        make_app({"SECRET_KEY": "k"}, cookie_nmae="x")


def test_when_confirmed_the_view_argument_waits_for_the_app(tracing: OTLPReceiver) -> None:
    """``conversation_binding="when_confirmed"``: a view that refuses the request
    never writes into the conversation its URL names."""
    from flask import abort, request

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "flask-key"

    @app.post("/chat/<conversation_id>")
    def chat(conversation_id: str) -> Response:
        if request.headers.get("x-owner") != conversation_id:
            with neatlogs_web.trace("refused"):
                abort(403)
        neatlogs_web.confirm_conversation(conversation_id)
        with neatlogs_web.trace("turn"):
            return jsonify(session_id=neatlogs_web.current_session_id())

    NeatlogsFlask(app, conversation_binding="when_confirmed")
    client = app.test_client()
    assert client.post("/chat/victim").status_code == 403
    allowed = client.post("/chat/mine", headers={"x-owner": "mine"})
    assert allowed.json == {"session_id": "mine"}
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: {"refused", "turn"} <= {x.name for x in s})
    sessions = {s.name: s.attributes["session.id"] for s in spans}
    assert sessions["turn"] == "mine"
    assert sessions["refused"] not in ("victim", "mine")


def test_a_preflight_binds_nothing_that_outlives_it() -> None:
    """A CORS preflight skips the middleware but Flask still routes it: the
    view-argument hook must not bind on a worker thread that serves others next."""
    app = make_app({"SECRET_KEY": "flask-key"}, exclude_paths=["/threads/*"])
    with run_waitress(app, threads=1) as base:
        preflight = httpx.options(
            f"{base}/chat/victim-conversation",
            headers={"origin": "http://127.0.0.1:5173", "access-control-request-method": "POST"},
        )
        assert "set-cookie" not in preflight.headers
        after = httpx.get(f"{base}/threads/t1").json()["session_id"]
    assert after is None
