"""The examples' chat page in a real browser: one conversation per tab, and
thumbs up / down that judge the answer they sit under.

Debian's chromium, driven by Playwright, opens the FastAPI example (run as a
user starts it, exporting to a real receiver) in two tabs of one browser
profile. The tabs share the cookie jar, but the page sends the token it keeps
in ``sessionStorage`` in the session header, so each tab's turns land in its
own session, also after a reload. The Flask example serves the same page. The
Django example's page chats over a Channels WebSocket: each reply names its
turn in its last message, and its thumbs judge that turn over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.integrations._processes import django_server
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import ROOT, run_example

EXAMPLE = ["uvicorn", "app:app", "--app-dir", "examples/fastapi", "--port", "{port}"]
FLASK_EXAMPLE = ["waitress", "--listen=127.0.0.1:{port}", "--threads=8", "app:app"]


def say(page: Page, message: str) -> None:
    """Send a message and wait until its reply is complete (every example's page)."""
    page.fill("#message", message)
    page.click("button[type=submit]")
    reply = page.locator("#transcript p.reply").last
    expect(reply).to_have_attribute("data-done", "true", timeout=20_000)
    expect(reply).to_contain_text(f"You said: {message}")


def test_two_tabs_are_two_sessions(browser: Browser) -> None:
    with OTLPReceiver() as receiver:
        with run_example(EXAMPLE, {"NEATLOGS_ENDPOINT": receiver.url}) as base:
            context = browser.new_context()
            tabs = [context.new_page(), context.new_page()]
            for tab in tabs:
                tab.goto(base + "/")
            # The page load set the example's cookie, shared by both tabs.
            assert [c["name"] for c in context.cookies()] == ["neatlogs_session"]
            for turn in range(2):
                for index, tab in enumerate(tabs):
                    say(tab, f"tab{index} turn{turn}")
            tabs[0].reload()
            say(tabs[0], "tab0 turn2")
            shown = [tab.text_content("#session") for tab in tabs]
            context.close()
        messages = {f"tab0 turn{t}" for t in range(3)} | {f"tab1 turn{t}" for t in range(2)}
        spans = receiver.wait_for(
            lambda s: messages <= {x.attributes.get("input.value") for x in s if x.name == "turn"}
        )

    sessions: dict[str, set[str]] = {"tab0": set(), "tab1": set()}
    for span in spans:
        if span.name == "turn" and span.attributes.get("input.value") in messages:
            tab = span.attributes["input.value"].split()[0]
            sessions[tab].add(span.attributes["session.id"])
    assert all(len(found) == 1 for found in sessions.values()), sessions
    assert sessions["tab0"] != sessions["tab1"]
    # What each tab shows is the session its turns were traced in.
    assert shown == [next(iter(sessions["tab0"])), next(iter(sessions["tab1"]))]


def thumbs_down_under_the_first_of_two_answers(page: Page) -> Locator:
    """Ask two questions and judge the first answer bad; the second answer's thumbs."""
    say(page, "first question")
    say(page, "second question")
    first, second = page.locator("#transcript .feedback").all()
    first.get_by_role("button", name="Bad answer").click()
    expect(first.get_by_role("status")).to_have_text("Thanks for your feedback!")
    expect(first.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "true")
    return second


def assert_one_thumbs_down_on_the_first_turn(spans: list[ReceivedSpan]) -> None:
    """One feedback span, score 0, under the first question's turn: in its trace
    and its session, and not in the second question's trace."""
    turns = {span.attributes.get("input.value"): span for span in spans if span.name == "turn"}
    judged, asked_again = turns["first question"], turns["second question"]
    feedback = [span for span in spans if span.name == "feedback"]
    assert len(feedback) == 1, feedback
    (vote,) = feedback
    assert vote.attributes["neatlogs.feedback.score"] == 0
    assert (vote.trace_id, vote.parent_span_id) == (judged.trace_id, judged.span_id)
    assert vote.trace_id != asked_again.trace_id
    assert vote.attributes["session.id"] == judged.attributes["session.id"]


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (EXAMPLE, {}),
        (FLASK_EXAMPLE, {"PYTHONPATH": "examples/flask"}),
    ],
    ids=["fastapi", "flask"],
)
def test_thumbs_down_judges_the_answer_it_sits_under(
    browser: Browser, command: list[str], env: dict[str, str]
) -> None:
    with OTLPReceiver() as receiver:
        with run_example(command, {"NEATLOGS_ENDPOINT": receiver.url, **env}) as base:
            context = browser.new_context()
            page = context.new_page()
            page.goto(base + "/")
            second = thumbs_down_under_the_first_of_two_answers(page)
            # The tab forgets its session: its next request starts another one,
            # which may not judge the first session's turns.
            page.evaluate("sessionStorage.clear()")
            second.get_by_role("button", name="Good answer").click()
            expect(second.get_by_role("status")).to_have_text(
                "Sorry, your vote was not recorded: the feedback token is of another session."
            )
            expect(second.get_by_role("button", name="Good answer")).to_be_enabled()
            context.close()
        # The example has stopped (SIGTERM): it flushed every span on the way out.
        spans = receiver.spans
    assert_one_thumbs_down_on_the_first_turn(spans)  # the refused vote recorded nothing


def test_thumbs_down_judges_the_websocket_answer_it_sits_under(
    browser: Browser, tmp_path: Path
) -> None:
    with OTLPReceiver() as receiver:
        with django_server(
            "uvicorn",
            {"NEATLOGS_ENDPOINT": receiver.url},
            tmp_path / "server.log",
            wsgi="chatsite.wsgi:application",
            asgi="chatsite.asgi:application",
            cwd=ROOT / "examples" / "django",
        ) as base:
            context = browser.new_context()
            page = context.new_page()
            page.goto(base + "/")
            thumbs_down_under_the_first_of_two_answers(page)
            context.close()
        # The server has stopped (SIGTERM): it flushed every span on the way out.
        spans = receiver.spans
    assert_one_thumbs_down_on_the_first_turn(spans)
