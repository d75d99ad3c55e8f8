"""The example chat server over WSGI (Flask), traced with neatlogs_web.

Same shape as the FastAPI example: one ``trace("turn")`` per message, a
streamed reply (the generator runs after the view returned, still in the
request's session), retrieval on a worker thread, and a follow-up task on a
thread started by hand, both carried with ``with_current_session``.
``/`` serves the FastAPI example's chat page (``../fastapi/static``: the two
apps answer the same requests), with thumbs up / down under each answer
(``feedback=True``: each streamed answer names its turn in a ``feedback``
event, and ``POST /neatlogs/feedback`` records the judgment).

    cd examples/flask
    NEATLOGS_ENDPOINT=http://127.0.0.1:4318 \
        waitress-serve --threads 16 --listen=127.0.0.1:8001 app:app
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flask import Flask, Response, jsonify, request

import neatlogs_web
from neatlogs_web.frontend import script_view
from neatlogs_web.wsgi import NeatlogsSessionMiddleware

neatlogs_web.init(
    workflow_name="example-chat-flask",
    exporter=None if os.environ.get("NEATLOGS_ENDPOINT") else "console",
    schedule_delay_ms=200,
)

PAGE = Path(__file__).resolve().parent.parent / "fastapi" / "static"
app = Flask(__name__, static_folder=PAGE)
app.add_url_rule("/neatlogs-session.js", view_func=script_view)
app.wsgi_app = NeatlogsSessionMiddleware(  # type: ignore[method-assign]
    app.wsgi_app,
    secret_key=os.environ.get("NEATLOGS_SECRET_KEY", "example-only-secret-change-me"),
    conversation_paths=["/chat/{conversation_id}"],
    # A conversation's turns are judged in it: POST /neatlogs/feedback?conversation_id=...
    conversation_query="conversation_id",
    exclude_paths=["/", "/healthz", "/static/*", "/neatlogs-session.js"],
    feedback=True,  # each reply names its turn; POST /neatlogs/feedback judges it
)
retrieval_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="retrieval")


def retrieve(message: str) -> list[str]:
    """Blocking retrieval, run in the thread pool: the session follows it there."""
    with neatlogs_web.trace("retrieval", kind="retriever", input=message):
        return [f"doc about {word}" for word in message.split()[:3]]


def summarise(message: str) -> None:
    """A follow-up on a thread started by hand: still in the turn, and its session."""
    with neatlogs_web.trace("summarise", message=message):
        pass


def reply(message: str) -> Iterator[str]:
    """One turn as server-sent events: the answer's words, then the turn's name."""
    with neatlogs_web.trace("turn", input=message):
        documents = retrieval_pool.submit(
            neatlogs_web.with_current_session(retrieve), message
        ).result()
        with neatlogs_web.trace("llm", kind="llm", input=message, documents=len(documents)):
            words = f"You said: {message}".split()
            for word in words:
                yield f"data: {word}\n\n"
            neatlogs_web.set_output(" ".join(words))
            neatlogs_web.set_usage(
                prompt_tokens=len(message.split()), completion_tokens=len(words), model="fake-llm"
            )
        with neatlogs_web.trace("tool", kind="tool", tool="word_count"):
            count = len(message.split())
        neatlogs_web.set_output(" ".join(words))
        threading.Thread(
            target=neatlogs_web.with_current_session(summarise), args=(message,)
        ).start()
        # The headers went out before the turn began: the answer names its turn.
        token = neatlogs_web.feedback_token()
        if token is not None:
            yield f"event: feedback\ndata: {token}\n\n"
        yield f"data: [DONE] {count} words\n\n"


def chat_response() -> Response:
    message = str((request.get_json(silent=True) or {}).get("message", ""))
    return Response(reply(message), mimetype="text/event-stream")


@app.post("/chat")
def chat() -> Response:
    """A turn in the caller's session (cookie or signed header)."""
    return chat_response()


@app.post("/chat/<conversation_id>")
def chat_in_conversation(conversation_id: str) -> Response:
    """A turn in the conversation named by the path: the conversation is the session."""
    return chat_response()


@app.get("/session")
def current_session() -> Response:
    return jsonify(session_id=neatlogs_web.current_session_id())


@app.get("/")
def chat_page() -> Response:
    """The chat page: each tab's session token in sessionStorage, thumbs under each answer."""
    return app.send_static_file("index.html")


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")
