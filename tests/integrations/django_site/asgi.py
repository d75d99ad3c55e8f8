from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.django_site.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import path

import neatlogs_web
from neatlogs_web.integrations.django import wrap_asgi

neatlogs_web.init(workflow_name="django-web", schedule_delay_ms=50)
django_application = get_asgi_application()

from tests.integrations.django_site.consumers import AsyncChat, SyncChat  # noqa: E402

application = wrap_asgi(
    ProtocolTypeRouter(
        {
            "http": django_application,
            "websocket": URLRouter(
                [
                    path("ws/async/", AsyncChat.as_asgi()),
                    path("ws/async/<str:conversation_id>/", AsyncChat.as_asgi()),
                    path("ws/sync/", SyncChat.as_asgi()),
                ]
            ),
        }
    )
)
