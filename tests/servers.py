"""Real servers on 127.0.0.1 for tests: uvicorn and waitress in threads, or
an example app in a subprocess exactly as a user would start it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"server at {url} did not come up in {timeout_s}s")


@contextmanager
def run_uvicorn(app: Any, **config: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def run_waitress(app: Any, threads: int = 16) -> Iterator[str]:
    """Serve a WSGI app with waitress (a threaded server) in a thread."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    port = server.effective_port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_until_up(base + "/")
    try:
        yield base
    finally:
        try:
            # Closed by the server's own loop, woken by its trigger: the loop ends at
            # once instead of at its next one-second poll, and its select() never
            # meets a socket closed under it.
            server.trigger.pull_trigger(server.close)
        except OSError:
            server.close()  # the trigger is closed already: nothing left to wake
        thread.join(timeout=10)


@contextmanager
def run_example(
    command: list[str], env: Mapping[str, str], health_path: str = "/healthz"
) -> Iterator[str]:
    """Start an example server as a subprocess; stop it with SIGTERM at the end.

    ``{port}`` in the command is replaced by a free port.
    """
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    process = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(base + health_path)
        except TimeoutError:
            process.kill()
            output = process.communicate()[0]
            raise RuntimeError(f"example did not start:\n{output}") from None
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
