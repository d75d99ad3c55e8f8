from __future__ import annotations

from django.urls import path

from tests.integrations.django_site import views

urlpatterns = [
    path("healthz", views.healthz),
    path("sync/turn", views.sync_turn),
    path("async/turn", views.async_turn),
    path("sync/stream", views.sync_stream),
    path("async/stream", views.async_stream),
    path("sync/chat/<str:conversation_id>", views.sync_turn),
    path("async/chat/<str:conversation_id>", views.async_turn),
    path("sync/chat/<str:conversation_id>/stream", views.sync_stream),
    path("template", views.template),
    path("enqueue", views.enqueue),
    path("internal/enqueue", views.enqueue_outside_sessions),
]
