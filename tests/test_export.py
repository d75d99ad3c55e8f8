"""Export never holds the app hostage: honest flushes, bounded shutdown, one clear voice.

Every scenario exports over OTLP/HTTP to a real receiver on 127.0.0.1 (healthy
or faulty, see ``tests/faulty_receivers.py``) and is judged on what arrives,
what ``flush()`` / ``shutdown()`` return and how long they take, and what the
operator reads in the log.
"""

from __future__ import annotations

import json
import logging
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

import neatlogs_web
from neatlogs_web._export import exporter as _export
from neatlogs_web._tracing import setup as sdk
from tests.faulty_receivers import (
    FAULTS,
    Answer,
    closed_port,
    endless_body,
    gzip_bomb,
    hostile,
    trickle,
)
from tests.otlp_receiver import OTLPReceiver
from tests.servers import ROOT

#: What a bounded call may take beyond its limit on a busy machine.
MARGIN_S = 0.5
SPANS_PER_TURN = 2


pytestmark = pytest.mark.usefixtures("fresh_global_provider")


def init(endpoint: str, **options: object) -> None:
    neatlogs_web.init(
        endpoint=endpoint,
        flush_on_sigterm=False,
        set_global_provider=False,
        **options,  # type: ignore[arg-type]
    )


def turns(count: int, prefix: str = "turn") -> None:
    for index in range(count):
        with neatlogs_web.trace(f"{prefix}-{index}"), neatlogs_web.trace("child"):
            pass


def warnings_of(caplog: pytest.LogCaptureFixture, name: str = "neatlogs_web") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelname == "WARNING"]


def exporter_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_flush_returns_false_within_its_timeout_whatever_the_receiver_does(fault: str) -> None:
    with FAULTS[fault]() as url:
        init(url, shutdown_timeout_s=0.5)
        turns(50)
        started = time.monotonic()
        assert neatlogs_web.flush(timeout_s=1.0) is False
        assert time.monotonic() - started < 1.0 + MARGIN_S
        neatlogs_web.shutdown()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_shutdown_returns_within_shutdown_timeout_whatever_the_receiver_does(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FAULTS[fault]() as url:
        init(url, shutdown_timeout_s=1.0)
        turns(300)
        started = time.monotonic()
        neatlogs_web.shutdown()
        took = time.monotonic() - started
    assert took < 1.0 + MARGIN_S, f"shutdown took {took:.1f} s against {fault}"
    [lost] = [line for line in warnings_of(caplog) if "at shutdown" in line]
    assert "within shutdown_timeout_s (1 s)" in lost


def test_flush_is_true_only_when_every_span_was_accepted(receiver: OTLPReceiver) -> None:
    # A short export timeout: the exporter's retries of a 500 end within the flush.
    init(receiver.url, schedule_delay_ms=60_000, export_timeout_s=1.0)
    turns(10, "accepted")
    assert neatlogs_web.flush(timeout_s=5) is True
    # True means already received: no waiting for stragglers.
    assert len([s for s in receiver.spans if s.name.startswith("accepted")]) == 10
    receiver.status = 500
    turns(10, "refused")
    assert neatlogs_web.flush(timeout_s=5) is False
    assert neatlogs_web.stats()["export"]["spans_failed"] == 10 * SPANS_PER_TURN
    receiver.status = 200
    turns(1, "again")
    assert neatlogs_web.flush(timeout_s=5) is True


def test_a_flush_asked_for_as_the_previous_one_ends_still_exports(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper that flushed may still be running after its last look at the
    queue: a flush asked for then must not be left to it, or its spans wait
    for the schedule delay (a minute here) and the flush times out."""
    init(receiver.url, schedule_delay_ms=60_000)
    pipeline = sdk.active_pipeline()
    assert pipeline is not None and pipeline.processor is not None
    batch = pipeline.processor._batch
    real_force_flush = batch.force_flush
    looked_last, go_on = threading.Event(), threading.Event()

    def force_flush_then_linger(timeout_millis: int | None = None) -> bool:
        done = real_force_flush(timeout_millis)
        if not looked_last.is_set():  # the first helper only
            looked_last.set()
            go_on.wait(10)
        return done

    monkeypatch.setattr(batch, "force_flush", force_flush_then_linger)
    turns(1, "first")
    assert neatlogs_web.flush(timeout_s=5) is True
    assert looked_last.wait(5)
    turns(1, "second")
    assert neatlogs_web.flush(timeout_s=0) is False  # asked for; not waited for
    go_on.set()
    spans = receiver.wait_for(lambda s: any(x.name == "second-0" for x in s), timeout_s=5)
    assert [s.name for s in spans if s.name.startswith("second")] == ["second-0"]


def test_completion_markers_arrive_with_their_root_in_one_flush(receiver: OTLPReceiver) -> None:
    init(receiver.url, api_key="key", schedule_delay_ms=60_000)  # a key: neatlogs backend
    with neatlogs_web.session("s-1"):
        turns(3)
    assert neatlogs_web.flush(timeout_s=5) is True
    spans = receiver.spans  # no waiting: the flush was honest
    roots = {s.span_id: s for s in spans if s.name.startswith("turn-")}
    markers = [s for s in spans if s.name == "neatlogs.trace.complete"]
    assert sorted(m.parent_span_id for m in markers) == sorted(roots)
    for marker in markers:
        root = roots[marker.parent_span_id]
        assert marker.trace_id == root.trace_id
        assert marker.attributes["session.id"] == "s-1"
        assert marker.attributes["neatlogs.internal"] is True
    export = neatlogs_web.stats()["export"]
    assert export["markers_sent"] == 3
    assert export["spans_exported"] == 3 * SPANS_PER_TURN


class _Recorder(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.name)


def test_completion_markers_never_reenter_the_provider(receiver: OTLPReceiver) -> None:
    provider = neatlogs_web.init(
        "key", receiver.url, flush_on_sigterm=False, set_global_provider=False
    )
    recorder = _Recorder()
    provider.add_span_processor(recorder)
    turns(2)
    assert neatlogs_web.flush(timeout_s=5) is True
    assert len([s for s in receiver.spans if s.name == "neatlogs.trace.complete"]) == 2
    assert "neatlogs.trace.complete" not in recorder.started + recorder.ended


def test_drops_are_exact_and_the_bsp_environment_variables_are_honoured(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    receiver.delay_s = 1.0  # the first batch holds the export thread while spans pile up
    init(receiver.url)
    made = 20
    for index in range(made):
        with neatlogs_web.trace(f"span-{index}"):
            pass
    receiver.delay_s = 0.0
    assert neatlogs_web.flush(timeout_s=10) is True
    export = neatlogs_web.stats()["export"]
    # At most 4 queued and one batch of 2 in flight: the rest was refused, and counted.
    assert export["spans_dropped"] >= made - 4 - 2
    assert len(receiver.spans) == made - export["spans_dropped"] == export["spans_exported"]
    drops = [line for line in warnings_of(caplog) if "dropped" in line]
    assert len(drops) == 1 and "4 were already waiting" in drops[0]


def test_one_warning_per_kind_of_trouble_and_one_line_when_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with closed_port() as url:
        init(url, schedule_delay_ms=60_000, export_timeout_s=1.0)
        for _ in range(3):
            turns(5)
            assert neatlogs_web.flush(timeout_s=5) is False
        [refused] = warnings_of(caplog)
        assert f"{url}/v1/traces" in refused
        assert "connection refused" in refused
        assert "could not export 10 spans" in refused
        assert "NEATLOGS_ENDPOINT" in refused and 'exporter="none"' in refused
        with OTLPReceiver(int(url.rsplit(":", 1)[1])) as receiver:
            receiver.status = 500
            turns(5)
            assert neatlogs_web.flush(timeout_s=5) is False
            assert "HTTP 500" in warnings_of(caplog)[-1]
            # flush() answered at the first failure; let the failing export settle
            # (its retries end within export_timeout_s) before the receiver recovers.
            deadline = time.monotonic() + 10
            while neatlogs_web.stats()["export"]["spans_pending"] and time.monotonic() < deadline:
                time.sleep(0.05)
            receiver.status = 200
            for _ in range(2):
                turns(5)
                assert neatlogs_web.flush(timeout_s=5) is True
    assert len(warnings_of(caplog)) == 2
    recovered = [r.getMessage() for r in caplog.records if "works again" in r.getMessage()]
    export = neatlogs_web.stats()["export"]
    assert export["spans_failed"] == 40 and export["export_failures"] == 4
    assert len(recovered) == 1 and "40 spans were lost" in recovered[0]
    assert exporter_lines(caplog) == [], "the OTLP exporter's own lines reached the log"


@pytest.mark.parametrize(
    ("fault", "what"),
    [
        ("black hole", "no answer within 0.5 s"),
        ("HTTP 429", "HTTP 429"),
        ("HTTP 500", "HTTP 500"),
        ("HTTP 401", "HTTP 401 Unauthorized: check the credentials, init(api_key=...)"),
        ("closed port", "connection refused"),
    ],
)
def test_the_warning_says_what_happened(
    fault: str, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FAULTS[fault]() as url:
        init(url, export_timeout_s=0.5, schedule_delay_ms=60_000, shutdown_timeout_s=0.5)
        turns(3)
        assert neatlogs_web.flush(timeout_s=3) is False
        neatlogs_web.shutdown()
    failed = [line for line in warnings_of(caplog) if "could not export" in line]
    assert len(failed) == 1 and what in failed[0], warnings_of(caplog)
    assert exporter_lines(caplog) == []


def test_the_local_default_endpoint_names_the_local_collector(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default is 127.0.0.1:4318, where a developer's own collector may run:
    # move the default to a port nothing listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(_export, "LOCAL_ENDPOINT", closed)
    monkeypatch.delenv("NEATLOGS_ENDPOINT", raising=False)
    caplog.set_level(logging.INFO)
    neatlogs_web.init(
        flush_on_sigterm=False,
        set_global_provider=False,
        export_timeout_s=0.5,
        shutdown_timeout_s=0.5,
    )
    [started] = [r.getMessage() for r in caplog.records if r.name == "neatlogs_web"]
    assert f"spans go to {closed}/v1/traces" in started
    turns(1)
    assert neatlogs_web.flush(timeout_s=3) is False
    [refused] = warnings_of(caplog)
    assert "connection refused" in refused and "`neatlogs-web serve`" in refused


def test_startup_says_where_spans_go(
    receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    init(receiver.url)
    lines = [r.getMessage() for r in caplog.records if r.name == "neatlogs_web"]
    assert lines == [f"neatlogs_web: spans go to {receiver.url}/v1/traces (OTLP/HTTP)"]


def test_trace_before_init_warns_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sdk, "_warned_before_init", False)  # once per process
    for _ in range(3):
        with neatlogs_web.trace("too early") as span:
            assert not span.is_recording()
    lines = warnings_of(caplog)
    assert len(lines) == 1
    assert "call neatlogs_web.init() at startup" in lines[0]


def test_bad_batching_options_say_what_to_change() -> None:
    with pytest.raises(ValueError, match="must not exceed max_queue_size"):
        neatlogs_web.init(exporter="none", max_queue_size=10, max_export_batch_size=20)
    with pytest.raises(ValueError, match="shutdown_timeout_s"):
        neatlogs_web.init(exporter="none", shutdown_timeout_s=-1)


def test_an_export_timeout_that_is_not_a_positive_number_stops_init(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exporter and the deadline put on it read the same timeout: one that
    means nothing stops the app at startup, named, instead of a guess."""
    with pytest.raises(ValueError, match="export_timeout_s must be more than 0 seconds"):
        init("http://127.0.0.1:4318", export_timeout_s=0)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "ten")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_TRACES_TIMEOUT must be a number"):
        init("http://127.0.0.1:4318")
    assert sdk.active_pipeline() is None


def test_a_span_ended_by_a_finalizer_inside_the_export_counters_does_not_deadlock(
    receiver: OTLPReceiver,
) -> None:
    """The garbage collector runs wherever Python allocates, also while the export
    counters are held: an abandoned stream's ``finally:`` that ends a span there
    comes back to them on the same thread."""
    import gc

    init(receiver.url)
    pipeline = sdk.active_pipeline()
    assert pipeline is not None and pipeline.processor is not None
    stats = pipeline.processor.stats

    class EndsASpanWhenCollected:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            with neatlogs_web.trace("finalizer"):
                pass

    def count_while_collecting() -> None:
        EndsASpanWhenCollected()
        real_pending = type(stats).pending

        def pending_while_collecting(self: object) -> int:
            gc.collect()  # as an allocation inside the lock could
            return real_pending(self)  # type: ignore[arg-type]

        type(stats).pending = pending_while_collecting  # type: ignore[method-assign]
        try:
            with stats._settled_or_failed:
                stats.pending()
        finally:
            type(stats).pending = real_pending  # type: ignore[method-assign]

    worker = threading.Thread(target=count_while_collecting, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "ending a span inside the export counters deadlocked"
    assert neatlogs_web.flush(timeout_s=5)
    assert any(s.name == "finalizer" for s in receiver.wait_for(lambda s: len(s) >= 1))


def test_after_shutdown_the_apps_own_provider_flushes_without_waiting_on_us() -> None:
    """init() joined the app's provider; after shutdown() the export processor it left
    there counts nothing more, so the app's own force_flush is not held up."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    app_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    otel_trace.set_tracer_provider(provider)
    neatlogs_web.init(exporter=InMemorySpanExporter(), flush_on_sigterm=False)
    neatlogs_web.shutdown()

    otel_trace.get_tracer("app").start_span("after").end()
    started = time.monotonic()
    assert provider.force_flush(1500) is True
    assert time.monotonic() - started < MARGIN_S
    assert [span.name for span in app_spans.get_finished_spans()] == ["after"]
    provider.shutdown()


#: Against a hostile receiver: each export's deadline (longer than the trickle's
#: second between bytes, which no socket timeout then ends), and what its answer
#: may cost in peak memory (the bomb alone would take 300 MiB, twice over while joined).
HOSTILE_EXPORT_TIMEOUT_S = 2.0
HOSTILE_RSS_GROWTH_MIB = 32
#: What makes each hostile answer; whether the export counts as accepted (the
#: status was 200 in time); and what the one warning says happened.
HOSTILE: dict[str, tuple[Callable[[], Answer], bool, str]] = {
    "gzip bomb": (gzip_bomb, True, "its answer (HTTP 200) was longer than 16 KiB"),
    "endless body": (endless_body, True, "its answer (HTTP 200) was longer than 16 KiB"),
    "answer at 1 byte/s": (
        lambda: trickle(headers_first=False),
        False,
        "the receiver accepted the connection but did not finish replying",
    ),
    "body at 1 byte/s": (
        lambda: trickle(headers_first=True),
        True,
        "its answer (HTTP 200) had not ended after",
    ),
}


@pytest.mark.parametrize("answer", list(HOSTILE))
def test_a_hostile_receiver_costs_an_export_no_more_than_its_deadline_and_a_few_kib(
    answer: str,
) -> None:
    make_answer, accepted, what = HOSTILE[answer]
    with hostile(make_answer()) as receiver:
        # A fresh process, so that its peak resident size is this export's alone.
        child = subprocess.run(
            [sys.executable, "-c", _IN_A_FRESH_PROCESS, receiver.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert child.returncode == 0, child.stderr
    cost = json.loads(child.stdout)
    assert receiver.span_names == ["hostile"]
    assert cost["flushed"] is accepted, cost
    assert cost["export_s"] < HOSTILE_EXPORT_TIMEOUT_S + MARGIN_S, cost
    assert cost["peak_rss_growth_mib"] < HOSTILE_RSS_GROWTH_MIB, cost
    warnings = [line for line in child.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and what in warnings[0], child.stderr
    assert f"{receiver.url}/v1/traces" in warnings[0]


_IN_A_FRESH_PROCESS = (
    "from tests.test_export import export_one_span_and_measure; export_one_span_and_measure()"
)


def export_one_span_and_measure() -> None:
    """Export one span to ``sys.argv[1]`` and print, as JSON, what ``flush()`` said,
    how long it took, and how much the peak resident size grew meanwhile."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    neatlogs_web.init(
        endpoint=sys.argv[1],
        export_timeout_s=HOSTILE_EXPORT_TIMEOUT_S,
        schedule_delay_ms=60_000,
        shutdown_timeout_s=0.5,
        flush_on_sigterm=False,
    )
    with neatlogs_web.trace("hostile"):
        pass
    peak_before = _peak_rss()
    started = time.monotonic()
    flushed = neatlogs_web.flush(timeout_s=10)
    took = time.monotonic() - started
    growth = (_peak_rss() - peak_before) / 2**20
    print(json.dumps({"flushed": flushed, "export_s": took, "peak_rss_growth_mib": growth}))


def _peak_rss() -> int:
    """The largest resident size this process had so far, in bytes (Linux counts KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_a_receiver_that_redirects_never_gets_the_api_key_to_another_host(
    receiver: OTLPReceiver,
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", f"{receiver.url}/v1/traces")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        neatlogs_web.init(
            api_key="secret-api-key",
            endpoint=f"http://127.0.0.1:{server.server_address[1]}",
            export_timeout_s=2,
            flush_on_sigterm=False,
        )
        with neatlogs_web.trace("turn"):
            pass
        assert neatlogs_web.flush(5) is False
    finally:
        neatlogs_web.shutdown()
        server.shutdown()
        server.server_close()
    assert receiver.received.requests == []
