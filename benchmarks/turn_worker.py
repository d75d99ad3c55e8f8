"""One turn-suite variant in a process of its own, driven over a pipe by the parent.

``python -m benchmarks.turn_worker VARIANT RECEIVER_URL CLOCK`` builds the
variant (``turn_apps.BUILDERS``), then answers one JSON line per command on
its original standard output; everything else the SDKs print goes to
standard error. Commands:

- ``{"op": "run", "n": N}``: serve N turns in bursts of ``BURST`` awaited back
  to back, flushing the SDK after each burst; answers the seconds of this
  process's clock (all threads: the export thread's encoding and sending
  count) for the whole block, and ``flush_seconds``: the part spent in the
  flushes. A burst's spans stay below the batch size of ours, (a) and (b), so
  their batch processors export only when flushed: for them that part is the
  export (encoding, gzip, HTTP), the rest the request path.
- ``{"op": "bytecodes"}``: Python bytecodes one more turn runs on this thread.
- ``{"op": "quit"}``.

Every answer also carries ``turns`` (served so far) and ``refused``: any
attempt to reach a host other than loopback, which a ``sys.addaudithook``
hook refuses, so no variant sends anything off 127.0.0.1 whatever its
defaults.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from benchmarks import harness, turn_apps
from benchmarks.asgi_suite import asgi_runner, make_scope, response_headers

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
#: Turns between flushes. Back to back without a pause, the request thread
#: starts spans faster than a batch processor's export thread (which shares the
#: GIL with it) can send them, and a full queue drops spans: a dropped span
#: costs nothing to export, which would flatter whoever drops most. 100 turns
#: are 300 spans, within every SDK's default queue, so every span is sent.
BURST = 100
refused: list[str] = []


def _host(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return value if isinstance(value, str) else None


def _loopback_only(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: refuse DNS look-ups and connections to anything but loopback."""
    host = None
    if event == "socket.getaddrinfo":
        host = _host(args[0])
    elif event in ("socket.connect", "socket.sendto") and isinstance(args[1], tuple):
        host = _host(args[1][0])
    if host is not None and host not in LOOPBACK:
        refused.append(f"{event} {host}")
        raise PermissionError(f"benchmark worker: {host} is not loopback")


def _returning_user_is_recognised(
    app: Any, scope: dict[str, Any], loop: asyncio.AbstractEventLoop
) -> None:
    """A returning user's request must not be handed a new session (no ``Set-Cookie``)."""
    if any(name == b"set-cookie" for name, _ in response_headers(app, scope, loop)):
        raise RuntimeError("the returning user's cookie was not accepted: a new session was set")


def serve(variant: str, receiver_url: str, channel: TextIO) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    _prefix, build = turn_apps.BUILDERS[variant]
    turn = build(receiver_url, loop)
    scope = make_scope(turn_apps.PATH, [(b"cookie", turn.cookie)])
    _returning_user_is_recognised(turn.app, scope, loop)
    requests = asgi_runner(turn.app, scope, loop)
    served = 2  # the check above, and asgi_runner's own

    def block(n: int) -> dict[str, float]:
        gc.collect()
        serving = flushing = 0.0
        for done in range(0, n, BURST):
            serving += requests(min(BURST, n - done))
            start = harness.now()
            turn.flush()
            flushing += harness.now() - start
        return {"seconds": serving + flushing, "flush_seconds": flushing}

    commands: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "run": lambda command: block(int(command["n"])),
        "bytecodes": lambda command: {"bytecodes": harness.count_bytecodes(requests)},
    }
    answer(channel, {"ready": True}, served)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        reply = commands[command["op"]](command)
        served += int(command.get("n", 2))  # count_bytecodes serves two
        answer(channel, reply, served)
    turn.flush()


def answer(channel: TextIO, reply: dict[str, Any], served: int) -> None:
    channel.write(json.dumps({**reply, "turns": served, "refused": refused}) + "\n")
    channel.flush()


def main(argv: list[str]) -> int:
    variant, receiver_url, clock = argv
    sys.addaudithook(_loopback_only)
    harness.use_clock(clock)
    # Answers go to the original stdout; anything an SDK prints lands on stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    serve(variant, receiver_url, channel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
