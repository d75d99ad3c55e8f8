"""The Django integration reads its options and keys from ``settings``, the Django way."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from neatlogs_web.integrations.django import secret_keys, wrap_asgi, wrap_wsgi

if not settings.configured:
    settings.configure(SECRET_KEY="django-key", SECRET_KEY_FALLBACKS=["django-old"])
    django.setup()


@pytest.fixture(autouse=True)
def _no_environment_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NEATLOGS_SECRET_KEY", raising=False)
    yield


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def set_cookie(app: Callable[..., Iterable[bytes]]) -> str:
    sent: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: object = None) -> None:
        sent.extend(headers)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "http",
    }
    b"".join(app(environ, start_response))
    return next(value for name, value in sent if name.lower() == "set-cookie")


def test_django_secret_key_and_fallbacks_are_the_default_keys() -> None:
    assert secret_keys() == ["django-key", "django-old"]


def test_one_fallback_key_given_as_a_string_is_one_key() -> None:
    """Not a key per character, with which anyone could sign a session."""
    with override_settings(SECRET_KEY_FALLBACKS="django-old"):
        assert secret_keys() == ["django-key", "django-old"]


@pytest.mark.parametrize("wrap", [wrap_wsgi, wrap_asgi])
@pytest.mark.parametrize("bad", [["conversation_id"], 5, ""])
def test_a_bad_conversation_kwarg_stops_the_app_at_startup(
    wrap: Callable[..., Any], bad: object
) -> None:
    with (
        override_settings(NEATLOGS={"conversation_kwarg": bad}),
        pytest.raises(ValueError, match="conversation_kwarg must name the view argument"),
    ):
        wrap(hello)


@pytest.mark.parametrize(
    "overrides",
    [{"NEATLOGS_SECRET_KEY": "ours"}, {"NEATLOGS": {"secret_key": "ours"}}],
)
def test_our_own_secret_key_setting_wins_over_djangos(overrides: dict[str, Any]) -> None:
    with override_settings(**overrides):
        assert secret_keys() == "ours"


def test_the_environment_key_wins_over_djangos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEATLOGS_SECRET_KEY", "from-environment")
    assert secret_keys() is None  # the middleware reads NEATLOGS_SECRET_KEY itself


def test_options_come_from_the_neatlogs_dict_and_single_settings_win() -> None:
    with override_settings(NEATLOGS={"cookie_name": "from_dict", "max_age": 60}):
        assert set_cookie(wrap_wsgi(hello)).startswith("from_dict=")
        with override_settings(NEATLOGS_COOKIE_NAME="from_setting"):
            assert set_cookie(wrap_wsgi(hello)).startswith("from_setting=")
            assert set_cookie(wrap_wsgi(hello, cookie_name="argument")).startswith("argument=")


@pytest.mark.parametrize("wrap", [wrap_wsgi, wrap_asgi])
def test_an_unknown_option_in_settings_is_named(wrap: Callable[..., Any]) -> None:
    with (
        override_settings(NEATLOGS={"cookie_nmae": "x"}),
        pytest.raises(ImproperlyConfigured, match="cookie_nmae"),
    ):
        wrap(hello)


def test_a_bad_option_value_stops_the_app_at_startup() -> None:
    with (
        override_settings(NEATLOGS_SAME_SITE="none"),
        pytest.raises(ValueError, match="same_site='none' needs secure=True"),
    ):
        wrap_wsgi(hello)


def test_the_asgi_wrapper_answers_lifespan_for_django() -> None:
    """Django raises on ``lifespan`` scopes; the wrapper answers them, so servers
    start cleanly and the session middleware flushes at shutdown."""
    import asyncio

    async def django_like(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")

    async def run() -> list[str]:
        incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[str] = []

        async def receive() -> dict[str, str]:
            return incoming.pop(0)

        async def send(message: dict[str, str]) -> None:
            sent.append(message["type"])

        await wrap_asgi(django_like)({"type": "lifespan"}, receive, send)
        return sent

    assert asyncio.run(run()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
