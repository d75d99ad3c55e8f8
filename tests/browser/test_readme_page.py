"""The README's frontend page as a person pastes it: ``index.html``, ``chat.js``, an API.

The page and its module are served, unchanged but for the two origins, from
one port of 127.0.0.1; the README's FastAPI or Flask API from another,
exporting to a real local collector. A person types two messages into the
form; the page shows each reply, and the collector shows one session of two
turns, each with what was said and what was answered.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.collector.live import LiveCollector
from tests.readme import readme_frontend_snippets
from tests.servers import run_example

PAGE_ORIGIN = "http://localhost:5173"  # as the README names them
API_ORIGIN = "http://localhost:8000"
SERVERS = {
    "fastapi": ["uvicorn", "app:app", "--port", "{port}", "--no-access-log"],
    "flask": ["waitress", "--listen=127.0.0.1:{port}", "app:app"],
}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static site on 127.0.0.1: the folder it serves and its origin."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def origins(text: str, old: str, new: str) -> str:
    assert old in text, f"the README snippet no longer names {old}"
    return text.replace(old, new)


def turns_of(collector: LiveCollector, count: int) -> list[dict[str, Any]]:
    """The turns of the collector's only session, once ``count`` of them arrived."""
    deadline = time.monotonic() + 15
    while True:
        sessions = collector.get("/api/sessions").json()["sessions"]
        if len(sessions) == 1:
            traces = collector.get(f"/api/sessions/{sessions[0]['session_id']}").json()
            turns = [trace for trace in traces["traces"] if trace["turn"]]
            if len(turns) >= count or time.monotonic() > deadline:
                return turns
        assert time.monotonic() < deadline, sessions
        time.sleep(0.1)


@pytest.mark.parametrize("api", SERVERS)
def test_the_readme_page_chats_and_each_turn_records_input_and_output(
    api: str, browser: Browser, page_site: tuple[Path, str], tmp_path: Path
) -> None:
    root, page_origin = page_site
    snippets = readme_frontend_snippets()
    app = tmp_path / "api"
    app.mkdir()
    (app / "app.py").write_text(origins(snippets[api], PAGE_ORIGIN, page_origin))
    with LiveCollector(tmp_path / "spans.db") as collector:
        env = {
            "NEATLOGS_ENDPOINT": collector.url,
            "NEATLOGS_SECRET_KEY": "readme-page-test-key",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "PYTHONPATH": str(app),
        }
        with run_example(SERVERS[api], env, health_path="/neatlogs-session.js") as base:
            (root / "index.html").write_text(snippets["html"])
            (root / "chat.js").write_text(origins(snippets["page"], API_ORIGIN, base))
            page = browser.new_page()
            try:
                page.goto(page_origin + "/index.html")
                for message in ("hello", "and again"):
                    page.fill("input[name=message]", message)
                    page.click("button")
                    page.wait_for_function(
                        "m => document.getElementById('log').textContent.includes(m)",
                        arg=f"You said: {message}\n",
                    )
                shown = page.text_content("#log")
            finally:
                page.close()
            turns = turns_of(collector, 2)
    assert shown == "> hello\nYou said: hello\n> and again\nYou said: and again\n"
    assert sorted((turn["input"], turn["output"]) for turn in turns) == [
        ("and again", "You said: and again"),
        ("hello", "You said: hello"),
    ]
