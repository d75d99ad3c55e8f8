"""A Channels chat consumer: the connection's session, rebound per message."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer

import neatlogs_web
from neatlogs_web.integrations.django import NeatlogsConsumerMixin


class AsyncChat(NeatlogsConsumerMixin, AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()
        await self.send(json.dumps({"connected": self.neatlogs_session_id}))

    async def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
        message = json.loads(text_data or "{}")
        with (
            self.message_session(message.get("conversation_id")) as session_id,
            neatlogs_web.trace("ws_turn", user=message["user"]),
        ):
            await self.send(json.dumps({"session": session_id}))


class SyncChat(NeatlogsConsumerMixin, WebsocketConsumer):  # type: ignore[misc]
    def connect(self) -> None:
        self.accept()
        self.send(json.dumps({"connected": self.neatlogs_session_id}))

    def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
        message = json.loads(text_data or "{}")
        with (
            self.message_session(message.get("conversation_id")) as session_id,
            neatlogs_web.trace("ws_turn", user=message["user"]),
        ):
            self.send(json.dumps({"session": session_id}))
