"""The timeline page in a real browser (Debian's chromium, driven by Playwright).

A seeded run is loaded the way a developer would look at it: sessions list, one session's
turns, one trace's spans, one span's attributes. Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from playwright.sync_api import Browser, Page, expect

from tests.collector import otlp_data as otlp
from tests.collector.conftest import LiveCollector

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
    expect(page).to_have_url(seeded.url + "/#/sessions/chat-alice%2Fweb%3A1")
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
