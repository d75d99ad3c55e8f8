"""The benchmark command runs end to end and writes its tables (figures unchecked).

Only variants that need no peer packages are selected, so this runs with the
test extras alone; ``make bench`` installs the peers for the full run. The
turn suite's two selected variants each run in a worker process exporting to
the local discard receiver; the loopback suite starts two uvicorn servers.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.__main__ import main

VARIANTS = (
    "asgi.bare",
    "asgi.floor",
    "asgi.contract_floor",
    "asgi.ours_cookie",
    "wsgi.bare",
    "wsgi.ours_cookie",
    "trace.raw_root",
    "trace.ours_root",
    "turn.ours",
    "turn.raw",
    "loopback",
)


def test_quick_benchmark_writes_a_row_per_variant_and_the_targets(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"

    assert main(["--quick", "--only", ",".join(VARIANTS), "--output", str(output)]) == 0

    report = output.read_text(encoding="utf-8")
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    labels = {row.split("|")[1].strip() for row in rows}
    for label in (
        "bare Starlette",
        "floor: header -> ContextVar (hand-written)",
        "the least DESIGN.md asks: remembered cookie, clean start, felt latency (hand-written)",
        "the least DESIGN.md asks: remembered cookie, clean start, felt latency",
        "ours, returning user (cookie)",
        "bare Flask",
        "raw SDK span, root",
        "trace() root, session stamped",
        "ours: middleware (signed cookie) + trace()",
        "(a) by hand: raw OpenTelemetry SDK, cookie -> ContextVar, a processor stamping "
        "the same two keys",
        "ours, returning user (cookie)",
        "trace() root with session stamping vs raw SDK span",
        "A traced turn, export included: ours vs (a) by hand on the raw OpenTelemetry SDK",
        "uvicorn on loopback, returning user (cookie): server CPU vs bare Starlette",
    ):
        assert label in labels, f"no row for {label!r} in:\n{report}"
    # Peers that were not selected leave no rows and no targets behind.
    assert "asgi-correlation-id (header present)" not in labels
    assert "(b) Langfuse SDK, propagate_attributes(session_id=...)" not in labels
    # Retired targets stay retired.
    assert "overhead vs the floor" not in report
    assert "WSGI returning user: overhead over bare Flask" not in report
    assert "Not measured in this run." in report  # the collector section
    # The turn suite exported for real: the receiver got every turn's three spans, gzipped.
    for label in ("ours: middleware (signed cookie) + trace()", "(a) by hand: raw OpenTelemetry"):
        row = next(row for row in rows if row.startswith(f"| {label}"))
        spans_per_turn, bytes_per_turn = (cell.strip() for cell in row.split("|")[7:9])
        assert float(spans_per_turn) >= 3.0, row
        assert bytes_per_turn.replace(",", "").isdigit(), row
