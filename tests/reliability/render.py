"""``docs/reliability.md`` from the figures one long run recorded.

A summary table first (load held, faults survived, bad inputs tried, spans
lost), then every scenario's figures, the machine and the date, so a reader
can judge the numbers and rerun them with ``make reliability``.
"""

from __future__ import annotations

import os
import platform
from collections import defaultdict
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

PACKAGES = (
    "neatlogs-web",
    "opentelemetry-sdk",
    "itsdangerous",
    "starlette",
    "fastapi",
    "flask",
    "uvicorn",
    "gunicorn",
    "uvicorn-worker",
    "uvloop",
    "hypercorn",
    "granian",
    "daphne",
    "gevent",
    "waitress",
    "hypothesis",
)
SECTIONS = {
    "matrix": "Isolation on every stack (servers x middleware stacks)",
    "reuse": "A request starts clean: three people per connection, kept alive or pipelined",
    "isolation": "Isolation at scale (example apps, concurrent clients)",
    "faults": "Export faults (faulty receiver vs healthy receiver, side by side)",
    "shutdown": "SIGTERM flush (healthy receiver)",
    "exit": "Exit time after SIGTERM, by receiver (seconds)",
    "threads": "Many distinct users on many threads (threaded WSGI, caches full)",
    "fuzz": "Fuzzed input (direct ASGI / WSGI calls)",
    "security": "Security: logs scanned for ids, tokens and keys",
    "soak": "Soak into the local collector",
}


def _sum(rows: list[dict[str, Any]], key: str) -> int:
    return sum(int(row.get(key, 0)) for row in rows)


def _worst(rows: list[dict[str, Any]], key: str) -> float:
    return max((float(row[key]) for row in rows if key in row), default=0.0)


def summary(by_section: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    isolation = by_section.get("isolation", [])
    faults = by_section.get("faults", [])
    shutdown = by_section.get("shutdown", [])
    exits = by_section.get("exit", [])
    fuzz = by_section.get("fuzz", [])
    security = by_section.get("security", [])
    soak = by_section.get("soak", [])
    matrix = by_section.get("matrix", [])
    threads = by_section.get("threads", [])
    reuse = by_section.get("reuse", [])
    servers = ", ".join(row["scenario"] for row in isolation)
    clients = max((int(row["clients"]) for row in isolation), default=0)
    turns = max((int(row["turns_per_client"]) for row in isolation), default=0)
    lost = (
        _sum(isolation, "spans_lost")
        + _sum(shutdown, "spans_lost")
        + _sum(soak, "spans_sent")
        - _sum(soak, "spans_stored")
    )
    return [
        (
            "Every stack",
            f"{len({row['scenario'].split(' / ')[0] for row in matrix})} servers, "
            f"{len(matrix)} server x middleware stacks, "
            f"{max((int(row['clients']) for row in matrix), default=0)} clients each: "
            f"{_sum(matrix, 'failed_requests')} failed requests, "
            f"{_sum(matrix, 'spans_wrong_session')} spans in a wrong session, "
            f"{_sum(matrix, 'spans_no_session')} without one, "
            f"{_sum(matrix, 'left_async_in_other_session')} left async streams and "
            f"{_sum(matrix, 'left_plain_in_other_session')} left plain streams "
            "finalized in another session",
        ),
        (
            "Connections reused",
            f"{len({row['scenario'].split(' / ')[0] for row in reuse})} ASGI servers, "
            f"keep-alive and pipelined, {_sum(reuse, 'rounds'):,} rounds of three people "
            f"per connection: {_sum(reuse, 'excluded_with_a_session')} excluded requests "
            f"with a session, {_sum(reuse, 'later_in_earlier_session')} later requests in "
            f"the earlier one's session, {_sum(reuse, 'later_in_earlier_trace')} in its "
            f"trace, {_sum(reuse, 'spans_in_earlier_trace')} spans in its trace",
        ),
        (
            "Load held",
            f"{clients} concurrent clients x {turns} turns on each of {servers}: "
            f"{_sum(isolation, 'requests'):,} turns, {_sum(isolation, 'spans_received'):,} spans, "
            f"{_sum(isolation, 'failed_requests')} failed requests, "
            f"{_sum(isolation, 'spans_wrong_session')} spans in a wrong session, "
            f"{_sum(isolation, 'spans_no_session')} without a session",
        ),
        (
            "Many users, many threads",
            "; ".join(
                f"{row['scenario']}: {row['errors']} errors, {row['wrong_session']} in a "
                f"wrong session, largest cache {row['largest_cache']:,} of {row['cache_bound']:,}"
                for row in threads
            )
            or "not run",
        ),
        (
            "Faults survived",
            f"{len(faults)} export faults ({', '.join(r['scenario'] for r in faults)}): "
            f"{_sum(faults, 'failed_requests')} failed requests, worst latency ratio "
            f"p50 {_worst(faults, 'p50_ratio'):.2f}, p99 {_worst(faults, 'p99_ratio'):.2f}, "
            f"{_sum(faults, 'spans_dropped'):,} drops and {_sum(faults, 'spans_failed'):,} "
            f"failed exports counted; SIGTERM on {len(shutdown)} servers, slowest exit "
            f"{_worst(exits, 'exit_s'):.1f} s over {len(exits)} server and receiver pairs",
        ),
        (
            "Bad inputs tried",
            f"{_sum(fuzz, 'examples'):,} fuzzed requests over {len(fuzz)} targets "
            f"({_sum(fuzz, 'values_skipped'):,} values skipped) and "
            f"{_sum(security, 'bad_inputs'):,} forged, tampered, expired or oversized "
            f"tokens with logs scanned: 0 errors, 0 unvalidated values in spans, "
            f"{_sum(security, 'leaks')} leaks in logs",
        ),
        (
            "Spans lost",
            f"{lost} with a healthy receiver (isolation, SIGTERM flush, soak "
            f"{_sum(soak, 'spans_sent'):,} sent / {_sum(soak, 'spans_stored'):,} stored); "
            "under export faults, every loss is counted and logged",
        ),
    ]


def machine() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
        if line.startswith("model name")
    ]
    model = models[0] if models else platform.processor() or "unknown CPU"
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return [
        f"- CPU: {model}, {os.cpu_count()} cores (shared with other work during the run)",
        f"- Memory: {psutil.virtual_memory().total / 2**30:.0f} GiB",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- Packages: {', '.join(versions)}",
    ]


def _table(rows: list[dict[str, Any]]) -> list[str]:
    keys = [k for k in rows[0] if k not in ("section", "scenario")]
    for row in rows[1:]:
        keys += [k for k in row if k not in keys and k not in ("section", "scenario")]
    lines = [
        "| scenario | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
        "| --- |" + " --- |" * len(keys),
    ]
    for row in rows:
        cells = [_cell(row.get(key, "")) for key in keys]
        lines.append(f"| {row['scenario']} | " + " | ".join(cells) + " |")
    return lines


def _exit_table(rows: list[dict[str, Any]]) -> list[str]:
    """Servers down, receivers across: how long each took to exit after SIGTERM."""
    servers = list(dict.fromkeys(row["scenario"] for row in rows))
    receivers = list(dict.fromkeys(row["receiver"] for row in rows))
    seconds = {(row["scenario"], row["receiver"]): row["exit_s"] for row in rows}
    lines = [
        "| server | " + " | ".join(receivers) + " |",
        "| --- |" + " ---: |" * len(receivers),
    ]
    for server in servers:
        cells = [f"{seconds[server, r]:.1f}" if (server, r) in seconds else "" for r in receivers]
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(rows: list[dict[str, Any]], started: datetime, seconds: float, outcome: str) -> str:
    by_section: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_section[row["section"]].append(row)
    lines = [
        "# Reliability and security figures",
        "",
        "Measured by `make reliability` (`python -m tests.reliability`), which runs the",
        "long versions of the scenarios in `tests/reliability/` and `tests/test_fuzz.py`",
        "and rewrites this page. `make test` runs the same scenarios at a small scale.",
        "The threat model is in [SECURITY.md](../SECURITY.md).",
        "",
        f"Run of {started:%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} minutes: {outcome}.",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {name} | {text} |" for name, text in summary(by_section)],
        "",
        "## Machine",
        "",
        *machine(),
        "",
    ]
    for section, title in SECTIONS.items():
        if by_section.get(section):
            table = _exit_table if section == "exit" else _table
            lines += [f"## {title}", "", *table(by_section[section]), ""]
    lines += [
        "## How to read this",
        "",
        "- Every stack: one server per row serves four stacks of the same FastAPI",
        "  routes (`tests/reliability/stacks_app.py`): ours alone (*plain*),",
        '  `@app.middleware("http")` inside ours (*base-inside*) and outside it',
        "  (*base-outside*), and `GZipMiddleware` outside ours (*gzip*); WSGI rows",
        "  serve Flask. Each client streams a body, runs a background task and",
        "  thread-pool work, hits an exception, talks over a WebSocket, and leaves",
        "  two streams mid-way (an async generator, and a plain one that Starlette",
        "  iterates in the thread pool); then every client runs the garbage",
        "  collector inside its own request. *left ... streams* counts the",
        "  `finally:` spans of the streams left: in their own session, in none, or",
        "  in another client's. Only *other* is wrong. *cannot* says what the",
        "  server cannot do (daphne has no lifespan; WSGI has no WebSocket or",
        "  background task). Open: on ASGI, a plain generator the garbage",
        "  collector closes during another request is finalized in that",
        "  request's session (*left plain in other session*).",
        "- Isolation: every span that arrived is attributed to the client that caused",
        "  it (a turn's root names its client; it links to the framework's request",
        "  trace). *wrong session* and *no session* must be 0; *lost* counts our spans",
        "  expected from the turns made but never received. Under gunicorn, *workers*",
        "  and *clients across workers* show that each worker accepted cookies the",
        "  other issued (one shared `NEATLOGS_SECRET_KEY`).",
        "- Export faults: two copies of the same app, one exporting to a healthy",
        "  receiver and one to the faulty one, in alternating rounds of requests; the",
        "  ratios are faulty/healthy. RSS growth is from after warm-up to the peak.",
        "  Drops (full queue) and failed exports are read from `neatlogs_web.stats()`",
        "  and the app's log must carry a line with the counts.",
        "- SIGTERM: the schedule delay is so long that only full batches leave before",
        "  the signal; *flushed at exit* is what the shutdown path delivered. Exit",
        "  status -15: the server re-raised the signal after the flush (uvicorn, after",
        "  the ASGI lifespan shutdown flushed; waitress, through the SIGTERM handler",
        "  `init()` installs when nobody else handles the signal). Exit status 0: the",
        "  gunicorn master; its workers flushed at lifespan shutdown (uvicorn workers)",
        "  or through `atexit` as they left with `sys.exit` (sync, gthread).",
        "- Exit time: seconds from SIGTERM until the server process is gone, after a",
        "  few hundred turns, with the receiver healthy or faulty: *closed port*",
        "  (connection refused), *black hole* (accepts, never answers), *slow* (answers",
        "  after 3 s), *HTTP 500*, *HTTP 429* (`Retry-After: 1`). `init()`'s default",
        "  `shutdown_timeout_s` of 5 s is one budget across lifespan shutdown, the",
        "  SIGTERM handler and `atexit`; what the receiver has not accepted by then is",
        "  given up and counted in one WARNING line. gunicorn's figure is the master's,",
        "  its workers' exit included. All are far inside the 30 s after which",
        "  gunicorn and Kubernetes kill.",
        "- Fuzz: each example is one request through the middleware with a fuzzed",
        "  cookie, header, path segment, query string or JSON body; *values skipped*",
        "  counts inputs the middleware rejected (and so bound a new session).",
        "- Soak: RSS, threads and asyncio tasks are read from the app at idle points",
        "  after warm-up and after the soak.",
        "",
    ]
    return "\n".join(lines)
