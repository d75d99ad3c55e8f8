"""Per-message sessions on a WebSocket whose messages name their conversation.

The middleware binds a WebSocket connection to the session of its handshake
(cookie, signed header, query or path), for as long as the connection
lives. A chat client that multiplexes several conversations over one socket
sends the conversation id in each message instead; ``message_session()``
binds it around the handling of that one message, then the connection's
session is back in effect. With ``conversation_binding="when_confirmed"`` a
message's conversation waits, as a request's does, for the app to authorize
it and call ``confirm_conversation(id)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from neatlogs_web._session.binding import (
    SessionBinding,
    bind,
    current_binding,
    current_session_id,
    unbind,
)
from neatlogs_web._session.counters import reject
from neatlogs_web._session.ids import is_valid_session_id

__all__ = ["message_session"]


@contextmanager
def message_session(conversation_id: object) -> Iterator[str | None]:
    """Bind ``conversation_id`` for the block; yield the session in effect.

    Meant for untrusted message fields: ``None`` (no id in this message)
    keeps the connection's session, and so does an invalid id (not 1-128
    characters of ``[A-Za-z0-9._:@/+=-]``), which is counted in
    ``neatlogs_web.stats()`` rather than raised. An integer id is accepted as
    its decimal string. The end-user id of the connection carries over.

        async for message in websocket.iter_json():
            with message_session(message.get("conversation_id")):
                await handle(message)

    With ``conversation_binding="when_confirmed"`` the block starts in the
    connection's session, and the message's conversation binds once the app,
    having authorized it, calls ``confirm_conversation(conversation_id)``
    inside the block: a client cannot put turns into a conversation it merely
    names.
    """
    if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
        conversation_id = str(conversation_id)
    if conversation_id is None:
        yield current_session_id()
        return
    if not isinstance(conversation_id, str) or not is_valid_session_id(conversation_id):
        reject("websocket_message", "invalid")
        yield current_session_id()
        return
    connection = current_binding()
    end_user_id = connection.end_user_id if connection is not None else None
    if connection is not None and connection.confirms_conversations:
        # Named, not bound: confirm_conversation() binds it once the app checked it.
        message = SessionBinding(
            connection.session_id,
            end_user_id,
            pending_conversation_id=conversation_id,
            confirms_conversations=True,
        )
    else:
        message = SessionBinding(conversation_id, end_user_id)
    token = bind(message)
    try:
        yield message.session_id
    finally:
        unbind(token)
