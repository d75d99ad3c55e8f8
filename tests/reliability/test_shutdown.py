"""SIGTERM flushes what is queued: 0 spans lost when the receiver is healthy.

Each server ends a process its own way: uvicorn re-raises the signal after its
graceful stop (no ``atexit``), gunicorn workers leave through ``sys.exit``,
waitress installs no handler at all. The schedule delay is so long that
nothing leaves before the signal except full batches, so what arrives was
flushed on the way out.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.reliability.report import record
from tests.reliability.scale import SCALE
from tests.reliability.serving import SERVED_ASGI, SERVED_WSGI, SPANS_PER_TURN, serve

CONCURRENCY = 8
CASES = [
    ("uvicorn", SERVED_ASGI),
    ("gunicorn-uvicorn", SERVED_ASGI),
    ("gunicorn-sync", SERVED_WSGI),
    ("gunicorn-gthread", SERVED_WSGI),
    ("waitress", SERVED_WSGI),
]


def ours(spans: list[ReceivedSpan], prefix: str) -> list[ReceivedSpan]:
    """Spans of our turns: each turn's root carries its message, children their query."""
    return [
        span
        for span in spans
        if str(span.attributes.get("message", span.attributes.get("query", ""))).startswith(prefix)
    ]


@pytest.mark.parametrize(("server", "app"), CASES, ids=[case[0] for case in CASES])
def test_sigterm_flushes_every_queued_span(
    server: str, app: str, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    requests = SCALE.shutdown_requests
    prefix = f"sigterm-{server}-"
    env = {
        "NEATLOGS_ENDPOINT": receiver.url,
        "NEATLOGS_SECRET_KEY": "shutdown-test-key",
        "RELIABILITY_SCHEDULE_DELAY_MS": "600000",
    }
    workers = 2 if server.startswith("gunicorn") else 1
    with serve(server, app, env, tmp_path / "server.log") as served:

        def turn(index: int) -> int:
            # A new connection each time, so that every gunicorn worker gets some.
            response = httpx.get(
                f"{served.base}/turn",
                params={"m": f"{prefix}{index}"},
                headers={"Connection": "close"},
                timeout=30,
            )
            assert response.status_code == 200
            return int(response.json()["pid"])

        pids: set[int] = set()
        made = 0
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            while made < requests or (len(pids) < workers and made < 20 * requests):
                pids.update(pool.map(turn, range(made, made + CONCURRENCY)))
                made += CONCURRENCY
        before = len(ours(receiver.spans, prefix))
        status = served.stop()
    expected = made * SPANS_PER_TURN
    arrived = ours(receiver.wait_for(lambda s: len(ours(s, prefix)) >= expected), prefix)
    lost = expected - len(arrived)
    record(
        "shutdown",
        server,
        requests=made,
        workers_hit=len(pids),
        spans_expected=expected,
        spans_before_sigterm=before,
        spans_flushed_at_exit=len(arrived) - before,
        spans_lost=lost,
        exit_status=status,
    )
    assert before < expected, "spans left before SIGTERM: the flush was not what delivered them"
    assert len(pids) == workers, "every worker had spans to flush"
    assert lost == 0, f"{server} lost {lost} of {expected} spans at SIGTERM:\n{served.log()}"
