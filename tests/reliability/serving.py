"""Servers as a user runs them, in subprocesses on 127.0.0.1, with their output in a file.

A long run logs more than a pipe holds, so output goes to a file the
scenario reads afterwards (for the operator's drop log line, for instance).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tests.servers import ROOT, free_port

#: Spans one ``/turn`` request of the served app makes: the turn and its child.
SPANS_PER_TURN = 2
SERVED_ASGI = "tests.reliability.served_app:asgi_app"
SERVED_WSGI = "tests.reliability.served_app:wsgi_app"
EXAMPLE_ASGI = "examples/fastapi:app:app"
EXAMPLE_WSGI = "examples/flask:app:app"


def command(server: str, app: str, port: int, workers: int = 2) -> tuple[list[str], dict[str, str]]:
    """argv (after ``python -m``) and extra environment for ``server`` running ``app``.

    ``app`` is ``"[directory:]module:attribute"``; the directory goes on ``PYTHONPATH``.
    """
    directory, _, target = app.rpartition(":")
    directory, _, module = directory.rpartition(":")
    target = f"{module}:{target}"
    env = {"PYTHONPATH": str(ROOT / directory)} if directory else {}
    bind = f"127.0.0.1:{port}"
    gunicorn = ["gunicorn", "-b", bind, "-w", str(workers), "--log-level", "warning"]
    uvicorn = ["uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    uvicorn += ["--log-level", "warning", "--no-access-log"]
    if server == "uvicorn":
        return uvicorn, env
    if server in ("uvicorn-asyncio", "uvicorn-uvloop"):
        return [*uvicorn, "--loop", server.removeprefix("uvicorn-")], env
    if server in ("uvicorn-h11", "uvicorn-httptools"):
        # The asyncio loop, with the HTTP parser named.
        return [*uvicorn, "--loop", "asyncio", "--http", server.removeprefix("uvicorn-")], env
    if server == "hypercorn":
        return ["hypercorn", "--bind", bind, "--log-level", "warning", target], env
    if server in ("granian", "granian-wsgi"):
        interface = "wsgi" if server == "granian-wsgi" else "asgi"
        argv = ["granian", "--interface", interface, "--host", "127.0.0.1", "--port", str(port)]
        return [*argv, "--log-level", "warning", target], env
    if server == "daphne":
        return ["daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", target], env
    if server == "gunicorn-uvicorn":
        return [*gunicorn, "-k", "uvicorn_worker.UvicornWorker", target], env
    if server == "gunicorn-sync":
        return [*gunicorn, "-k", "sync", target], env
    if server == "gunicorn-gthread":
        return [*gunicorn, "-k", "gthread", "--threads", "8", target], env
    if server == "gunicorn-gevent":
        return [*gunicorn, "-k", "gevent", "--worker-connections", "200", target], env
    if server == "waitress":
        return ["waitress", f"--listen={bind}", "--threads=16", target], env
    raise ValueError(f"unknown server {server!r}")


@dataclass
class Served:
    base: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> list[int]:
        """The processes that run the app: the workers, or the server itself."""
        children = psutil.Process(self.process.pid).children()
        return [child.pid for child in children] or [self.process.pid]

    def rss(self) -> int:
        """Resident memory of every process that runs the app, in bytes."""
        return sum(psutil.Process(pid).memory_info().rss for pid in self.pids())

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, as a process manager stops a server; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                # The server's workers too: killed alone, it would leave them running.
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise
        return self.process.returncode

    def close(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, then SIGKILL should it still run after ``timeout_s``: the cleanup
        of a test that measures something else (``test_shutdown`` measures the stop)."""
        try:
            self.stop(timeout_s)
        except subprocess.TimeoutExpired:
            return  # stop() killed it


@contextmanager
def serve(
    server: str,
    app: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    workers: int = 2,
    health_path: str = "/healthz",
) -> Iterator[Served]:
    """Run ``app`` under ``server``; SIGTERM it on the way out if still running."""
    port = free_port()
    argv, extra_env = command(server, app, port, workers)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *argv],
            cwd=ROOT,
            env={**os.environ, **extra_env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, workers included
        )
    served = Served(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_up(served, health_path)
        if server.startswith("gunicorn") and workers > 1:
            # With one worker, the health check passing means it loaded the app.
            _wait_for_workers(served, workers)
        yield served
    finally:
        served.close()


def _wait_for_workers(served: Served, workers: int, timeout_s: float = 30.0) -> None:
    """Wait until every gunicorn worker has loaded the app.

    The health check passes as soon as one worker serves; a scenario that
    starts then can run entirely on that worker. ``init()`` starts the export
    thread when the app is imported, so a worker with a second thread has
    loaded it.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            children = psutil.Process(served.process.pid).children()
            ready = [child for child in children if child.num_threads() > 1]
        except psutil.NoSuchProcess:
            ready = []
        if len(ready) >= workers:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{workers} workers did not load the app in {timeout_s}s:\n{served.log()}")


def _wait_until_up(served: Served, health_path: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"server exited at start:\n{served.log()}")
        try:
            if httpx.get(served.base + health_path, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    served.process.kill()
    raise TimeoutError(f"server did not come up in {timeout_s}s:\n{served.log()}")
