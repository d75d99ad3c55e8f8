"""A request's binding, changed by the app after routing.

The middleware opens one ``SessionBinding`` per request from its
``Resolution`` (``neatlogs_web._web.flow``) and binds it for the request's
life. After routing, when the
app knows (and has authorized) the conversation, ``bind_session()`` or
``confirm_conversation()`` change that one binding in place, so the
streamed body, background tasks and thread-pool calls of the request
follow. Tracing, which puts the session on the request's span, registers
with :func:`on_rebind` to follow too: this layer knows nothing of spans.
"""

from __future__ import annotations

from collections.abc import Callable

from neatlogs_web._session.binding import SessionBinding, current_request_binding
from neatlogs_web._session.counters import reject
from neatlogs_web._session.ids import is_valid_session_id

__all__ = [
    "bind_conversation",
    "bind_session",
    "confirm_conversation",
    "on_rebind",
]

#: Called with the request's binding each time bind_session() changed it.
_rebind_hooks: list[Callable[[SessionBinding], None]] = []


def on_rebind(hook: Callable[[SessionBinding], None]) -> None:
    """Have ``hook`` called with the request's binding whenever ``bind_session()``
    changes it (tracing re-stamps the request's span)."""
    _rebind_hooks.append(hook)


def bind_session(session_id: str, *, end_user_id: str | None = None) -> bool:
    """Rebind the current request to ``session_id``, e.g. a conversation id
    known only after routing. Returns ``False`` (and counts it) for an invalid id.

    The request's one binding is changed in place, so its streamed body,
    background tasks and thread-pool calls follow; the framework's request
    span is re-stamped (see :func:`on_rebind`). Spans already started keep
    the session they started with. Outside a request the middleware bound (an excluded path, a CORS
    preflight, a script) it binds nothing and returns ``False``: a binding
    set there would outlive the request on a reused worker thread. Use
    ``neatlogs_web.session()`` for a block of your own.
    """
    if not isinstance(session_id, str) or not is_valid_session_id(session_id):
        reject("bind_session", "invalid")
        return False
    if end_user_id is not None and not is_valid_session_id(end_user_id):
        reject("bind_session", "invalid_end_user")
        end_user_id = None
    binding = current_request_binding()
    if binding is None:
        reject("bind_session", "outside_request")
        return False
    binding.session_id = session_id
    binding.previous_session_id = None
    binding.pending_conversation_id = None
    if end_user_id is not None:
        binding.end_user_id = end_user_id
    for hook in _rebind_hooks:
        hook(binding)
    return True


def bind_conversation(conversation_id: str) -> bool:
    """For integrations that find the conversation after routing (Flask's
    ``view_args``, Django's ``view_kwargs``): bind it, or, with
    ``conversation_binding="when_confirmed"``, keep it for
    :func:`confirm_conversation`, which the app calls once it authorized it.

    A request that already named another conversation (its query, a header)
    names two: it keeps neither, and returns ``False``."""
    binding = current_request_binding()
    if binding is None or not binding.confirms_conversations:
        return bind_session(conversation_id)
    if not is_valid_session_id(conversation_id):
        reject("bind_session", "invalid")
        return False
    if binding.pending_conversation_id not in (None, conversation_id):
        reject("bind_conversation", "ambiguous")
        binding.pending_conversation_id = None
        return False
    binding.pending_conversation_id = conversation_id
    return True


def confirm_conversation(conversation_id: str) -> str | None:
    """Bind ``conversation_id``, the id the app has just authorized, if it is
    the one the request named; returns it, else ``None`` (counted in
    ``stats()["rejected"]``) and the session stays as it was.

    For ``conversation_binding="when_confirmed"``: the middleware finds the
    conversation id (path, query, header or JSON body) but binds only the
    browser's own session until the app calls this, so a refused (403) or
    unrouted (404) request never writes into someone else's conversation.
    The app passes the id it checked, so what binds is what it authorized,
    never another copy of the id the request may carry: a request whose
    copies disagree names none.
    """
    binding = current_request_binding()
    if binding is None:
        reject("confirm_conversation", "outside_request")
        return None
    if binding.pending_conversation_id is None:
        reject("confirm_conversation", "none_named")
        return None
    if conversation_id != binding.pending_conversation_id:
        reject("confirm_conversation", "not_the_named_one")
        return None
    return conversation_id if bind_session(conversation_id) else None
