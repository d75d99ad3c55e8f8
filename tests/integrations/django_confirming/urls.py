"""``POST /chat``: Django reads a repeated query parameter's last value, and the
lines of a repeated header joined with commas."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from tests.conversation_attacks import (
    CONVERSATION_HEADER,
    FIELD,
    OWNER_HEADER,
    authorize_and_chat,
)


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def chat(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body) if request.content_type == "application/json" else {}
    checked = body.get(FIELD) or request.GET.get(FIELD) or request.headers.get(CONVERSATION_HEADER)
    content, status = authorize_and_chat(checked, request.headers.get(OWNER_HEADER))
    return JsonResponse(content, status=status)


urlpatterns = [path("healthz", healthz), path("chat", chat)]
