"""End to end: uvicorn on 127.0.0.1, bare app vs ours, under the same load.

Each app runs in uvicorn processes of its own; a keep-alive load generator in
this process (raw asyncio streams, so the client is cheaper than the server
it measures) sends each a fixed number of requests per round, the two apps
alternating round by round. Both get the same request, carrying the session
cookie the ours server set on a first visit, so ours serves a returning user.
Two figures per round: the server process's CPU time per request (all its
threads, read from the server itself before and after the round, see
``loopback_apps``; not skewed when the load generator is the bottleneck) and
wall time per request (what a client sees at saturation).
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.asgi_suite import PATH

ROOT = Path(__file__).resolve().parent.parent
APPS = {
    "bare": "benchmarks.loopback_apps:bare_app",
    "ours": "benchmarks.loopback_apps:ours_app",
    "hand": "benchmarks.loopback_apps:hand_app",
    "contract": "benchmarks.loopback_apps:contract_app",
}
CONNECTIONS = 32
PROCESSES_PER_APP = 3
#: Served by both apps (``loopback_apps``): the server process's CPU time so far.
CPU_PATH = "/bench/cpu"


@dataclass
class LoopbackResult:
    #: Wall microseconds per request, per round, by app.
    wall_us: dict[str, list[float]] = field(default_factory=dict)
    #: Server CPU microseconds per request, per round, by app.
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    server: str = ""
    requests_per_round: int = 0

    @staticmethod
    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _uvicorn(target: str) -> Iterator[int]:
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
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _request(port: int, cookie: bytes = b"") -> bytes:
    lines = [
        f"GET {PATH} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "User-Agent: bench/1.0",
        "Accept: */*",
        *([f"Cookie: {cookie.decode('latin-1')}"] if cookie else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bytes:
    """One request on a keep-alive connection; returns the response head."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"loopback server answered {head[:40]!r}")
    at = head.lower().find(b"content-length:")
    await reader.readexactly(int(head[at + 15 : head.find(b"\r\n", at)]))
    return head


def _set_cookies(head: bytes) -> list[bytes]:
    return [
        line.split(b":", 1)[1].split(b";", 1)[0].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"set-cookie:")
    ]


async def _server_cpu_seconds(port: int) -> float:
    """The server process's CPU time so far, as its ``CPU_PATH`` route reports it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {CPU_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"content-length:")
        body = await reader.readexactly(int(head[at + 15 : head.find(b"\r\n", at)]))
        return float(body)
    finally:
        writer.close()


async def _returning_user_cookie(port: int) -> bytes:
    """The cookie the server sets on a first visit, checked to be accepted on the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        cookies = _set_cookies(await _exchange(reader, writer, _request(port)))
        if not cookies:
            raise RuntimeError("the loopback server set no session cookie on a first visit")
        again = await _exchange(reader, writer, _request(port, cookies[0]))
        if _set_cookies(again):
            raise RuntimeError("the loopback server did not take back its own session cookie")
        return cookies[0]
    finally:
        writer.close()


async def _connection(port: int, request: bytes, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            await _exchange(reader, writer, request)
    finally:
        writer.close()


async def _load(port: int, request: bytes, total: int) -> float:
    """Seconds to serve ``total`` requests over ``CONNECTIONS`` keep-alive connections."""
    start = time.perf_counter()
    per_connection = total // CONNECTIONS
    await asyncio.gather(*(_connection(port, request, per_connection) for _ in range(CONNECTIONS)))
    return time.perf_counter() - start


def run(rounds: int, requests_per_round: int, processes: int = PROCESSES_PER_APP) -> LoopbackResult:
    """Each app's server CPU and wall time per request, ``processes`` servers per app."""
    result = LoopbackResult({name: [] for name in APPS}, {name: [] for name in APPS})
    total = requests_per_round // CONNECTIONS * CONNECTIONS
    result.requests_per_round = total
    with ExitStack() as stack:
        # Several processes per app, taking turns round by round: where a process's
        # code and data sit in memory moves its figure by a few percent.
        servers = {
            name: [stack.enter_context(_uvicorn(target)) for _ in range(processes)]
            for name, target in APPS.items()
        }
        loop = asyncio.new_event_loop()
        try:
            cookie = loop.run_until_complete(_returning_user_cookie(servers["ours"][0]))
            for port in [port for ports in servers.values() for port in ports]:
                loop.run_until_complete(_load(port, _request(port, cookie), total))  # warm-up
            for index in range(rounds):
                order = list(servers) if index % 2 == 0 else list(reversed(servers))
                for name in order:
                    port = servers[name][index % processes]
                    cpu_before = loop.run_until_complete(_server_cpu_seconds(port))
                    elapsed = loop.run_until_complete(_load(port, _request(port, cookie), total))
                    cpu_after = loop.run_until_complete(_server_cpu_seconds(port))
                    result.wall_us[name].append(elapsed / total * 1e6)
                    result.cpu_us[name].append((cpu_after - cpu_before) / total * 1e6)
        finally:
            loop.close()
    import uvicorn

    result.server = (
        f"uvicorn {uvicorn.__version__}, {processes} server processes per app taking "
        f"turns, {CONNECTIONS} keep-alive connections"
    )
    return result
