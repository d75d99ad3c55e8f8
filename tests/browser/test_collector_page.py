"""The timeline page in a real browser (Debian's chromium, driven by Playwright).

A seeded run is loaded the way a developer would look at it: sessions list, one session's
turns, one trace's spans, one span's attributes. Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from playwright.sync_api import Browser, Page, expect

from tests.collector import conversations
from tests.collector import otlp_data as otlp
from tests.collector.live import LiveCollector

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<img src=x onerror="document.title=1">'


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def send(collector: LiveCollector, *spans: Span, service: str = "travel-agent") -> None:
    body = otlp.protobuf(*spans, resource={"service.name": service})
    response = httpx.post(
        collector.url + "/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200


def turn(
    collector: LiveCollector,
    session: str,
    name: str,
    *,
    at_s: float,
    base_ns: int,
    error: bool = False,
) -> None:
    """One chat turn: a server span, retrieval, an LLM call with tokens, a tool call."""
    trace_id, root, llm = otlp.new_trace_id(), otlp.new_span_id(), otlp.new_span_id()
    start = at_s * 1000

    def child(name: str, offset: float, duration: float, **kw: object) -> Span:
        return otlp.span(
            name,
            trace_id=trace_id,
            parent=kw.pop("parent", root),  # type: ignore[arg-type]
            start_ms=start + offset,
            duration_ms=duration,
            base_ns=base_ns,
            **kw,  # type: ignore[arg-type]
        )

    send(
        collector,
        otlp.span(
            name,
            trace_id=trace_id,
            span_id=root,
            start_ms=start,
            duration_ms=2400,
            base_ns=base_ns,
            kind=Span.SPAN_KIND_SERVER,
            attributes={"session.id": session, "http.route": "/chat"},
            error="tool failed" if error else None,
        ),
        child("retrieve documents", 20, 180, attributes={"db.system": "sqlite"}),
        child(
            "llm.chat",
            220,
            1500,
            span_id=llm,
            attributes={
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 812,
                "gen_ai.usage.output_tokens": 164,
            },
        ),
        child("parse response", 1400, 90, parent=llm),
        child(
            "tool: search_flights",
            1750,
            600,
            error="upstream 503" if error else None,
            kind=Span.SPAN_KIND_CLIENT,
        ),
    )


@pytest.fixture
def seeded(collector: LiveCollector) -> LiveCollector:
    base = time.time_ns() - 90 * 1_000_000_000
    turn(collector, "chat-bob", "user: hello", at_s=0, base_ns=base)
    turn(collector, "chat-alice/web:1", "user: plan a trip to Lisbon", at_s=10, base_ns=base)
    turn(
        collector,
        "chat-alice/web:1",
        "user: book a flight",
        at_s=21,
        base_ns=base,
        error=True,
    )
    turn(collector, "chat-alice/web:1", "user: thanks!", at_s=48, base_ns=base)
    send(collector, otlp.span(HOSTILE, base_ns=base, start_ms=5000, attributes={HOSTILE: HOSTILE}))
    return collector


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)


def test_sessions_turns_spans_and_attributes(seeded: LiveCollector, page: Page) -> None:
    page.goto(seeded.url + "/")

    items = page.locator(".session-item[data-session-id]")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("chat-alice/web:1")
    expect(items.nth(0)).to_contain_text("3 turns")
    expect(items.nth(0)).to_contain_text("2 errors")
    expect(items.nth(1)).to_contain_text("chat-bob")
    expect(page.locator(".session-item.orphans")).to_be_visible()

    items.nth(0).click()
    expect(page).to_have_url(seeded.url + "/#/workflows/travel-agent/sessions/chat-alice%2Fweb%3A1")
    turns = page.locator(".tl-row.turn")
    expect(turns).to_have_count(3)
    expect(turns.locator(".tl-name")).to_have_text(
        ["user: plan a trip to Lisbon", "user: book a flight", "user: thanks!"]
    )
    expect(turns.nth(1)).to_have_class("tl-row turn is-error")
    expect(turns.nth(1).locator(".error-mark")).to_be_visible()
    expect(page.locator(".gap-row")).to_have_count(2)
    expect(page.locator(".view-header")).to_contain_text("2,928 tok")
    shoot(page, "collector-session.png")

    turns.nth(1).click()
    spans = page.locator(".span-row")
    expect(spans).to_have_count(5)
    expect(spans.locator(".tl-name")).to_have_text(
        [
            "user: book a flight",
            "retrieve documents",
            "llm.chat",
            "parse response",
            "tool: search_flights",
        ]
    )
    expect(page.locator(".crumbs")).to_contain_text("chat-alice/web:1")

    spans.nth(2).click()
    details = page.locator(".details")
    expect(details).to_be_visible()
    expect(details.locator("h2")).to_have_text("llm.chat")
    expect(details.locator("tr", has_text="gen_ai.usage.input_tokens")).to_contain_text("812")
    expect(details.locator("tr", has_text="gen_ai.request.model")).to_contain_text("gpt-4o-mini")
    expect(spans.nth(2)).to_have_class("tl-row span-row selected")
    shoot(page, "collector-trace.png")

    # The selection is in the URL: reloading shows the same span.
    page.reload()
    expect(page.locator(".details h2")).to_have_text("llm.chat")


def test_a_long_session_shows_its_turns_a_page_at_a_time(
    collector: LiveCollector, page: Page
) -> None:
    base = time.time_ns() - 600 * 1_000_000_000
    send(
        collector,
        *[
            otlp.span(
                f"turn {index}",
                base_ns=base,
                start_ms=index * 1000,
                attributes={"session.id": "long-chat"},
            )
            for index in range(205)
        ],
    )
    page.goto(collector.url + "/#/sessions/long-chat")

    turns = page.locator(".tl-row.turn")
    expect(turns).to_have_count(200)
    more = page.locator("#more-turns")
    expect(more).to_have_text("Show more turns (200 of 205 shown)")

    more.click()
    expect(turns).to_have_count(205)
    expect(turns.nth(204).locator(".tl-name")).to_have_text("turn 204")
    expect(turns.nth(204).locator(".tl-index")).to_have_text("205")
    expect(more).to_have_count(0)


def test_search_and_live_refresh_keep_the_selection(seeded: LiveCollector, page: Page) -> None:
    page.goto(seeded.url + "/#/sessions/chat-bob")
    expect(page.locator(".session-item.selected")).to_contain_text("chat-bob")

    turn(seeded, "chat-carol", "user: new arrival", at_s=0, base_ns=time.time_ns())

    first = page.locator(".session-item[data-session-id]").first
    expect(first).to_contain_text("chat-carol", timeout=10_000)
    expect(page.locator(".session-item.selected")).to_contain_text("chat-bob")
    expect(page.locator(".tl-row.turn")).to_have_count(1)

    page.locator("#search").fill("flights")
    expect(page.locator(".session-item[data-session-id]")).to_have_count(3)
    page.locator("#search").fill("alice")
    expect(page.locator(".session-item[data-session-id]")).to_have_count(1)
    page.locator("#search").fill("zzz-nothing")
    expect(page.locator(".empty")).to_contain_text("No session matches")


def test_data_is_shown_as_text_never_as_markup(seeded: LiveCollector, page: Page) -> None:
    page.goto(seeded.url + "/#/no-session")

    row = page.locator(".orphan-row")
    expect(row).to_contain_text(HOSTILE)
    row.click()
    page.locator(".span-row").first.click()
    expect(page.locator(".details tr", has_text="onerror")).to_have_count(1)
    assert page.locator("img").count() == 0
    assert page.title() != "1"


def test_unknown_links_show_not_found(seeded: LiveCollector, page: Page) -> None:
    page.goto(seeded.url + "/#/sessions/does-not-exist")

    expect(page.locator(".view h1")).to_have_text("Session not found")


# ---------------------------------------------------------------- conversations


@pytest.fixture
def chats(collector: LiveCollector) -> LiveCollector:
    def post(body: bytes) -> None:
        response = httpx.post(
            collector.url + "/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert response.status_code == 200

    conversations.seed(post)
    return collector


def test_the_list_shows_who_said_what_and_leaves_out_sessions_without_turns(
    chats: LiveCollector, page: Page
) -> None:
    page.goto(chats.url + "/")

    items = page.locator(".session-item[data-session-id]")
    expect(items).to_have_count(3)
    alice = page.locator('[data-session-id="conv-7f3a"]')
    expect(alice.locator(".session-title")).to_have_text("How do I reset my password?")
    expect(alice.locator(".user")).to_have_text("alice@example.com")
    expect(alice.locator(".turns")).to_have_text("3 turns")
    expect(alice).to_contain_text("2 errors")
    expect(alice).to_contain_text("2,312 tok")
    toggle = page.locator("#requests-toggle")
    expect(toggle).to_have_text("Show 2 sessions without turns")

    toggle.click()
    expect(items).to_have_count(5)
    expect(page.locator('[data-session-id="sess-whoami"] .turns')).to_have_text(
        "no turns · 1 request"
    )


def test_filters_and_search_narrow_the_list(chats: LiveCollector, page: Page) -> None:
    page.goto(chats.url + "/")
    items = page.locator(".session-item[data-session-id]")
    expect(items).to_have_count(3)

    page.locator("#f-user").select_option("bob@example.com")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("What are your opening hours?")
    page.locator("#f-user").select_option("")
    page.locator("#f-errors").check()
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-session-id", "conv-7f3a")
    page.locator("#f-errors").uncheck()
    page.locator("#f-time").select_option("3600")  # the last hour: not the old session
    expect(items).to_have_count(2)
    expect(page.locator('[data-session-id="conv-old"]')).to_have_count(0)
    page.locator("#f-time").select_option("")
    expect(items).to_have_count(3)
    page.locator("#search").fill("ticket #4812")  # an attribute value: a turn's output
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-session-id", "conv-7f3a")


def test_a_session_reads_as_a_conversation_with_idle_gaps_compressed(
    chats: LiveCollector, page: Page
) -> None:
    page.goto(chats.url + "/#/workflows/support-bot/sessions/conv-7f3a")

    expect(page.locator(".view-header .turn-count")).to_have_text("3 turns")
    expect(page.locator(".view-header .user")).to_have_text("alice@example.com")
    turns = page.locator(".tl-row.turn")
    expect(turns).to_have_count(3)
    expect(page.locator(".tl-row.request")).to_have_count(0)  # folded into their turns
    expect(turns.locator(".msg-in .msg-text")).to_have_text(
        [turn.input for turn in conversations.ALICE_TURNS]
    )
    expect(turns.locator(".msg-out .msg-text")).to_have_text(
        [turn.output for turn in conversations.ALICE_TURNS]
    )
    expect(turns.locator(".request-chip")).to_have_text(["POST /chat/{conversation_id} · 200"] * 3)
    expect(turns.nth(0)).to_contain_text("+1 background trace")
    expect(turns.nth(2)).to_have_class("tl-row turn is-error")

    # The 5 min 39 s pause is labelled, on the axis and between the rows, and skipped.
    expect(page.locator(".gap-row", has_text="5m 39s idle")).to_have_count(1)
    expect(page.locator(".axis-gap-label", has_text="5m 39s")).to_have_count(1)
    track = turns.nth(0).locator(".tl-track").bounding_box()
    bars = [turns.nth(i).locator(".turn-bar").bounding_box() for i in range(3)]
    assert track is not None and all(bar is not None for bar in bars)
    # On a linear axis each 2.4 s turn would be under 1% of 6 minutes.
    assert all(bar["width"] > track["width"] * 0.1 for bar in bars if bar), (bars, track)


def test_each_turn_shows_what_the_person_waited_for_and_their_thumbs(
    chats: LiveCollector, page: Page
) -> None:
    page.goto(chats.url + "/#/workflows/support-bot/sessions/conv-7f3a")

    turns = page.locator(".tl-row.turn")
    expect(turns).to_have_count(3)
    expect(turns.locator(".felt")).to_have_text(
        [
            "first words after 900 ms · answer took 2.4 s",
            "first words after 1.8 s · answer took 2.5 s",
            # Alice left: her request ended with her, 2.6 s in.
            "first words after 2.1 s · left after 2.6 s",
        ]
    )
    expect(turns.nth(2).locator(".felt")).to_have_class("felt cut-short")
    header = page.locator(".view-header")
    expect(header.locator(".waits")).to_have_text("first words: median 1.8 s · worst 2.1 s")
    expect(header.locator(".feedback-counts .count-up")).to_have_text("1")
    expect(header.locator(".feedback-counts .count-down")).to_have_text("2")

    # Each judgment on the turn it judges, the latest first; none on the turn not judged.
    expect(turns.nth(0).locator(".judgment")).to_have_count(1)
    expect(turns.nth(0).locator(".judgment .thumb")).to_have_attribute("aria-label", "thumbs up")
    expect(turns.nth(1).locator(".judgment")).to_have_count(0)
    judged = turns.nth(2).locator(".judgment")
    expect(judged).to_have_count(2)
    expect(judged.locator('.thumb[aria-label="thumbs down"]')).to_have_count(2)
    expect(judged.locator(".judgment-comment")).to_have_text(
        ["asked for a human twice", "I am still locked out"]
    )
    expect(judged.nth(1).locator(".judgment-label")).to_have_text("unhelpful")
    thumb = judged.first.locator(".thumb").bounding_box()
    assert thumb is not None and thumb["width"] >= 10 and thumb["height"] >= 10
    shoot(page, "collector-felt.png")

    # The trace's own page says it too.
    turns.nth(2).click()
    expect(page.locator(".view-header .felt")).to_have_text(
        "first words after 2.1 s · left before the end"
    )
    expect(page.locator(".view-header .judgment")).to_have_count(2)


def test_the_list_sorts_by_the_longest_wait_and_keeps_thumbs_down(
    chats: LiveCollector, page: Page
) -> None:
    page.goto(chats.url + "/")
    items = page.locator(".session-item[data-session-id]")
    alice_asked, bob_asked = "How do I reset my password?", "What are your opening hours?"
    titles = items.locator(".session-title")
    expect(titles).to_have_text([alice_asked, bob_asked, "Is the service down?"])  # latest first
    alice = page.locator('[data-session-id="conv-7f3a"]')
    expect(alice.locator(".waits")).to_have_text("first words: median 1.8 s · worst 2.1 s")
    expect(alice.locator(".feedback-counts")).to_have_text("12")
    expect(page.locator('[data-session-id="conv-old"] .waits')).to_have_count(0)

    page.locator("#sort").select_option("wait")
    # Bob waited longest (3.2 s); the old session measured nothing, so it has no place.
    expect(titles).to_have_text([bob_asked, alice_asked])
    page.locator("#f-negative").check()
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-session-id", "conv-7f3a")
    page.locator("#sort").select_option("recent")
    expect(items).to_have_count(1)
    page.locator("#f-negative").uncheck()
    expect(items).to_have_count(3)


def test_a_turn_shows_span_kinds_and_an_llm_calls_messages(
    chats: LiveCollector, page: Page
) -> None:
    page.goto(chats.url + "/#/workflows/support-bot/sessions/conv-7f3a")
    page.locator(".tl-row.turn").first.click()

    expect(page.locator(".trace-conv .msg-in .msg-text")).to_have_text(
        "How do I reset my password?"
    )
    spans = page.locator(".span-row")
    expect(spans.locator(".kind-badge")).to_have_text(["CHAIN", "RETRIEVER", "LLM", "TOOL"])
    llm = page.locator(".span-row", has_text="llm.chat")
    expect(llm.locator(".bar")).to_have_class("bar kind-llm")
    llm.click()

    bubbles = page.locator(".details .bubble")
    expect(bubbles.locator(".bubble-role")).to_have_text(["system", "user", "assistant"])
    expect(bubbles.nth(1).locator(".bubble-text")).to_have_text("How do I reset my password?")
    expect(bubbles.nth(2).locator(".bubble-text")).to_have_text(conversations.ALICE_TURNS[0].output)


# ---------------------------------------------------------------- workflows


def timed_turns(
    collector: LiveCollector,
    session: str,
    starts_ms: list[float],
    *,
    length_ms: float = 300,
    names: list[str] | None = None,
    workflow: str = "travel-agent",
) -> None:
    """One app's turns of a session, starting at these offsets, each with its name as
    input (named "turn N" unless told)."""
    base = time.time_ns() - 300 * 1_000_000_000
    names = names or [f"turn {index}" for index in range(len(starts_ms))]
    send(
        collector,
        *[
            otlp.span(
                name,
                base_ns=base,
                start_ms=start,
                duration_ms=length_ms,
                attributes={"session.id": session, "input.value": name},
            )
            for name, start in zip(names, starts_ms, strict=True)
        ],
        service=workflow,
    )


def conversation(
    collector: LiveCollector, workflow: str, session: str, *names: str, at_s: float = 0
) -> None:
    """One app's turns of a conversation, a second apart."""
    starts = [(at_s + index) * 1000 for index in range(len(names))]
    timed_turns(collector, session, starts, names=list(names), workflow=workflow)


def test_one_session_id_in_two_workflows_is_two_sessions_on_the_page(
    collector: LiveCollector, page: Page
) -> None:
    conversation(collector, "fastapi-chat", "conv-1", "fastapi: hello", "fastapi: again")
    conversation(collector, "django-chat", "conv-1", "django: hello", at_s=5)
    conversation(collector, "django-chat", "conv-2", "django: only here", at_s=8)
    page.goto(collector.url + "/")

    items = page.locator("#sessions .session-item[data-session-id='conv-1']")
    expect(items).to_have_count(2)
    page.locator("#sessions [data-workflow='django-chat'][data-session-id='conv-1']").click()
    expect(page).to_have_url(collector.url + "/#/workflows/django-chat/sessions/conv-1")
    expect(page.locator(".tl-row.turn .tl-name")).to_have_text(["django: hello"])
    expect(page.locator(".view-header .crumbs")).to_contain_text("django-chat")
    expect(page.locator("#sessions .session-item.selected")).to_have_count(1)
    expect(page.locator("#sessions .session-item.selected")).to_have_attribute(
        "data-workflow", "django-chat"
    )

    page.locator("#f-workflow").select_option("fastapi-chat")
    expect(page.locator("#sessions .session-item[data-session-id]")).to_have_count(1)
    expect(items).to_have_attribute("data-workflow", "fastapi-chat")
    items.click()
    expect(page.locator(".tl-row.turn .tl-name")).to_have_text(["fastapi: hello", "fastapi: again"])

    # A link from before, naming only the id: a choice when two workflows have it...
    page.goto(collector.url + "/#/sessions/conv-1")
    choices = page.locator(".choices .session-item")
    expect(choices).to_have_count(2)
    choices.locator("xpath=self::*[@data-workflow='fastapi-chat']").click()
    expect(page).to_have_url(collector.url + "/#/workflows/fastapi-chat/sessions/conv-1")
    expect(page.locator(".tl-row.turn")).to_have_count(2)
    # ... and the session itself, at its own address, when only one has it.
    page.goto(collector.url + "/#/sessions/conv-2")
    expect(page).to_have_url(collector.url + "/#/workflows/django-chat/sessions/conv-2")
    expect(page.locator(".tl-row.turn .tl-name")).to_have_text(["django: only here"])


# ---------------------------------------------------------------- time axis


def visible_axis_labels(page: Page) -> list[list[tuple[str, float, float]]]:
    """Per axis on the page, its shown labels as (text, left, right), left to right."""
    axes: list[list[tuple[str, float, float]]] = page.evaluate(
        """() => [...document.querySelectorAll(".axis-ticks")].map((ticks) =>
            [...ticks.querySelectorAll(".tick-label, .axis-gap-label")]
              .filter((label) => getComputedStyle(label).visibility !== "hidden")
              .map((label) => {
                const box = label.getBoundingClientRect();
                return [label.textContent, box.left, box.right];
              }))"""
    )
    return [sorted(axis, key=lambda label: label[1]) for axis in axes]


def assert_no_overlap(page: Page, what: str) -> None:
    # As painted: a layout change (a scroll bar, a font) is decluttered by the
    # ResizeObserver before the next frame, which the person sees.
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    axes = visible_axis_labels(page)
    assert axes, what
    for labels in axes:
        assert len(labels) >= 2, (what, labels)
        for before, after in itertools.pairwise(labels):
            assert before[2] <= after[1], (what, before, after)


#: Turn start times (ms) and length: the spacings that printed "+738 ms" over "+891 ms".
SPACINGS = {
    "close": ([0, 150, 300, 450, 600, 738, 891, 1040, 1190, 1350, 1500, 1650], 60),
    "reported": ([0, 120, 738, 891, 1300, 2100, 2250], 90),
    "bursts": ([0, 90, 200, 9000, 9080, 9200, 9290, 60000, 60100, 60150], 40),
}


@pytest.mark.parametrize("spacing", sorted(SPACINGS))
def test_time_axis_labels_never_overlap(collector: LiveCollector, page: Page, spacing: str) -> None:
    starts, length = SPACINGS[spacing]
    timed_turns(collector, f"axis-{spacing}", starts, length_ms=length)
    for width in (1440, 1024, 760):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(collector.url + f"/#/sessions/axis-{spacing}")
        expect(page.locator(".tl-row.turn")).to_have_count(len(starts))
        assert_no_overlap(page, f"{spacing} at {width} px")
    # Narrowing the window hides labels that no longer fit, without a reload.
    page.set_viewport_size({"width": 1440, "height": 900})
    page.wait_for_timeout(100)
    page.set_viewport_size({"width": 700, "height": 900})
    page.wait_for_timeout(100)
    assert_no_overlap(page, f"{spacing} resized to 700 px")
    shoot(page, f"collector-axis-{spacing}.png")
