"""Sync and async views, streamed replies, and ``sync_to_async`` / ``async_to_sync`` hops.

Each answers with the session the view saw; every span carries ``user``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import async_to_sync, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

import neatlogs_web

CHUNKS = 3


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def _user(request: HttpRequest) -> str:
    return request.GET.get("u", "anonymous")


def _sync_tool(user: str) -> str | None:
    with neatlogs_web.trace("sync_tool", user=user):
        return neatlogs_web.current_session_id()


async def _async_tool(user: str) -> str | None:
    await asyncio.sleep(0)
    with neatlogs_web.trace("async_tool", user=user):
        return neatlogs_web.current_session_id()


def sync_turn(request: HttpRequest, conversation_id: str | None = None) -> JsonResponse:
    user = _user(request)
    with neatlogs_web.trace("turn", user=user):
        hopped = async_to_sync(_async_tool)(user)
    return JsonResponse(
        {"session": request.neatlogs_session_id, "hopped": hopped}  # type: ignore[attr-defined]
    )


async def async_turn(request: HttpRequest, conversation_id: str | None = None) -> JsonResponse:
    user = _user(request)
    with neatlogs_web.trace("turn", user=user):
        sensitive = await sync_to_async(_sync_tool)(user)
        pooled = await sync_to_async(_sync_tool, thread_sensitive=False)(user)
    return JsonResponse(
        {
            "session": request.neatlogs_session_id,  # type: ignore[attr-defined]
            "hopped": sensitive if sensitive == pooled else f"{sensitive}!={pooled}",
        }
    )


def sync_stream(request: HttpRequest, conversation_id: str | None = None) -> StreamingHttpResponse:
    user = _user(request)

    def reply() -> Iterator[str]:
        # The turn lives in the generator: it runs while the server sends the body.
        with neatlogs_web.trace("stream_turn", user=user):
            for index in range(CHUNKS):
                with neatlogs_web.trace("chunk", user=user, index=index):
                    yield f"{neatlogs_web.current_session_id()}\n"

    return StreamingHttpResponse(reply(), content_type="text/plain")


async def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    user = _user(request)

    async def reply() -> AsyncIterator[str]:
        with neatlogs_web.trace("stream_turn", user=user):
            for index in range(CHUNKS):
                await asyncio.sleep(0.001)
                with neatlogs_web.trace("chunk", user=user, index=index):
                    yield f"{neatlogs_web.current_session_id()}\n"

    return StreamingHttpResponse(reply(), content_type="text/plain")


def template(request: HttpRequest) -> HttpResponse:
    return render(request, "session.html")


# The Celery app is imported on first use (only the Celery tests configure a broker);
# a gthread worker's threads must not import it, and Celery's lazy names, at once.
_celery_import = threading.Lock()


def enqueue(request: HttpRequest) -> JsonResponse:
    """Hand the turn to Celery: a task that calls another, a chain, a retried task."""
    with _celery_import:
        from celery import chain

        from tests.integrations.django_site import tasks

    user = _user(request)
    with neatlogs_web.trace("enqueue", user=user):
        tasks.answer.delay(user)
        chain(tasks.step.si(user, 1), tasks.step.si(user, 2)).delay()
        tasks.flaky.delay(user)
        tasks.fails.delay(user)
    return JsonResponse({"session": request.neatlogs_session_id})  # type: ignore[attr-defined]


def enqueue_outside_sessions(request: HttpRequest) -> JsonResponse:
    """An excluded path: our own publisher, with no session bound."""
    with _celery_import:
        from tests.integrations.django_site import tasks

    tasks.anonymous.delay(_user(request))
    return JsonResponse({"session": neatlogs_web.current_session_id()})
