"""The chat over a Channels WebSocket: the connection's conversation is its
session; a message naming another conversation is handled in that one.

A reply has no headers to name its turn in: its last message carries the
turn's feedback token, for the thumbs the page puts under the answer."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

import neatlogs_web
from chatsite.llm import complete, retrieve
from neatlogs_web.integrations.django import NeatlogsConsumerMixin


class ChatConsumer(NeatlogsConsumerMixin, AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
        message = json.loads(text_data or "{}")
        text = str(message.get("text", ""))
        with (
            self.message_session(message.get("conversation_id")) as session_id,
            neatlogs_web.trace("turn", input=text),
        ):
            documents = await sync_to_async(retrieve)(text)
            answer = ""
            for word in complete(text, documents):
                answer += word
                await self.send(json.dumps({"session": session_id, "token": word}))
            neatlogs_web.set_output(answer.strip())
            feedback = neatlogs_web.feedback_token()  # None unless settings say feedback
            await self.send(json.dumps({"session": session_id, "done": True, "feedback": feedback}))
