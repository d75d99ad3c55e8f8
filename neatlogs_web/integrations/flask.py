"""A Flask extension: the WSGI middleware configured from ``app.config``.

Flask apps keep their settings in ``app.config`` and their keys in
``SECRET_KEY`` / ``SECRET_KEY_FALLBACKS``; extensions follow the
``init_app(app)`` convention so one object serves an app factory. After
routing, the view argument naming the conversation (``conversation_id`` by
default) becomes the request's session, for the view and for its streamed
body (``stream_with_context`` or a plain generator) alike. With
``conversation_binding="when_confirmed"`` it waits for the view to call
``neatlogs_web.confirm_conversation(conversation_id)`` once it authorized it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from flask import Flask, request

from neatlogs_web._session.options import OPTION_NAMES, SessionOptions, check_view_argument
from neatlogs_web._session.rebinding import bind_conversation
from neatlogs_web.integrations._settings import checked, framework_keys, prefixed_settings
from neatlogs_web.wsgi import NeatlogsSessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
else:
    WSGIEnvironment = Any

__all__ = ["NeatlogsFlask"]

#: ``app.config`` key prefix: ``NEATLOGS_COOKIE_NAME``, ``NEATLOGS_EXCLUDE_PATHS``, ...
_OWN_NAMES: Final = ("secret_key", "end_user", "conversation_arg")
_DEFAULT_CONVERSATION_ARG: Final = "conversation_id"

Keys = str | bytes | Sequence[str | bytes]


class NeatlogsFlask:
    """Per-request sessions for a Flask app: ``NeatlogsFlask(app)`` or ``init_app(app)``.

    Options (keyword arguments here or in ``init_app``, which win over
    ``app.config["NEATLOGS_<OPTION>"]``): every middleware option, plus
    ``secret_key`` (default ``NEATLOGS_SECRET_KEY`` from the config, else
    from the environment, so services that share it verify each other's
    tokens, else Flask's ``SECRET_KEY`` with ``SECRET_KEY_FALLBACKS``),
    ``end_user`` (a callable
    from the WSGI environ) and ``conversation_arg`` (the view argument bound
    as the session; ``None`` to bind none).
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, **options: Any) -> None:
        """Install the middleware on ``app.wsgi_app`` and the view-argument binding."""
        settings = _from_config(app.config)
        settings.update(self.options)
        settings.update(options)
        conversation_arg = settings.pop("conversation_arg", _DEFAULT_CONVERSATION_ARG)
        check_view_argument("conversation_arg", conversation_arg)
        secret_key = settings.pop("secret_key", None)
        if secret_key is None and not os.environ.get("NEATLOGS_SECRET_KEY"):
            secret_key = framework_keys(
                app.config.get("SECRET_KEY"), app.config.get("SECRET_KEY_FALLBACKS")
            )
        end_user = cast(
            "Callable[[WSGIEnvironment], str | None] | None", settings.pop("end_user", None)
        )
        settings = checked("NeatlogsFlask", settings, OPTION_NAMES)
        app.wsgi_app = NeatlogsSessionMiddleware(  # type: ignore[method-assign]
            app.wsgi_app,
            secret_key=secret_key,
            end_user=end_user,
            **cast(SessionOptions, settings),
        )
        if conversation_arg is not None:
            app.before_request(_bind_view_arg(conversation_arg))
        app.extensions["neatlogs_web"] = self


def _from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    return prefixed_settings((*OPTION_NAMES, *_OWN_NAMES), config.__contains__, config.get)


def _bind_view_arg(name: str) -> Callable[[], None]:
    def bind_view_arg() -> None:
        value = (request.view_args or {}).get(name)
        if value is not None:
            bind_conversation(str(value))

    return bind_view_arg
