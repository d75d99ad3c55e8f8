"""Turns measurements into ``docs/benchmarks.md``: machine, versions, tables, targets."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
from dataclasses import dataclass, field

from benchmarks import harness
from benchmarks.collector_suite import FULL_SHAPE, CollectorResult
from benchmarks.harness import Measurement, Settings
from benchmarks.loopback import LoopbackResult
from benchmarks.turn_suite import WireFigures

PACKAGES = (
    "neatlogs-web",
    "starlette",
    "fastapi",
    "flask",
    "werkzeug",
    "uvicorn",
    "httptools",
    "itsdangerous",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-instrumentation-asgi",
    "opentelemetry-instrumentation-wsgi",
    "asgi-correlation-id",
    "starlette-context",
    "langfuse",
    "neatlogs",
)

#: Which variant is "ours" in each suite: the ratio column divides by its overhead.
OURS = {"asgi": "ours_cookie", "wsgi": "ours_cookie", "fastapi": "fastapi_ours"}

TITLES = {
    "asgi": 'ASGI, in-process (bare Starlette route returning "ok")',
    "wsgi": 'WSGI, in-process (bare Flask route returning "ok")',
    "trace": "trace() vs a raw OpenTelemetry SDK span",
    "fastapi": "FastAPI with its own telemetry on",
    "turn": "A traced turn, export included: ours against doing it by hand and peer SDKs",
}


@dataclass
class RunResults:
    settings: Settings
    quick: bool
    clock: str
    suites: dict[str, dict[str, Measurement]] = field(default_factory=dict)
    loopback: LoopbackResult | None = None
    #: What each turn-suite variant sent to the discard receiver.
    turn_wire: dict[str, WireFigures] = field(default_factory=dict)
    collector: CollectorResult | None = None
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    seconds: float = 0.0


@dataclass
class Target:
    key: str
    name: str
    measured: str
    limit: str
    #: ``None``: measured, but too noisy to compare (a reference overhead not above zero).
    passed: bool | None


def _overhead(results: RunResults, suite: str, key: str) -> float | None:
    measurement = results.suites.get(suite, {}).get(key)
    return None if measurement is None else measurement.overhead_us


def _median(results: RunResults, suite: str, key: str) -> float | None:
    measurement = results.suites.get(suite, {}).get(key)
    return None if measurement is None else measurement.median_us


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom <= 0:
        return None
    return top / bottom


def paired_ratio(top: Measurement | None, bottom: Measurement | None) -> float | None:
    """Median over rounds of ``top``'s time over ``bottom``'s in the same round."""
    if top is None or bottom is None:
        return None
    pairs = zip(top.per_round_us, bottom.per_round_us, strict=True)
    return statistics.median(a / b for a, b in pairs if b > 0)


#: Turn-suite guards (DESIGN.md): (key, our variant, peer, name, limit): ours at most
#: ``limit`` times the peer's time per turn. By hand is compared like for like: the same keys.
TURN_TARGETS = (
    ("turn_raw", "ours", "raw", "(a) by hand on the raw OpenTelemetry SDK", 1.05),
    (
        "turn_raw_one_key",
        "ours_one_key",
        "raw_one_key",
        "(a) by hand on the raw OpenTelemetry SDK, one session key each",
        1.05,
    ),
    ("turn_langfuse", "ours", "langfuse", "(b) the Langfuse SDK", 0.5),
    ("turn_neatlogs", "ours", "neatlogs_sdk", "(c) the neatlogs SDK", 0.1),
)


def _times(value: float, limit: float) -> str:
    """``1.06x``; a third decimal when two would print the limit itself."""
    text = f"{value:.2f}"
    return f"{value:.3f}x" if float(text) == limit and value != limit else f"{text}x"


def targets(results: RunResults) -> list[Target]:
    """Every target whose variants were measured in this run."""
    found: list[Target] = []

    def ratio_target(
        key: str, name: str, top: float | None, bottom: float | None, limit: float, strict: bool
    ) -> None:
        if top is None or bottom is None:
            return  # not part of this run
        bound = f"{'<' if strict else '<='} {limit}x"
        value = _ratio(top, bottom)
        if value is None:
            found.append(Target(key, name, "-", bound, None))
            return
        passed = value < limit if strict else value <= limit
        found.append(Target(key, name, _times(value, limit), bound, passed))

    loopback = results.loopback
    if loopback is not None:
        ratio_target(
            "loopback",
            "uvicorn on loopback, returning user (cookie): server CPU vs bare Starlette",
            loopback.median(loopback.cpu_us.get("ours", [])),
            loopback.median(loopback.cpu_us.get("bare", [])),
            1.20,
            strict=False,
        )
    ratio_target(
        "asgi_peer",
        "ASGI in-process, returning user (cookie): overhead vs asgi-correlation-id's",
        _overhead(results, "asgi", "ours_cookie"),
        _overhead(results, "asgi", "correlation_id"),
        0.6,
        strict=False,
    )
    turn = results.suites.get("turn", {})
    for key, mine, peer, name, limit in TURN_TARGETS:
        if mine not in turn or peer not in turn:
            continue
        value = paired_ratio(turn[mine], turn[peer])
        found.append(
            Target(
                key,
                f"A traced turn, export included: ours vs {name}",
                "-" if value is None else _times(value, limit),
                f"<= {limit}x",
                None if value is None else value <= limit,
            )
        )
    ratio_target(
        "asgi_new",
        "ASGI new session: overhead vs Starlette SessionMiddleware",
        _overhead(results, "asgi", "ours_new"),
        _overhead(results, "asgi", "starlette_session"),
        1.0,
        strict=False,
    )
    ratio_target(
        "trace",
        "trace() root with session stamping vs raw SDK span",
        _median(results, "trace", "ours_root"),
        _median(results, "trace", "raw_root"),
        1.2,
        strict=False,
    )
    collector = results.collector
    if collector is not None:
        found.append(
            Target(
                "ingest",
                "Collector ingest (OTLP protobuf, batches of 512)",
                f"{collector.ingest_spans_per_s:,.0f} spans/s",
                ">= 30,000 spans/s",
                collector.ingest_spans_per_s >= 30_000,
            )
        )
        full = collector.shape == FULL_SHAPE
        found.append(
            Target(
                "session_api",
                "Collector GET /api/sessions/{id} (first page), " + collector.shape.label,
                f"{collector.session_ms:.1f} ms",
                "<= 10 ms" + ("" if full else " (at 1,000,000 spans; this store is smaller)"),
                collector.session_ms <= 10,
            )
        )
    return found


METHOD_NOTES = (
    "- In-process drivers call the app directly (one event loop, the ASGI app awaited in "
    "a tight loop; the WSGI app called and its body consumed and closed), so the figures "
    "are the middleware's own cost, without a server or sockets.",
    "- The floor is a hand-written pure-ASGI (or WSGI) middleware that reads one header, "
    "sets a `ContextVar` and resets it. The itsdangerous row verifies a `TimestampSigner` "
    "cookie on every request: what a session middleware pays without a cache of verified "
    "tokens.",
    "- In the in-process trace() and FastAPI suites, spans go through the SDK's "
    "`BatchSpanProcessor` into an exporter that discards each batch, for ours and the peers "
    "alike: the request path is measured, encoding and sending are not. The turn suite "
    "measures those too (below).",
    "- The turn suite runs each variant in a worker process of its own (the SDKs install "
    "global providers and instrument the standard library) and drives it in-process there: "
    "a request from a returning user (session cookie) to a Starlette route whose handler "
    "opens a root span with two children. Spans go over real OTLP/HTTP (gzip protobuf) to "
    "a discard receiver on 127.0.0.1 in the parent process, which reads each body, counts "
    "its spans and answers 200 with an empty `ExportTraceServiceResponse`. A measured block "
    "is N turns in bursts of 100, each burst followed by the SDK's flush, timed on the "
    "worker's process CPU clock (all threads), so the export thread's encoding, gzip and "
    "HTTP work count; the receiver's does not. (Back to back without pauses, a request "
    "thread starts spans faster than a batch processor's export thread, which shares the "
    "GIL with it, can send them; the queue fills and drops spans, and a dropped span costs "
    "nothing to export. The spans-received column shows that none was dropped.) Ratios are "
    "medians over rounds of ours over the peer in the same round. By hand (a) is a "
    "pure-ASGI middleware copying a plain `session` cookie into a `ContextVar`, a "
    "`SpanProcessor` stamping the session at span start under the same keys as ours "
    "(`session.id` and `neatlogs.session.id` by default: the same spans on the wire, each "
    "key one more `set_attribute` and one more attribute to encode), and the SDK's "
    "`BatchSpanProcessor` with the gzip OTLP/HTTP exporter; the one-key rows compare both "
    'with `session.id` alone (ours with `session_keys="opentelemetry"`); Langfuse (b) '
    "binds the cookie's value with "
    "`propagate_attributes(session_id=...)` and opens spans with "
    "`start_as_current_observation`; the neatlogs SDK (c) binds it with "
    "`identify(session_id=...)` and opens spans with `neatlogs.trace()`. Every SDK keeps "
    "its defaults except where it sends; ours runs `init(endpoint=...)` with no API key "
    "(a generic OTLP receiver: two session keys per span, no completion markers), and the "
    "last row adds an API key (the neatlogs backend's contract). An audit hook in each "
    "worker refuses any connection off loopback.",
    "- A returning user's decision is remembered per `Cookie` header (bounded; the token's "
    "expiry, idle timeout and refresh are still checked against the clock on every request), "
    "so a returning request does no HMAC work, no parsing and no allocation beyond its "
    "binding. A new session signs one token and adds `Set-Cookie`, `Vary` and the echoed "
    "header.",
    "- With FastAPI's own telemetry on, ours costs more than in bare Starlette because "
    "there is more to stamp: FastAPI's server span, started before the middleware, gets "
    "the session when the request is bound, and every span FastAPI starts for the request "
    "(its operation spans) gets it in `on_start`. A profile puts most of the difference in "
    "the SDK's `set_attribute` (span lock, value validation), once per session key per span; "
    '`init(session_keys="opentelemetry")` stamps one key instead of two.',
)

_REQUEST_PATH_REMAINS = (
    "Beyond that floor, ours looks for the framework's request span (a turn may claim "
    "it), keeps a per-request trace so turns and their figures land on the right span, "
    "builds a `SessionBinding` with its end user, checks exclusions, preflights and a "
    "second application, guards the event loop's finalizer for abandoned streams, and "
    "falls back to a fresh session should anything of ours fail: each a call into the "
    "module whose concept it is, not a copy inlined into the adapter."
)


def _request_path_remains(results: RunResults, key: str) -> str:
    """Why a request-path guard was missed: where the least DESIGN.md asks, written
    inline, lands against the same guard in this run."""
    if key == "loopback":
        loopback = results.loopback
        floor = None
        if loopback is not None and "contract" in loopback.cpu_us:
            floor = _ratio(
                loopback.median(loopback.cpu_us["contract"]),
                loopback.median(loopback.cpu_us["bare"]),
            )
        measured = "" if floor is None else f"{floor:.2f}x the bare app in this run"
    else:
        floor = _ratio(
            _overhead(results, "asgi", "contract_floor"),
            _overhead(results, "asgi", "correlation_id"),
        )
        measured = "" if floor is None else f"{floor:.2f}x asgi-correlation-id's overhead"
    if not measured:
        return _REQUEST_PATH_REMAINS
    return (
        "The least DESIGN.md asks of a returning request, written inline (the remembered "
        "signed cookie, the server's calls run outside the request, the request's own "
        f"context, the felt-latency moments), measured {measured}. " + _REQUEST_PATH_REMAINS
    )


WHY_MISSED: dict[str, str] = {
    "asgi_new": (
        "A new session signs one id (itsdangerous `TimestampSigner`, HMAC-SHA256) and adds "
        "three response headers through a wrapped `send`; the id itself is 128 random bits."
    ),
    "trace": (
        "Stamping the session costs one SDK `set_attribute` per key (each takes the span "
        "lock and validates the value): about two thirds of the difference with the default "
        'two keys. `session_keys="opentelemetry"` (one key) halves the stamping.'
    ),
    "ingest": (
        "A profile of one 512-span request: OTLP protobuf decode nearly half, SQLite (one "
        "`executemany` of the new spans, the trace and session rows) about a quarter, the "
        "per-span summaries and the JSON of attributes the rest. Ingest is timed on the wall "
        "clock, so a busy machine shows here first: see the load average above."
    ),
    "session_api": (
        "A page reads at most `limit` trace rows through the `(session_id, start_ns, "
        "trace_id)` index, however long the session; compare the every-page row below, "
        "and the load average above: a miss here means a busy machine."
    ),
}


def _turn_remains(results: RunResults, mine: str, peer: str) -> str:
    """What this run measured of ours against ``peer``'s turn, from the turn table."""
    turn = results.suites.get("turn", {})
    ours, other = turn.get(mine), turn.get(peer)
    wire_ours, wire_other = results.turn_wire.get(mine), results.turn_wire.get(peer)
    parts = []
    if ours is not None and other is not None:
        parts.append(f"Per turn ours took {ours.median_us:.0f} µs against {other.median_us:.0f}")
        if wire_ours is not None and wire_other is not None:
            if wire_ours.flush_us is not None and wire_other.flush_us is not None:
                parts.append(
                    f"of which flushing (the export) {wire_ours.flush_us:.0f} against "
                    f"{wire_other.flush_us:.0f}"
                )
            parts.append(
                f"with {wire_ours.bytes_per_turn:,.0f} gzipped bytes a turn on the wire against "
                f"{wire_other.bytes_per_turn:,.0f}"
            )
        if ours.bytecodes is not None and other.bytecodes is not None:
            parts.append(
                f"and {ours.bytecodes:,} Python bytecodes a turn on the request thread against "
                f"{other.bytecodes:,}"
            )
    text = ", ".join(parts) + "." if parts else ""
    if peer.startswith("raw"):
        text += (
            " The same spans go on the wire, each turn with what the person waited for (four "
            "felt-latency attributes) besides; on the request thread ours also notes those "
            "moments, runs the server's calls outside the request, counts each ended span "
            "under a lock (exact drops, an honest `flush()`), finds the request's binding for "
            "each span and each turn (a turn joins the framework's request span), and "
            "resolves a signed cookie where the by-hand middleware copies a plain one."
        )
    return text


def notes(results: RunResults, found: list[Target]) -> list[str]:
    lines = list(METHOD_NOTES)
    missed = [target for target in found if target.passed is False]
    if missed:
        lines += ["", "### Missed targets: what remains and why", ""]
        pairs = {key: (mine, peer) for key, mine, peer, _name, _limit in TURN_TARGETS}
        for target in missed:
            if target.key in pairs:
                why = _turn_remains(results, *pairs[target.key])
            elif target.key in ("loopback", "asgi_peer"):
                why = _request_path_remains(results, target.key)
            else:
                why = WHY_MISSED[target.key]
            lines.append(f"- **{target.name}**: {target.measured} (limit {target.limit}). {why}")
    return lines


def _verdict(passed: bool | None) -> str:
    return "inconclusive (too noisy)" if passed is None else "pass" if passed else "FAIL"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _suite_table(suite: str, measurements: dict[str, Measurement]) -> list[str]:
    """One row per variant. For trace() the ratio is time over the raw span's; for
    the middleware suites it is overhead over our middleware's overhead."""
    per_span = suite == "trace"
    unit = "µs/span" if per_span else "µs/request"
    ratio_title = "ratio to raw" if per_span else "overhead ÷ ours"
    lines = [
        f"| variant | {unit} | measured against | overhead (µs) | {ratio_title} | spread (µs) "
        "| extra bytecodes |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    ours = measurements.get(OURS.get(suite, ""))
    ours_overhead = ours.overhead_us if ours is not None else None
    for measurement in measurements.values():
        baseline = measurements.get(measurement.variant.baseline or "")
        if per_span:
            ratio = _ratio(measurement.median_us, baseline.median_us) if baseline else None
        else:
            ratio = _ratio(measurement.overhead_us, ours_overhead)
        extra = measurement.extra_bytecodes(baseline)
        lines.append(
            f"| {measurement.variant.label} | {_fmt(measurement.median_us)} "
            f"| {baseline.variant.label if baseline else '-'} "
            f"| {_fmt(measurement.overhead_us)} | {_fmt(ratio)} "
            f"| {_fmt(measurement.spread_us)} | {'-' if extra is None else f'{extra:+,}'} |"
        )
    return lines


def render(results: RunResults) -> str:
    settings = results.settings
    turn_settings = harness.for_suite("turn", settings)
    load = results.load_before
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks`); do not edit by hand. "
        "`python -m benchmarks --quick` is a smoke run of under a minute, and `--only` picks "
        "suites or variants (`--only asgi,wsgi.ours_cookie`). "
        "Every figure comes from one run, variants interleaved round by round "
        f"({settings.rounds} rounds of about {settings.batch_s * 1000:.0f} ms per variant"
        + (
            f", each variant built as {settings.instances} separate apps that take turns, "
            "since where an app sits in memory moves its figure by a microsecond or more"
            if settings.instances > 1
            else ""
        )
        + "; the span-heavy trace() and FastAPI suites use fewer, longer rounds so each spans "
        "several exports of the batch processor, with one app each"
        + (
            f"; the turn suite {turn_settings.rounds} rounds of about "
            f"{turn_settings.batch_s * 1000:.0f} ms per worker process"
        )
        + "), reported as the median over rounds. "
        "In-process figures are "
        + (
            "the process's CPU time (all its threads), so load from other processes on a "
            "shared machine does not inflate them"
            if results.clock == "cpu"
            else "wall time"
        )
        + '. "Overhead" is the median of per-round '
        'differences to the suite\'s baseline measured in the same round; "overhead ÷ ours" '
        'divides by our middleware\'s overhead (returning user, cookie). "Spread" is the '
        'median absolute deviation of the per-round times. "Extra bytecodes" counts the Python '
        "bytecodes one more request (or span) runs on the measuring thread, by opcode "
        "tracing, over the baseline's: a figure no machine load moves (C work such as "
        "hashing, HMAC or SQLite is not in it).",
        "",
    ]
    if results.quick:
        lines += [
            "**Quick run** (`--quick`): few, short rounds and a small collector store; "
            "the figures are a smoke check, not a measurement.",
            "",
        ]
    lines += [
        "## Machine and versions",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"run took {results.seconds:.0f} s",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores visible",
        f"- Python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.system()} {platform.release()}",
    ]
    if load is not None and results.load_after is not None:
        lines.append(
            f"- Load average (1 min) at start / end: {load[0]:.2f} / {results.load_after[0]:.2f}"
        )
    lines.append("- " + ", ".join(f"{package} {_version(package)}" for package in PACKAGES))
    lines += ["", "## Targets", ""]
    found = targets(results)
    if found:
        lines += ["| target | measured | limit | result |", "| --- | ---: | --- | --- |"]
        lines += [f"| {t.name} | {t.measured} | {t.limit} | {_verdict(t.passed)} |" for t in found]
    else:
        lines.append("No target's variants were part of this run.")
    for suite, measurements in results.suites.items():
        lines += ["", f"## {TITLES.get(suite, suite)}", ""]
        if suite == "turn":
            lines += _turn_table(measurements, results.turn_wire)
        else:
            lines += _suite_table(suite, measurements)
    if results.loopback is not None:
        lines += ["", "## End to end: uvicorn on loopback", "", *_loopback_table(results.loopback)]
    lines += ["", "## Local collector", ""]
    if results.collector is not None:
        lines += _collector_table(results.collector)
    else:
        lines.append("Not measured in this run.")
    lines += ["", "## Notes", "", *notes(results, found), ""]
    return "\n".join(lines)


def _turn_table(measurements: dict[str, Measurement], wire: dict[str, WireFigures]) -> list[str]:
    """One row per variant: CPU per turn with export, ours over it, and what it sent."""
    ours = measurements.get("ours")
    lines = [
        "Process CPU (all threads) per turn: one request through the session middleware, "
        "a root span and two children, then export over OTLP/HTTP (gzip protobuf) to a local "
        'discard receiver. "Of which in flush" is the part spent flushing after each burst '
        "of 100 turns: for ours, (a) and (b), whose batch processors send only when flushed "
        "(a burst's 300 spans stay below their batch size of 512), that is the export "
        "(encoding, gzip, HTTP); the neatlogs SDK sends batches of 100 during the burst too. "
        '"Ours ÷ this" is the median over rounds of ours over the variant\'s time in the '
        "same round (for by hand with one key: ours with one key).",
        "",
        "| variant | µs/turn | of which in flush | ours ÷ this | spread (µs) "
        "| bytecodes/turn | spans/turn received | bytes/turn on the wire "
        "| export requests per 1,000 turns |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, measurement in measurements.items():
        mine = measurements.get("ours_one_key") if key == "raw_one_key" else ours
        ratio = paired_ratio(mine, measurement) if key not in ("ours", "ours_one_key") else None
        sent = wire.get(key)
        lines.append(
            f"| {measurement.variant.label} | {_fmt(measurement.median_us, 1)} "
            f"| {_fmt(None if sent is None else sent.flush_us, 1)} "
            f"| {_fmt(ratio)} | {_fmt(measurement.spread_us, 1)} "
            f"| {'-' if measurement.bytecodes is None else f'{measurement.bytecodes:,}'} "
            f"| {_fmt(None if sent is None else sent.spans_per_turn)} "
            f"| {_bytes(sent)} "
            f"| {'-' if sent is None else f'{sent.requests_per_1000_turns:.1f}'} |"
        )
    keyed = paired_ratio(measurements.get("ours_neatlogs"), measurements.get("neatlogs_sdk"))
    if keyed is not None:
        lines += [
            "",
            "The targets compare ours as configured for any OTLP receiver. With an API key, ours "
            "follows the neatlogs backend's contract as the neatlogs SDK does (a completion "
            f"marker span after each exported root): that turn costs {keyed:.2f}x the neatlogs "
            "SDK's.",
        ]
    return lines


def _bytes(sent: WireFigures | None) -> str:
    if sent is None:
        return "-"
    return f"{sent.bytes_per_turn:,.0f}" + ("" if sent.all_gzipped else " (not all gzipped)")


def _loopback_table(result: LoopbackResult) -> list[str]:
    rounds = len(result.cpu_us.get("bare", []))
    lines = [
        f"{result.server}; the load generator is a raw asyncio keep-alive client in the "
        f"benchmark process sending {result.requests_per_round:,} requests a round, the "
        f"servers are separate processes, alternated round by round ({rounds} rounds). Both "
        "get the same request with the session cookie the ours server set on a first visit. "
        "Server CPU per request is the server process's CPU time (all threads, read by the "
        "server itself through a route both apps serve: psutil's counters tick every 10 ms) over "
        "the round's requests; figures are medians over rounds.",
        "",
        "| app | server CPU µs/request | wall µs/request at saturation |",
        "| --- | ---: | ---: |",
    ]
    apps = (
        ("bare", "bare Starlette"),
        ("ours", "ours, returning user (cookie)"),
        ("hand", "signed cookie verified once per Cookie header, remembered (hand-written)"),
        ("contract", "the least DESIGN.md asks: remembered cookie, clean start, felt latency"),
    )
    for name, label in apps:
        if name not in result.cpu_us:
            continue
        lines.append(
            f"| {label} | {_fmt(result.median(result.cpu_us[name]), 1)} "
            f"| {_fmt(result.median(result.wall_us[name]), 1)} |"
        )
    for name, label in (("ours", "ours"), ("hand", "hand-written"), ("contract", "least asked")):
        if name not in result.cpu_us:
            continue
        cpu = _ratio(result.median(result.cpu_us[name]), result.median(result.cpu_us["bare"]))
        wall = _ratio(result.median(result.wall_us[name]), result.median(result.wall_us["bare"]))
        lines.append(f"| ratio {label} / bare | {_fmt(cpu)} | {_fmt(wall)} |")
    return lines


def _collector_table(result: CollectorResult) -> list[str]:
    built = (
        f"built in {result.store_built_s:.0f} s"
        if result.store_built_s is not None
        else "read from the cache"
    )
    return [
        "In-process: OTLP protobuf decode + SQLite store for ingest; the collector's ASGI "
        "app for the API (no sockets).",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| ingest, {result.ingest_batches} requests of 512 spans into a fresh store "
        f"| {result.ingest_spans_per_s:,.0f} spans/s |",
        f"| `GET /api/sessions/{{id}}`, first page of turns, {result.shape.label} ({built}), "
        f"{result.session_bytes:,} bytes of JSON, median of {len(result.session_ms_per_round)} "
        f"| {result.session_ms:.1f} ms |",
        f"| every page of that session, 500 turns a page with `after`: {result.all_pages} "
        f"requests, {result.all_pages_traces:,} traces, in total | {result.all_pages_ms:.0f} ms |",
    ]


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None
