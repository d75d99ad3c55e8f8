"""Django: the session middlewares configured from ``settings.py``.

Django's ``MIDDLEWARE`` runs inside the WSGI or ASGI handler, and a
streamed response outlives it: under WSGI the server iterates
``StreamingHttpResponse`` after the handler returned, and the request's
``close()`` (``request_finished``) comes later still. A binding opened in a
``MIDDLEWARE`` entry would be gone by then. So the work is split in two:

- ``wrap_wsgi()`` / ``wrap_asgi()`` put our protocol middleware around the
  project's application, in its ``wsgi.py`` / ``asgi.py``: it resolves the
  session (cookie, header, conversation id) and binds it for the request's
  whole life, streamed body, ``close()`` and Channels connections included.
- ``NeatlogsMiddleware`` in ``settings.MIDDLEWARE`` does what only Django
  knows: it binds the conversation named by the URL (``view_kwargs``) after
  routing, and puts the session on ``request.neatlogs_session_id`` for views
  and templates.

Both read the same settings: ``NEATLOGS = {"cookie_name": ..., ...}`` or
``NEATLOGS_<OPTION>`` settings (these win). The secret key is
``NEATLOGS_SECRET_KEY`` (setting, else environment), else Django's
``SECRET_KEY`` with ``SECRET_KEY_FALLBACKS``, as the Flask extension does.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from inspect import iscoroutinefunction
from typing import TYPE_CHECKING, Any, Final, cast

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from neatlogs_web import asgi as _asgi
from neatlogs_web import wsgi as _wsgi
from neatlogs_web._session.binding import current_session_id
from neatlogs_web._session.options import OPTION_NAMES, SessionOptions, check_view_argument
from neatlogs_web._session.rebinding import bind_conversation
from neatlogs_web.integrations._settings import checked, framework_keys, prefixed_settings
from neatlogs_web.integrations.websockets import message_session

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
else:
    WSGIApplication = Any

__all__ = [
    "NeatlogsConsumerMixin",
    "NeatlogsMiddleware",
    "context_processor",
    "secret_keys",
    "wrap_asgi",
    "wrap_wsgi",
]

logger = logging.getLogger("neatlogs_web")

#: ``settings`` name of the options dict; ``NEATLOGS_<OPTION>`` settings win over it.
SETTINGS_NAME: Final = "NEATLOGS"
#: Attribute of ``HttpRequest`` (and of a Channels consumer) holding the session id.
REQUEST_ATTRIBUTE: Final = "neatlogs_session_id"
_DEFAULT_CONVERSATION_KWARG: Final = "conversation_id"
_OWN_NAMES: Final = frozenset({"secret_key", "end_user", "conversation_kwarg"})

Scope = _asgi.Scope
ASGIApp = _asgi.ASGIApp
GetResponse = Callable[[HttpRequest], HttpResponseBase]
GetResponseAsync = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

# Set once a wrapper is built in this process, so a missing one is reported once.
_wrapped = threading.Event()
_warned_unwrapped = threading.Event()


def _settings_options(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The options from ``settings``, then ``overrides``; unknown names are an error."""
    names = OPTION_NAMES | _OWN_NAMES
    from_dict = getattr(settings, SETTINGS_NAME, None) or {}
    if not isinstance(from_dict, Mapping):
        raise ImproperlyConfigured(f"settings.{SETTINGS_NAME} must be a dict of options")
    options = {str(name).lower(): value for name, value in from_dict.items()}
    options.update(prefixed_settings(names, _has_setting, _setting))
    options.update(overrides)
    try:
        return checked(f"settings.{SETTINGS_NAME}", options, names)
    except TypeError as error:
        raise ImproperlyConfigured(str(error)) from None


def _has_setting(name: str) -> bool:
    return hasattr(settings, name)


def _setting(name: str) -> Any:
    return getattr(settings, name)


def secret_keys(**overrides: Any) -> list[str | bytes] | str | bytes | None:
    """The key (or keys, the first signs) the wrappers sign and verify with.

    ``NEATLOGS_SECRET_KEY`` (in settings, or ``secret_key`` in
    ``settings.NEATLOGS``); else ``None`` when the environment has
    ``NEATLOGS_SECRET_KEY`` (the middleware reads it); else Django's
    ``SECRET_KEY`` followed by ``SECRET_KEY_FALLBACKS``. Pass it to other
    signers of the same sessions, such as the Celery integration.
    """
    secret_key = _settings_options(overrides).get("secret_key")
    if secret_key is not None or os.environ.get("NEATLOGS_SECRET_KEY"):
        return cast("list[str | bytes] | str | bytes | None", secret_key)
    try:
        django_key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to read an empty SECRET_KEY
        django_key = None
    return framework_keys(django_key, getattr(settings, "SECRET_KEY_FALLBACKS", None))


def _protocol_options(overrides: Mapping[str, Any]) -> tuple[Any, Any, SessionOptions]:
    options = _settings_options(overrides)
    check_view_argument("conversation_kwarg", options.pop("conversation_kwarg", None))
    options.pop("secret_key", None)
    end_user = options.pop("end_user", None)
    return secret_keys(**overrides), end_user, cast(SessionOptions, options)


def wrap_wsgi(application: WSGIApplication, **options: Any) -> _wsgi.NeatlogsSessionMiddleware:
    """Wrap the project's WSGI application; in ``wsgi.py``::

        application = wrap_wsgi(get_wsgi_application())

    ``options`` win over the settings. ``end_user`` here is a callable from
    the WSGI environ.
    """
    secret_key, end_user, session_options = _protocol_options(options)
    wrapped = _wsgi.NeatlogsSessionMiddleware(
        application, secret_key, end_user=end_user, **session_options
    )
    _wrapped.set()
    return wrapped


def wrap_asgi(application: ASGIApp, **options: Any) -> _asgi.NeatlogsSessionMiddleware:
    """Wrap the project's ASGI application (Django's, or a Channels
    ``ProtocolTypeRouter``); in ``asgi.py``::

        application = wrap_asgi(get_asgi_application())

    Django answers no ``lifespan`` messages; the wrapper does, so servers
    that send them (uvicorn) get a clean startup and queued spans are
    flushed at shutdown. ``end_user`` here is a callable from the ASGI scope.
    """
    secret_key, end_user, session_options = _protocol_options(options)
    wrapped = _asgi.NeatlogsSessionMiddleware(
        _Lifespan(application), secret_key, end_user=end_user, **session_options
    )
    _wrapped.set()
    return wrapped


class _Lifespan:
    """Answers the ``lifespan`` protocol for an app that does not (Django, Channels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: _asgi.Receive, send: _asgi.Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # The session middleware around us flushes on this message.
                await send({"type": "lifespan.shutdown.complete"})
                return


def _request_is_wrapped(request: HttpRequest) -> bool:
    if _wsgi.ENVIRON_KEY in request.META:
        return True
    scope = getattr(request, "scope", None)
    return isinstance(scope, dict) and _asgi.SCOPE_STATE_KEY in scope.get("state", {})


def _warn_unwrapped() -> None:
    if not _wrapped.is_set() and not _warned_unwrapped.is_set():
        _warned_unwrapped.set()
        logger.warning(
            "neatlogs_web: NeatlogsMiddleware is in settings.MIDDLEWARE but the application "
            "is not wrapped, so requests get no session: in wsgi.py use "
            "application = wrap_wsgi(get_wsgi_application()), in asgi.py "
            "application = wrap_asgi(get_asgi_application()) "
            "(from neatlogs_web.integrations.django)"
        )


def _bind_conversation(
    name: str | None, request: HttpRequest, view_kwargs: Mapping[str, Any]
) -> None:
    if name is not None and _request_is_wrapped(request):
        value = view_kwargs.get(name)
        if value is not None:
            # An invalid id is counted in stats() and leaves the session as it was.
            bind_conversation(str(value))
    setattr(request, REQUEST_ATTRIBUTE, current_session_id())


class NeatlogsMiddleware:
    """The after-routing half, for ``settings.MIDDLEWARE``; sync and async.

    Sets ``request.neatlogs_session_id`` and, once the URL is resolved,
    binds the view keyword argument named by the ``conversation_kwarg``
    option (``"conversation_id"`` by default; ``None`` binds none) as the
    request's session, for the view and its streamed body; with
    ``conversation_binding="when_confirmed"``, once the view authorized it and
    called ``neatlogs_web.confirm_conversation(conversation_id)``. Needs the
    application wrapped with ``wrap_wsgi()`` / ``wrap_asgi()``.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | GetResponseAsync) -> None:
        self.get_response = get_response
        self.conversation_kwarg: str | None = _settings_options({}).get(
            "conversation_kwarg", _DEFAULT_CONVERSATION_KWARG
        )
        check_view_argument("conversation_kwarg", self.conversation_kwarg)
        self.is_async = iscoroutinefunction(get_response)
        # Django adapts process_view to the handler's mode; offering the mode we
        # run in saves a thread hop per request under ASGI.
        self.process_view: Callable[..., Any] = (
            self._process_view_async if self.is_async else self._process_view
        )
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        self._before(request)
        return cast(GetResponse, self.get_response)(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self._before(request)
        return await cast(GetResponseAsync, self.get_response)(request)

    def _before(self, request: HttpRequest) -> None:
        if not _request_is_wrapped(request):
            _warn_unwrapped()
        setattr(request, REQUEST_ATTRIBUTE, current_session_id())

    def _process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        _bind_conversation(self.conversation_kwarg, request, view_kwargs)

    async def _process_view_async(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        _bind_conversation(self.conversation_kwarg, request, view_kwargs)


def context_processor(request: HttpRequest) -> dict[str, str | None]:
    """``{{ neatlogs_session_id }}`` in templates (add to ``context_processors``)."""
    return {REQUEST_ATTRIBUTE: getattr(request, REQUEST_ATTRIBUTE, current_session_id())}


class NeatlogsConsumerMixin:
    """For Channels consumers: ``class Chat(NeatlogsConsumerMixin, AsyncWebsocketConsumer)``.

    The wrapped application binds a WebSocket connection to the session of
    its handshake for as long as it lives; this mixin, once ``URLRouter``
    has routed it, binds the URL keyword argument named by
    ``conversation_kwarg`` (``None``: none) for the connection, sets
    ``self.neatlogs_session_id``, and offers ``self.message_session(id)`` to
    rebind around the handling of one message. With
    ``conversation_binding="when_confirmed"`` both wait for the consumer to
    authorize the conversation and call ``confirm_conversation(id)``.
    """

    conversation_kwarg: str | None = _DEFAULT_CONVERSATION_KWARG
    neatlogs_session_id: str | None = None

    async def __call__(self, scope: Scope, receive: _asgi.Receive, send: _asgi.Send) -> None:
        name = self.conversation_kwarg
        value = (scope.get("url_route") or {}).get("kwargs", {}).get(name) if name else None
        if value is not None and _asgi.SCOPE_STATE_KEY in scope.get("state", {}):
            bind_conversation(str(value))
        self.neatlogs_session_id = current_session_id()
        await cast(Any, super()).__call__(scope, receive, send)

    @staticmethod
    @contextmanager
    def message_session(conversation_id: object) -> Iterator[str | None]:
        """Bind ``conversation_id`` around one message, once confirmed with
        ``conversation_binding="when_confirmed"``; ``None`` or an invalid id keep
        the connection's session (see ``websockets.message_session``)."""
        with message_session(conversation_id) as session_id:
            yield session_id
