"""A traced chat turn, export included: ours against by hand, Langfuse and the neatlogs SDK.

Each variant (``turn_apps``) runs in a worker process of its own and sends
real OTLP/HTTP export requests (gzip protobuf) to one discard receiver on
127.0.0.1 in this process. A measured block is N turns and then a flush, timed
on the worker's process CPU clock, so the export thread's encoding, gzip and
HTTP work are in the figure; the receiver's are not. The workers take turns
round by round through ``harness.measure`` like in-process variants do.

Workers get an environment that points every SDK at the receiver and drops
proxies and inherited ``OTEL_*``, ``LANGFUSE_*`` and ``NEATLOGS_*`` settings;
an audit hook in each worker refuses any connection off loopback.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import turn_apps
from benchmarks.harness import Variant
from benchmarks.receiver import DiscardReceiver, Tally

ROOT = Path(__file__).resolve().parent.parent
#: Inherited variables that could send a worker's spans, or its requests, elsewhere.
_DROPPED_PREFIXES = ("OTEL_", "LANGFUSE_", "NEATLOGS_")
_PROXIES = {"http_proxy", "https_proxy", "all_proxy"}


@dataclass
class WireFigures:
    """What one variant put on the wire, per turn served, and where its CPU went."""

    turns: int
    tally: Tally
    #: Median over measured rounds of the µs per turn spent flushing (see ``turn_worker``).
    flush_us: float | None = None

    @property
    def bytes_per_turn(self) -> float:
        return self.tally.body_bytes / self.turns if self.turns else 0.0

    @property
    def requests_per_1000_turns(self) -> float:
        return self.tally.requests * 1000 / self.turns if self.turns else 0.0

    @property
    def all_gzipped(self) -> bool:
        return self.tally.gzipped == self.tally.requests

    @property
    def spans_per_turn(self) -> float | None:
        if self.tally.spans is None or not self.turns:
            return None
        return self.tally.spans / self.turns


def worker_environment(receiver_url: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_DROPPED_PREFIXES) and name.lower() not in _PROXIES
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "NO_PROXY": "127.0.0.1,localhost,::1",
            # Defaults for anything that reads its endpoint from the environment:
            # the variants set theirs in code, these only catch what would slip by.
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"{receiver_url}/otel",
            "NEATLOGS_ENDPOINT": f"{receiver_url}/neatlogs-env",
            "LANGFUSE_BASE_URL": f"{receiver_url}/langfuse",
            "LANGFUSE_HOST": f"{receiver_url}/langfuse",
        }
    )
    return env


class Worker:
    """A ``harness.Runner`` whose turns run in a ``turn_worker`` process."""

    def __init__(self, key: str, receiver_url: str, clock: str) -> None:
        self.key = key
        self.turns = 0
        #: Flush µs per turn of every block run, in order.
        self.flush_us: list[float] = []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.turn_worker", key, receiver_url, clock],
            cwd=ROOT,
            env=worker_environment(receiver_url),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._read()  # "ready": the variant is built and checked

    def __call__(self, n: int) -> float:
        reply = self._ask({"op": "run", "n": n})
        self.flush_us.append(float(reply["flush_seconds"]) / n * 1e6)
        return float(reply["seconds"])

    def count_bytecodes(self) -> int:
        return int(self._ask({"op": "bytecodes"})["bytecodes"])

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"turn worker {self.key!r} exited (see its output above)")
        reply: dict[str, Any] = json.loads(line)
        if reply["refused"]:
            raise RuntimeError(f"turn worker {self.key!r} tried to leave loopback: {reply}")
        self.turns = int(reply["turns"])
        return reply


#: The rows of the turn table, in order: (key in ``turn_apps.BUILDERS``, label).
VARIANTS = (
    ("ours", "ours: middleware (signed cookie) + trace()"),
    (
        "raw",
        "(a) by hand: raw OpenTelemetry SDK, cookie -> ContextVar, a processor stamping "
        "the same two keys",
    ),
    ("ours_one_key", 'ours with one session key (`session_keys="opentelemetry"`)'),
    ("raw_one_key", "(a) by hand with one key (`session.id`)"),
    ("langfuse", "(b) Langfuse SDK, propagate_attributes(session_id=...)"),
    ("neatlogs_sdk", "(c) neatlogs SDK, identify(session_id=...)"),
    ("ours_neatlogs", "ours with an API key (neatlogs backend: completion markers)"),
)


class TurnBench:
    """The receiver and the workers of one turn-suite run; use as a context manager."""

    def __init__(self, clock: str = "cpu") -> None:
        self.clock = clock
        self.receiver = DiscardReceiver()
        self.workers: dict[str, Worker] = {}

    def variants(self) -> list[Variant]:
        return [Variant(key, label, functools.partial(self._start, key)) for key, label in VARIANTS]

    def _start(self, key: str) -> Worker:
        worker = Worker(key, self.receiver.url, self.clock)
        self.workers[key] = worker
        return worker

    def wire(self, rounds: int) -> dict[str, WireFigures]:
        """Requests and bytes each variant sent, per turn it served (complete once closed).

        ``rounds``: how many of each worker's last blocks were measured ones
        (the harness calibrates first), for the flush figure.
        """
        prefixes = {key: prefix for key, (prefix, _) in turn_apps.BUILDERS.items()}
        return {
            key: WireFigures(
                worker.turns,
                self.receiver.tally(prefixes[key]),
                statistics.median(worker.flush_us[-rounds:]),
            )
            for key, worker in self.workers.items()
        }

    def __enter__(self) -> TurnBench:
        self.receiver.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers.values():
            worker.close()
        self.receiver.__exit__(*exc)
