from __future__ import annotations

from django.urls import path

from chatsite import views

urlpatterns = [
    path("", views.index),
    path("healthz", views.healthz),
    path("neatlogs-session.js", views.session_script),
    path("chat/<str:conversation_id>/", views.chat),
    path("chat/<str:conversation_id>/async", views.chat_async),
    path("chat/<str:conversation_id>/stream", views.chat_stream),
]
