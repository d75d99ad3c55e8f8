"""Feedback a person gives in the page, as a real Phoenix shows it.

Carol's tab (a real Chromium) chats with a FastAPI app through the page
helper. Each answer streams and names its turn in its body
(``feedback_token()``, the turn opening after the headers went out); she
gives the first answer a thumbs down with the helper's one line. Read back
through Phoenix's own API: the judgment on that turn of her session, as the
feedback span in its trace and as a span annotation on the turn's span,
nothing on the second turn, and the wait for the first words on the turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from starlette.responses import HTMLResponse, StreamingResponse

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.frontend import script_endpoint
from tests.backends.phoenix_client import PhoenixClient, settled, wait_for
from tests.backends.phoenix_server import PhoenixServer
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.pipeline import own_pipeline
from tests.servers import run_uvicorn

pytestmark = pytest.mark.backends

PROJECT = "browser-feedback"
FIRST_WORDS_S = 0.3
PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
import { createSessionFetch } from "/neatlogs-session.js";

const sessionFetch = createSessionFetch();
window.ask = async (question) => {
  const response = await sessionFetch("/answer?q=" + encodeURIComponent(question));
  return (await response.text()).split("event: feedback\\ndata: ")[1].split("\\n")[0];
};
window.judge = async ([token, score, comment]) =>
  (await sessionFetch.feedback({ score, comment }, { token })).status;
</script>"""


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        NeatlogsSessionMiddleware, secret_key="phoenix-browser-feedback", feedback=True
    )
    app.add_route("/neatlogs-session.js", script_endpoint)

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/answer")
    async def answer(q: str) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            with neatlogs_web.trace("turn", input=q):
                await asyncio.sleep(FIRST_WORDS_S)
                yield "data: Hello\n\n"
                neatlogs_web.set_output("Hello")
                yield f"event: feedback\ndata: {neatlogs_web.feedback_token()}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def test_a_thumbs_down_in_the_page_lands_on_its_turn_in_phoenix(
    phoenix_server: PhoenixServer,
) -> None:
    # Here, not at the top: the fast suite, which has no Playwright, collects this module.
    from playwright.sync_api import sync_playwright

    with (
        own_pipeline(
            endpoint=phoenix_server.url,
            workflow_name=PROJECT,
            backend="phoenix",
            schedule_delay_ms=50,
        ),
        run_uvicorn(make_app()) as base,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            tab.goto(f"{base}/")
            tab.wait_for_function("typeof window.judge === 'function'")
            first = tab.evaluate("window.ask('my order is late')")
            tab.evaluate("window.ask('where is it now?')")
            assert tab.evaluate("window.judge", [first, 0, "not helpful"]) == 204
            (cookie,) = [c for c in tab.context.cookies() if c["name"] == "neatlogs_session"]
            session_id = cookie["value"].split(".")[0]  # the tab's session: its cookie
        finally:
            browser.close()
        assert neatlogs_web.flush(10), "neatlogs_web did not export every span"

    with PhoenixClient(phoenix_server.url) as phoenix:
        spans = wait_for(lambda: phoenix.spans(PROJECT), settled(), timeout_s=30)
        turns = {s.attribute("input.value"): s for s in spans if s.name == "turn"}
        annotations = wait_for(
            lambda: phoenix.span_annotations(PROJECT, [t.span_id for t in turns.values()]),
            settled(),
            timeout_s=30,
        )
        session = phoenix.session(PROJECT, session_id)
    judged = turns["my order is late"]
    (feedback,) = [s for s in spans if s.name == "feedback"]
    assert (feedback.trace_id, feedback.parent_id) == (judged.trace_id, judged.span_id)
    assert feedback.attribute("session.id") == judged.attribute("session.id") == session_id
    assert feedback.attribute("neatlogs.feedback.score") == 0
    (annotation,) = annotations
    assert annotation["span_id"] == judged.span_id
    assert annotation["result"] == {"score": 0.0, "label": None, "explanation": "not helpful"}
    assert judged.attribute("neatlogs.response.time_to_first_chunk") >= FIRST_WORDS_S - 0.002
    assert session is not None
    assert session.first_input == "my order is late"
    assert sorted(t.trace_id for t in session.traces) == sorted(t.trace_id for t in turns.values())
