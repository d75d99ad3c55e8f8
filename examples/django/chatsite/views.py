"""Sync and async views and a streamed reply; one ``trace("turn")`` per message.

The URL names the conversation (``/chat/<conversation_id>/``), so
``NeatlogsMiddleware`` makes it the session after routing; the page shows
``request.neatlogs_session_id``. Each turn records what the user said
(``input=``) and what the site answered (``set_output()``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

import neatlogs_web
from chatsite.llm import complete, retrieve
from neatlogs_web.frontend import SCRIPT


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "chat.html")


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def session_script(request: HttpRequest) -> HttpResponse:
    """The page's helper for the feedback endpoint, shipped with the package (a
    small file, read whole: a file response would be a sync stream under ASGI)."""
    return HttpResponse(SCRIPT.read_bytes(), content_type="text/javascript")


def chat(request: HttpRequest, conversation_id: str) -> JsonResponse:
    """A sync view: the whole turn in the request."""
    message = request.GET.get("q", "hello")
    with neatlogs_web.trace("turn", input=message):
        answer = "".join(complete(message, retrieve(message))).strip()
        neatlogs_web.set_output(answer)
    return JsonResponse({"session": neatlogs_web.current_session_id(), "answer": answer})


async def chat_async(request: HttpRequest, conversation_id: str) -> JsonResponse:
    """An async view: blocking work goes to a thread with sync_to_async, session included."""
    message = request.GET.get("q", "hello")
    with neatlogs_web.trace("turn", input=message):
        documents = await sync_to_async(retrieve)(message)
        answer = "".join(complete(message, documents)).strip()
        neatlogs_web.set_output(answer)
    return JsonResponse({"session": neatlogs_web.current_session_id(), "answer": answer})


def chat_stream(request: HttpRequest, conversation_id: str) -> StreamingHttpResponse:
    """A streamed reply: the turn lives in the generator, which runs while the
    server sends the body, after this view returned, in the same session.

    Django serves a streamed body the way its handler runs: an async iterator
    under ASGI (uvicorn, daphne), a plain one under WSGI (gunicorn); given the
    other kind, it buffers the whole reply and warns.
    """
    message = request.GET.get("q", "hello")

    def reply() -> Iterator[str]:
        with neatlogs_web.trace("turn", input=message):
            answer = ""
            for word in complete(message, retrieve(message)):
                answer += word
                yield f"data: {word}\n\n"
            neatlogs_web.set_output(answer.strip())

    async def reply_async() -> AsyncIterator[str]:
        with neatlogs_web.trace("turn", input=message):
            documents = await sync_to_async(retrieve)(message)
            answer = ""
            for word in complete(message, documents):
                answer += word
                yield f"data: {word}\n\n"
            neatlogs_web.set_output(answer.strip())

    body = reply_async() if isinstance(request, ASGIRequest) else reply()
    return StreamingHttpResponse(body, content_type="text/event-stream")
