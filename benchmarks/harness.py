"""Interleaved timing: every variant of a suite once per round, many rounds, medians.

Machine load drifts over seconds; measuring variant A for a minute and then B
would put that drift into the comparison. Running each variant for a short
batch in every round (rotating the order) exposes all variants to the same
drift, and per-round differences against the suite's baseline cancel most of
it. Figures are medians over rounds, so one disturbed round does not move them.

Where one object sits in memory also moves a figure: two identical bare Flask
apps built in one process differ by a microsecond or more, steadily, through
dict probe lengths and cache lines. So each variant is built several times and
its instances take turns across rounds; no variant owes its figure to one
lucky or unlucky build.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

#: Runs ``n`` operations and returns the elapsed seconds.
Runner = Callable[[int], float]


@dataclass
class Variant:
    """One way of serving the same request (or starting the same span)."""

    key: str
    label: str
    #: Builds the app and returns its runner; called only for selected variants,
    #: so a run without the peer packages installed can still measure ours.
    make: Callable[[], Runner]
    #: Key of the variant whose time this one's overhead is measured against.
    baseline: str | None = None
    note: str = ""


@dataclass
class Measurement:
    """Per-round microseconds per operation of one variant, and derived figures."""

    variant: Variant
    per_round_us: list[float] = field(default_factory=list)
    #: Python bytecodes one operation runs on the measuring thread: a count that
    #: does not depend on the machine or its load, unlike the times.
    bytecodes: int | None = None
    #: Per-round difference to the baseline, measured in the same round.
    overhead_per_round_us: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.per_round_us)

    @property
    def overhead_us(self) -> float | None:
        if not self.overhead_per_round_us:
            return None
        return statistics.median(self.overhead_per_round_us)

    def extra_bytecodes(self, baseline: Measurement | None) -> int | None:
        if baseline is None or self.bytecodes is None or baseline.bytecodes is None:
            return None
        return self.bytecodes - baseline.bytecodes

    @property
    def spread_us(self) -> float:
        """Median absolute deviation of the per-round times: how noisy the rounds were."""
        median = self.median_us
        return statistics.median(abs(value - median) for value in self.per_round_us)


@dataclass
class Settings:
    rounds: int
    #: Seconds one variant runs per round; the operation count is calibrated to it.
    batch_s: float
    warmup_s: float
    #: Separately built apps per variant, used in turn across rounds.
    instances: int = 1


FULL = Settings(rounds=60, batch_s=0.015, warmup_s=0.3, instances=4)
QUICK = Settings(rounds=3, batch_s=0.005, warmup_s=0.02)
# Suites whose spans go through a batch processor: its export thread wakes every
# 512 spans, so a batch must span several exports for rounds to be comparable.
_SPAN_HEAVY = {"trace", "fastapi"}
# The turn suite exports for real and flushes at the end of every block: blocks
# long enough that the flush's last, partial export is a small part of them, and
# a warm-up that lets every worker's HTTP connection and SDK caches settle.
_TURN = Settings(rounds=20, batch_s=0.25, warmup_s=1.0)


def for_suite(suite: str, settings: Settings) -> Settings:
    """``settings``, with longer and fewer batches for span-heavy suites (full runs)."""
    if settings is QUICK:
        return settings
    if suite == "turn":
        return _TURN
    if suite not in _SPAN_HEAVY:
        return settings
    # One instance each: every build starts its own batch processor and export thread.
    return Settings(rounds=30, batch_s=0.1, warmup_s=settings.warmup_s)


def _calibrate(runner: Runner, target_s: float, warmup_s: float) -> int:
    """How many operations fill ``target_s``; warms caches on the way."""
    n = 16
    spent = 0.0
    per_op = 0.0
    while True:
        elapsed = runner(n)
        spent += elapsed
        per_op = elapsed / n
        if spent >= warmup_s and elapsed >= target_s / 4:
            break
        n *= 2
    return max(8, int(target_s / per_op)) if per_op > 0 else n


def count_bytecodes(runner: Runner) -> int:
    """Bytecodes one more operation runs on this thread, counted by opcode tracing.

    A runner that drives another process (the turn suite's workers) counts
    there, through its own ``count_bytecodes()``.
    """
    remote = getattr(runner, "count_bytecodes", None)
    if remote is not None:
        return int(remote())
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return tracer

    runner(1)  # anything done once (a first-request cache) is done before counting
    previous = sys.gettrace()  # a coverage tool's or debugger's, put back after
    sys.settrace(tracer)
    try:
        runner(1)
    finally:
        sys.settrace(previous)
    return count


def measure(
    variants: Sequence[Variant],
    settings: Settings,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Measurement]:
    """Run ``variants`` interleaved for ``settings.rounds`` rounds."""
    runners = {
        variant.key: [variant.make() for _ in range(settings.instances)] for variant in variants
    }
    counts = {}
    for variant in variants:
        first, *others = runners[variant.key]
        counts[variant.key] = _calibrate(first, settings.batch_s, settings.warmup_s)
        for runner in others:
            _calibrate(runner, settings.batch_s, settings.warmup_s)  # warm it the same way
    results = {
        variant.key: Measurement(variant, bytecodes=count_bytecodes(runners[variant.key][0]))
        for variant in variants
    }
    for round_index in range(settings.rounds):
        shift = round_index % len(variants)
        order = [*variants[shift:], *variants[:shift]]
        this_round: dict[str, float] = {}
        for variant in order:
            gc.collect()
            n = counts[variant.key]
            instances = runners[variant.key]
            runner = instances[round_index % len(instances)]
            this_round[variant.key] = runner(n) / n * 1e6
        for key, value in this_round.items():
            result = results[key]
            result.per_round_us.append(value)
            baseline = result.variant.baseline
            if baseline is not None and baseline in this_round:
                result.overhead_per_round_us.append(value - this_round[baseline])
        progress(f"round {round_index + 1}/{settings.rounds}")
    return results


#: "cpu": the process's CPU time (all its threads, so a batch processor's export
#: thread counts too); time the machine spends on other processes does not, which
#: keeps figures steady on a shared machine. "wall": elapsed time.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = CLOCKS["cpu"]


def use_clock(name: str) -> None:
    global _clock
    _clock = CLOCKS[name]


def now() -> float:
    """The clock every in-process runner uses."""
    return _clock()
