"""Regenerate docs/screenshots/*.png: `python -m tests.collector.screenshots`.

Seeds a collector on loopback with the conversations the page tests use, then takes
the sessions list, one session and one trace (its LLM call open) in headless Chromium.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.collector import conversations
from tests.collector.live import LiveCollector

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir, LiveCollector(Path(workdir) / "c.db") as live:

        def post(body: bytes) -> None:
            response = httpx.post(
                live.url + "/v1/traces",
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
            response.raise_for_status()

        conversations.seed(post, now_ns=time.time_ns())
        session = live.get("/api/sessions/conv-7f3a", workflow="support-bot").json()
        first_turn = session["traces"][0]["trace_id"]
        trace = live.get(f"/api/traces/{first_turn}").json()
        llm = next(span["span_id"] for span in trace["spans"] if span["ai_kind"] == "LLM")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 800})
            shots = [
                ("sessions.png", "/#/", ".session-item[data-session-id]"),
                ("session.png", "/#/workflows/support-bot/sessions/conv-7f3a", ".tl-row.turn"),
                ("trace.png", f"/#/traces/{first_turn}/{llm}", ".details .bubble"),
            ]
            for name, route, ready in shots:
                page.goto(live.url + route)
                page.locator(ready).first.wait_for()
                page.wait_for_timeout(300)
                page.screenshot(path=str(OUT / name))
                print(OUT / name)
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
