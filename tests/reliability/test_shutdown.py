"""SIGTERM: every queued span flushed to a healthy receiver, and a bounded exit from any other.

Each server ends a process its own way: uvicorn re-raises the signal after its
graceful stop (no ``atexit``), gunicorn workers leave through ``sys.exit``,
waitress installs no handler at all, and granian's WSGI workers, started by
``multiprocessing``, leave by ``os._exit`` once their main thread is done
(no ``atexit`` either, and granian's own SIGTERM handler). With a healthy
receiver, the schedule delay is so long that nothing leaves before the signal
except full batches, so what arrives was flushed on the way out. With a
receiver that is down, never answers, is slow or answers 500 or 429, the
process must still exit within ``init(shutdown_timeout_s=...)`` of its own
stop, however many spans are queued.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.faulty_receivers import FAULTS
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.reliability.report import record
from tests.reliability.scale import SCALE
from tests.reliability.serving import SERVED_ASGI, SERVED_WSGI, SPANS_PER_TURN, Served, serve

CONCURRENCY = 8
CASES = [
    ("uvicorn", SERVED_ASGI),
    ("gunicorn-uvicorn", SERVED_ASGI),
    ("gunicorn-sync", SERVED_WSGI),
    ("gunicorn-gthread", SERVED_WSGI),
    ("waitress", SERVED_WSGI),
    ("granian-wsgi", SERVED_WSGI),
]
APPS = dict(CASES)
#: The long run measures init()'s default deadline; the quick one a shorter one.
SHUTDOWN_TIMEOUT_S = 5.0 if SCALE.name == "long" else 2.0
#: What a server may add to our deadline to stop itself (gunicorn's master
#: notices its workers left, uvicorn closes its sockets).
SERVER_STOP_S = 2.5
#: Every server against every fault in the long run; a few pairs in ``make test``.
EXIT_CASES = (
    [(server, fault) for server, _ in CASES for fault in FAULTS]
    if SCALE.name == "long"
    else [
        ("uvicorn", "black hole"),
        ("uvicorn", "HTTP 500"),
        ("gunicorn-sync", "closed port"),
        ("waitress", "HTTP 429"),
        ("granian-wsgi", "black hole"),
    ]
)


def ours(spans: list[ReceivedSpan], prefix: str) -> list[ReceivedSpan]:
    """Spans of our turns: each turn's root carries its message, children their query."""
    return [
        span
        for span in spans
        if str(span.attributes.get("message", span.attributes.get("query", ""))).startswith(prefix)
    ]


def drive(served: Served, prefix: str, requests: int, workers: int) -> tuple[int, set[int]]:
    """Make at least ``requests`` turns, spread over every worker; (turns made, pids)."""

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
    return made, pids


def stop_timed(served: Served) -> tuple[int, float]:
    """SIGTERM; the exit status and the seconds until the process was gone."""
    started = time.monotonic()
    status = served.stop()
    return status, round(time.monotonic() - started, 2)


def workers_of(server: str) -> int:
    return 2 if server.startswith("gunicorn") else 1


@pytest.mark.parametrize(("server", "app"), CASES, ids=[case[0] for case in CASES])
def test_sigterm_flushes_every_queued_span(
    server: str, app: str, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    prefix = f"sigterm-{server}-"
    env = {
        "NEATLOGS_ENDPOINT": receiver.url,
        "NEATLOGS_SECRET_KEY": "shutdown-test-key",
        "RELIABILITY_SCHEDULE_DELAY_MS": "600000",
    }
    workers = workers_of(server)
    with serve(server, app, env, tmp_path / "server.log") as served:
        made, pids = drive(served, prefix, SCALE.shutdown_requests, workers)
        before = len(ours(receiver.spans, prefix))
        status, exit_s = stop_timed(served)
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
        exit_s=exit_s,
    )
    record("exit", server, receiver="healthy", exit_s=exit_s)
    assert before < expected, "spans left before SIGTERM: the flush was not what delivered them"
    assert len(pids) == workers, "every worker had spans to flush"
    assert lost == 0, f"{server} lost {lost} of {expected} spans at SIGTERM:\n{served.log()}"


@pytest.mark.parametrize(("server", "fault"), EXIT_CASES, ids=[f"{s}-{f}" for s, f in EXIT_CASES])
def test_sigterm_exit_is_bounded_whatever_the_receiver_does(
    server: str, fault: str, tmp_path: Path
) -> None:
    with FAULTS[fault]() as endpoint:
        env = {
            "NEATLOGS_ENDPOINT": endpoint,
            "NEATLOGS_SECRET_KEY": "shutdown-test-key",
            "RELIABILITY_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
        }
        with serve(server, APPS[server], env, tmp_path / "server.log") as served:
            drive(served, f"exit-{server}-", SCALE.shutdown_requests, workers_of(server))
            status, exit_s = stop_timed(served)
    record("exit", server, receiver=fault, exit_s=exit_s)
    bound = SHUTDOWN_TIMEOUT_S + SERVER_STOP_S
    assert exit_s <= bound, f"{server} took {exit_s} s to exit against {fault}:\n{served.log()}"
    assert status in (0, -15), served.log()
    # Told once, while serving (the export failed then) or in the shutdown line.
    told = "at shutdown" in served.log() or "could not export" in served.log()
    assert told or fault.startswith("slow"), f"nothing told the operator:\n{served.log()}"
