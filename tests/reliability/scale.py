"""How big each scenario runs: quick in ``make test``, long in ``make reliability``.

``NEATLOGS_RELIABILITY=long`` selects the long figures; the scenarios are the
same code either way, so the quick run keeps the long one honest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LONG_ENV = "NEATLOGS_RELIABILITY"


@dataclass(frozen=True)
class Scale:
    name: str
    #: Concurrent clients and turns each, per server, in the isolation scenario.
    clients: int
    turns: int
    #: Alternating healthy/faulty rounds, and requests per round, per export fault.
    fault_rounds: int
    round_requests: int
    #: Faulty/healthy p50 latency ratio allowed. A few hundred requests on a shared
    #: machine only show that nothing blocks (a blocked request would take the
    #: receiver's seconds, a ratio in the hundreds); thousands measure the 10% promise.
    latency_tolerance: float
    #: The same for p99. Of a few hundred requests, p99 is the second or third
    #: slowest, one scheduler pause on a shared machine (30 ms against 7 ms seen);
    #: an export that blocked would still be seconds against milliseconds.
    tail_tolerance: float
    #: Requests made before a server is stopped with SIGTERM.
    shutdown_requests: int
    #: Hypothesis examples per fuzz target.
    fuzz_examples: int
    #: Seconds of steady load in the soak, after its warm-up.
    soak_s: float
    #: Concurrent users per middleware stack, per server, in the isolation matrix.
    matrix_users: int
    #: Distinct returning users on 8 threads against the threaded WSGI middleware:
    #: more than its caches hold, so every thread evicts.
    threaded_users: int
    #: Rounds of three people over one connection, per server, stack and mode.
    reuse_rounds: int


QUICK = Scale("quick", 20, 3, 12, 20, 3.0, 20.0, 40, 60, 2.0, 3, 24_000, 2)
LONG = Scale("long", 500, 10, 250, 20, 1.10, 1.10, 600, 10_000, 60.0, 50, 60_000, 50)
SCALE = LONG if os.environ.get(LONG_ENV) == "long" else QUICK
