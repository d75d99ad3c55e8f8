"""End to end: uvicorn on 127.0.0.1, bare app vs ours, under the same load.

Each app runs in its own uvicorn process; a keep-alive load generator (raw
asyncio streams, so the client is cheaper than the server it measures)
drives them in alternating rounds of a fixed duration. Two figures per
round: wall time per request (elapsed over requests completed, what a client
sees at saturation) and the server process's CPU time per request (from
``/proc``, so it is not skewed when the load generator is the bottleneck).
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.asgi_suite import PATH, our_token

ROOT = Path(__file__).resolve().parent.parent
APPS = {"bare": "benchmarks.loopback_apps:bare_app", "ours": "benchmarks.loopback_apps:ours_app"}
CONNECTIONS = 32


@dataclass
class LoopbackResult:
    #: Wall microseconds per request, per round, by app.
    wall_us: dict[str, list[float]] = field(default_factory=dict)
    #: Server CPU microseconds per request, per round, by app (empty without /proc).
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    server: str = ""

    @staticmethod
    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of ``pid`` (Linux ``/proc``), or ``None`` elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _uvicorn(target: str) -> Iterator[tuple[int, int]]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn {target} did not start") from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _request(port: int) -> bytes:
    return (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench/1.0\r\n"
        f"Accept: */*\r\nCookie: neatlogs_session={our_token()}\r\n\r\n"
    ).encode()


async def _connection(port: int, deadline: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _request(port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"loopback server answered {head[:40]!r}")
            at = head.lower().find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at)])
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


async def _load(port: int, duration_s: float) -> tuple[int, float]:
    """Requests served during ``duration_s`` of saturation, and the seconds taken."""
    start = time.perf_counter()
    deadline = start + duration_s
    counts = await asyncio.gather(*(_connection(port, deadline) for _ in range(CONNECTIONS)))
    return max(1, sum(counts)), time.perf_counter() - start


def run(rounds: int, duration_s: float) -> LoopbackResult:
    result = LoopbackResult({name: [] for name in APPS}, {name: [] for name in APPS})
    with _uvicorn(APPS["bare"]) as bare, _uvicorn(APPS["ours"]) as ours:
        servers = {"bare": bare, "ours": ours}
        loop = asyncio.new_event_loop()
        try:
            for port, _pid in servers.values():
                loop.run_until_complete(_load(port, min(duration_s, 0.5)))  # warm-up
            for index in range(rounds):
                order = list(servers) if index % 2 == 0 else list(reversed(servers))
                for name in order:
                    port, pid = servers[name]
                    cpu_before = _cpu_seconds(pid)
                    count, elapsed = loop.run_until_complete(_load(port, duration_s))
                    cpu_after = _cpu_seconds(pid)
                    result.wall_us[name].append(elapsed / count * 1e6)
                    if cpu_before is not None and cpu_after is not None:
                        result.cpu_us[name].append((cpu_after - cpu_before) / count * 1e6)
        finally:
            loop.close()
    import uvicorn

    result.server = f"uvicorn {uvicorn.__version__}, {CONNECTIONS} keep-alive connections"
    return result
