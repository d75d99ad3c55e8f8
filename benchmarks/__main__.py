"""``python -m benchmarks [--quick] [--only KEYS] [--output PATH]``.

Without ``--quick`` it writes ``docs/benchmarks.md``; with it, it prints the
report unless ``--output`` is given. ``--only`` takes suite names
(``asgi``, ``wsgi``, ``trace``, ``fastapi``, ``turn``, ``loopback``, ``collector``)
or ``suite.variant`` keys, comma-separated.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import asgi_suite, fastapi_suite, harness, report, trace_suite, wsgi_suite
from benchmarks.harness import Variant

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
SUITES = ("asgi", "wsgi", "trace", "fastapi", "turn", "loopback", "collector")


def _selector(only: str | None) -> Callable[[str, str | None], bool]:
    """Whether ``suite`` (or ``suite.key``) was asked for."""
    if not only:
        return lambda suite, key: True
    wanted = {item.strip() for item in only.split(",") if item.strip()}
    unknown = {item for item in wanted if item.split(".", 1)[0] not in SUITES}
    if unknown:
        raise SystemExit(f"--only: unknown suite in {sorted(unknown)}; suites: {', '.join(SUITES)}")

    def selected(suite: str, key: str | None) -> bool:
        if suite in wanted:
            return True
        if key is None:
            return any(item.startswith(suite + ".") for item in wanted)
        return f"{suite}.{key}" in wanted

    return selected


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few short rounds: a smoke run")
    parser.add_argument("--only", help="comma-separated suites or suite.variant keys")
    parser.add_argument("--output", type=Path, help="where to write the Markdown report")
    parser.add_argument(
        "--clock",
        choices=sorted(harness.CLOCKS),
        default="cpu",
        help="in-process timing: process CPU time (default) or wall time",
    )
    args = parser.parse_args(argv)
    harness.use_clock(args.clock)
    selected = _selector(args.only)
    settings = harness.QUICK if args.quick else harness.FULL
    results = report.RunResults(
        settings, args.quick, clock=args.clock, load_before=report.load_average()
    )
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    loop = asyncio.new_event_loop()
    try:
        builders: list[tuple[str, Callable[[], list[Variant]]]] = [
            ("asgi", lambda: asgi_suite.build(loop)),
            ("wsgi", wsgi_suite.build),
            ("trace", trace_suite.build),
            ("fastapi", lambda: fastapi_suite.build(loop)),
        ]
        for suite, build in builders:
            if not selected(suite, None):
                continue
            variants = [v for v in build() if selected(suite, v.key)]
            print(f"{suite}: {len(variants)} variants", file=sys.stderr, flush=True)
            results.suites[suite] = harness.measure(
                variants, harness.for_suite(suite, settings), progress
            )
    finally:
        loop.close()
        import neatlogs_web

        neatlogs_web.shutdown()
    if selected("turn", None):
        from benchmarks import turn_suite

        turn_settings = harness.for_suite("turn", settings)
        with turn_suite.TurnBench(args.clock) as bench:
            variants = [v for v in bench.variants() if selected("turn", v.key)]
            print(f"turn: {len(variants)} worker processes", file=sys.stderr, flush=True)
            results.suites["turn"] = harness.measure(variants, turn_settings, progress)
        results.turn_wire = bench.wire(turn_settings.rounds)
    if selected("loopback", None):
        from benchmarks import loopback

        print("loopback: uvicorn", file=sys.stderr, flush=True)
        # Many rounds: one is a fraction of a second, and two servers are noisier than one
        # loop. A quick run starts one server per app: it checks the suite runs, not figures.
        results.loopback = (
            loopback.run(2, 640, processes=1) if args.quick else loopback.run(41, 4000)
        )
    if selected("collector", None):
        from benchmarks import collector_suite

        print("collector", file=sys.stderr, flush=True)
        results.collector = collector_suite.run(quick=args.quick)
    results.seconds = time.perf_counter() - started
    results.load_after = report.load_average()

    text = report.render(results)
    output = args.output if args.output is not None else (None if args.quick else DEFAULT_OUTPUT)
    if output is None:
        print(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
