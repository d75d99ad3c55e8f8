"""The helper's feedback one-liner in Chromium, across origins: a page on one port
chats with an API on another and judges the latest turn, then an earlier one by
its response; the judgments land on those turns of the tab's session."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.frontend import script_endpoint
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_uvicorn

SESSION_HEADER = "X-Neatlogs-Session-Id"
FEEDBACK_HEADER = "X-Neatlogs-Feedback-Token"
PAGE_MODULE = """
import {{ createSessionFetch }} from "{api}/neatlogs-session.js";

const sessionFetch = createSessionFetch({{ storage: "tab", allowedOrigins: ["{api}"] }});
const responses = [];
window.chat = async (text) => {{
  const response = await sessionFetch("{api}/chat", {{ method: "POST", body: text }});
  responses.push(response);
  return (await response.json()).session_id;
}};
window.streamed = async (text) => {{
  // The turn opens inside the streamed body: its token comes in the body.
  const response = await sessionFetch("{api}/stream", {{ method: "POST", body: text }});
  return (await response.text()).split("event: feedback\\ndata: ")[1].split("\\n")[0];
}};
window.judgeToken = async (score, token) =>
  (await sessionFetch.feedback({{ score }}, {{ token }})).status;
window.judge = async (score, earlier) => {{
  const turn = earlier === undefined ? {{}} : {{ response: responses[earlier] }};
  return (await sessionFetch.feedback({{ score }}, turn)).status;
}};
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=tmp_path))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def api(page_origin: str) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        with neatlogs_web.trace("turn", input=(await request.body()).decode()):
            return JSONResponse({"session_id": neatlogs_web.current_session_id()})

    async def stream(request: Request) -> StreamingResponse:
        question = (await request.body()).decode()

        async def answer() -> Any:
            with neatlogs_web.trace("turn", input=question):
                yield "data: Hello\n\n"
                yield f"event: feedback\ndata: {neatlogs_web.feedback_token()}\n\n"

        return StreamingResponse(answer(), media_type="text/event-stream")

    app = Starlette(
        routes=[
            Route("/chat", chat, methods=["POST"]),
            Route("/stream", stream, methods=["POST"]),
            Route("/neatlogs-session.js", script_endpoint),
        ]
    )
    app.add_middleware(
        NeatlogsSessionMiddleware,
        secret_key="feedback-browser-key",
        sources=("conversation", "header"),
        exclude_paths=["/neatlogs-session.js"],
        feedback=True,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[page_origin],
        allow_methods=["POST"],
        allow_headers=["Content-Type", SESSION_HEADER],
        expose_headers=[SESSION_HEADER, FEEDBACK_HEADER],
    )
    return app


@contextmanager
def chat_tab(browser: Browser, site: tuple[Path, str]) -> Iterator[Page]:
    """A tab of the page on ``site``, chatting with the API on another origin."""
    root, origin = site
    with run_uvicorn(api(origin)) as base:
        (root / "page.js").write_text(PAGE_MODULE.format(api=base))
        (root / "index.html").write_text(
            '<!doctype html><meta charset="utf-8"><script type="module" src="page.js"></script>'
        )
        context = browser.new_context()
        try:
            tab = context.new_page()
            tab.goto(f"{origin}/index.html")
            tab.wait_for_function("typeof window.judge === 'function'")
            yield tab
        finally:
            context.close()


def test_the_helper_judges_the_latest_turn_and_an_earlier_one(
    tracing: OTLPReceiver, browser: Browser, site: tuple[Path, str]
) -> None:
    with chat_tab(browser, site) as tab:
        session_id = tab.evaluate("window.chat('first')")
        assert tab.evaluate("window.chat('second')") == session_id
        assert tab.evaluate("window.judge(1)") == 204  # the latest turn
        assert tab.evaluate("window.judge(0, 0)") == 204  # the first, by its response
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: sum(x.name == "feedback" for x in s) >= 2)
    turns = {s.span_id: s for s in spans if s.name == "turn"}
    judged = {}
    for feedback in (s for s in spans if s.name == "feedback"):
        turn = turns[feedback.parent_span_id]
        assert feedback.trace_id == turn.trace_id
        assert feedback.attributes["session.id"] == turn.attributes["session.id"] == session_id
        judged[turn.attributes["input.value"]] = feedback.attributes["neatlogs.feedback.score"]
    assert judged == {"second": 1.0, "first": 0.0}


def test_the_helper_judges_a_turn_an_answer_named_in_its_body(
    tracing: OTLPReceiver, browser: Browser, site: tuple[Path, str]
) -> None:
    with chat_tab(browser, site) as tab:  # a new tab: no response named a turn yet
        token = tab.evaluate("window.streamed('streamed')")
        assert tab.evaluate("(token) => window.judgeToken(0, token)", token) == 204
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: any(x.name == "feedback" for x in s))
    (feedback,) = [s for s in spans if s.name == "feedback"]
    (turn,) = [s for s in spans if s.name == "turn"]
    assert (feedback.trace_id, feedback.parent_span_id) == (turn.trace_id, turn.span_id)
    assert turn.attributes["input.value"] == "streamed"
    assert feedback.attributes["session.id"] == turn.attributes["session.id"]
