"""ASGI entry point (uvicorn, daphne): HTTP views and the Channels chat socket.

The wrapper goes around the whole ``ProtocolTypeRouter``, so a WebSocket
connection keeps the session of its handshake for as long as it lives.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import path

import chatsite.tracing  # noqa: F401
from neatlogs_web.integrations.django import wrap_asgi

django_application = get_asgi_application()  # sets Django up before the consumers import

from chatsite.consumers import ChatConsumer  # noqa: E402

application = wrap_asgi(
    ProtocolTypeRouter(
        {
            "http": django_application,
            "websocket": URLRouter(
                [path("ws/chat/<str:conversation_id>/", ChatConsumer.as_asgi())]
            ),
        }
    )
)
