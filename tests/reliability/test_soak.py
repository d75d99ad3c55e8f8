"""Nothing lost, nothing stuck: steady load into the local collector, then count.

The served app runs under a real server and exports to ``neatlogs-web serve``
(the collector, SQLite behind it). After a warm-up, a few clients chat for
the soak's length, starting a new session every few turns. Then: every span
sent is stored, and the app's RSS, threads and asyncio tasks did not grow.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.report import record
from tests.reliability.scale import SCALE
from tests.reliability.serving import SERVED_ASGI, SERVED_WSGI, SPANS_PER_TURN, serve
from tests.servers import ROOT, free_port, wait_until_up

CLIENTS = 4
TURNS_PER_SESSION = 10
PAUSE_S = 0.005
# Allocator noise allowed between two idle points of a steady process.
RSS_SLACK = 8 * 2**20


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[str]:
    """``python -m neatlogs_web serve`` on a free port with a fresh database."""
    port = free_port()
    argv = [sys.executable, "-m", "neatlogs_web", "serve", "--port", str(port)]
    with (tmp_path / "collector.log").open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--db", str(tmp_path / "soak.db")], cwd=ROOT, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/api/sessions")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def stored_spans(collector: str) -> int:
    """Spans the collector stored, summed over every session and the session-less traces."""
    total, cursor = 0, None
    with httpx.Client(base_url=collector, timeout=30) as http:
        while True:
            params = {"limit": "100", **({"before": cursor} if cursor else {})}
            page = http.get("/api/sessions", params=params).json()
            total += sum(int(s["span_count"]) for s in page["sessions"])
            cursor = page["next"]
            if cursor is None:
                break
        orphans = http.get("/api/traces", params={"session": "none", "limit": "100"}).json()
    return total + sum(int(t["span_count"]) for t in orphans["traces"])


async def chat(base: str, until: float) -> int:
    """Turns made until ``until``; a new cookie jar, so a new session, every few turns."""
    turns = 0
    while time.monotonic() < until:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for _ in range(TURNS_PER_SESSION):
                response = await http.get("/turn", params={"m": f"soak-{turns}"})
                response.raise_for_status()
                turns += 1
                await asyncio.sleep(PAUSE_S)
    return turns


async def load(base: str, seconds: float, clients: int) -> int:
    until = time.monotonic() + seconds
    return sum(await asyncio.gather(*(chat(base, until) for _ in range(clients))))


def idle_stats(http: httpx.Client) -> dict[str, Any]:
    time.sleep(0.5)
    return dict(http.get("/_stats").json())


@pytest.mark.parametrize(("server", "app"), [("uvicorn", SERVED_ASGI), ("waitress", SERVED_WSGI)])
def test_soak_loses_nothing_and_grows_nothing(
    server: str, app: str, collector: str, tmp_path: Path
) -> None:
    env = {"NEATLOGS_ENDPOINT": collector, "NEATLOGS_SECRET_KEY": "soak"}
    warmup_s = max(2.0, SCALE.soak_s / 8)
    with serve(server, app, env, tmp_path / "server.log") as served:
        with httpx.Client(base_url=served.base, timeout=30) as http:
            # Warm up with more clients than the soak has, so that pools which start
            # threads lazily reach their size before the first reading.
            turns = asyncio.run(load(served.base, warmup_s, 2 * CLIENTS))
            start = idle_stats(http)
            turns += asyncio.run(load(served.base, SCALE.soak_s, CLIENTS))
            end = idle_stats(http)
        served.stop()
    sent = turns * SPANS_PER_TURN
    deadline = time.monotonic() + 30
    stored = stored_spans(collector)
    while stored < sent and time.monotonic() < deadline:
        time.sleep(0.5)
        stored = stored_spans(collector)
    export = end["export"]
    figures = {
        "seconds": SCALE.soak_s,
        "turns": turns,
        "spans_sent": sent,
        "spans_stored": stored,
        "spans_dropped": export["spans_dropped"],
        "spans_failed": export["spans_failed"],
        "rss_mib_start": round(start["rss"] / 2**20, 1),
        "rss_mib_end": round(end["rss"] / 2**20, 1),
        "threads_start": start["threads"],
        "threads_end": end["threads"],
        "tasks_start": start["tasks"],
        "tasks_end": end["tasks"],
    }
    record("soak", server, **figures)
    print(f"\n{server}: {figures}")
    assert stored == sent
    assert end["rss"] - start["rss"] <= max(RSS_SLACK, start["rss"] // 10), figures
    assert end["threads"] <= start["threads"], figures
    assert end["tasks"] <= start["tasks"], figures
