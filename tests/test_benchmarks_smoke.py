"""The benchmark command runs end to end and writes its tables (figures unchecked).

Only variants that need no peer packages are selected, so this runs with the
test extras alone; ``make bench`` installs the peers for the full run.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.__main__ import main

VARIANTS = (
    "asgi.bare",
    "asgi.floor",
    "asgi.ours_cookie",
    "wsgi.bare",
    "wsgi.ours_cookie",
    "trace.raw_root",
    "trace.ours_root",
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
        "ours, returning user (cookie)",
        "bare Flask",
        "raw SDK span, root",
        "trace() root, session stamped",
        "ASGI returning user (cookie): overhead vs the floor",
        "WSGI returning user: overhead over bare Flask",
        "trace() root with session stamping vs raw SDK span",
    ):
        assert label in labels, f"no row for {label!r} in:\n{report}"
    # Peers that were not selected leave no rows and no targets behind.
    assert "asgi-correlation-id (header present)" not in labels
    assert "Not measured in this run." in report  # the collector section
