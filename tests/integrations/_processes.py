"""Servers, a Redis broker and a Celery worker in subprocesses on 127.0.0.1.

Each is started the way a user starts it (``python -m gunicorn ...``), with
its output in a file that a failing test prints, and stopped with SIGTERM
(then SIGKILL) when the test ends, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.servers import ROOT, free_port, wait_until_up

DJANGO_WSGI = "tests.integrations.django_site.wsgi:application"
DJANGO_ASGI = "tests.integrations.django_site.asgi:application"
DJANGO_SERVERS = ("gunicorn-sync", "gunicorn-gthread", "uvicorn", "daphne")


def server_argv(
    server: str, port: int, *, wsgi: str = DJANGO_WSGI, asgi: str = DJANGO_ASGI
) -> list[str]:
    """``python -m`` arguments serving a Django project with ``server``."""
    bind = f"127.0.0.1:{port}"
    gunicorn = ["gunicorn", "-b", bind, "-w", "2", "--log-level", "warning"]
    if server == "gunicorn-sync":
        return [*gunicorn, "-k", "sync", wsgi]
    if server == "gunicorn-gthread":
        return [*gunicorn, "-k", "gthread", "--threads", "4", wsgi]
    if server == "uvicorn":
        return ["uvicorn", asgi, "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--no-access-log"]  # fmt: skip
    if server == "daphne":
        return ["daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", asgi]
    raise ValueError(f"unknown server {server!r}")


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@contextmanager
def started(
    argv: list[str], env: Mapping[str, str], log_path: Path, cwd: Path = ROOT
) -> Iterator[Process]:
    """Run ``python <argv>`` in ``cwd`` (the repository root); stop it on the way out."""
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [sys.executable, *argv],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process = Process(popen, log_path)
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def django_server(
    server: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    wsgi: str = DJANGO_WSGI,
    asgi: str = DJANGO_ASGI,
    cwd: Path = ROOT,
) -> Iterator[str]:
    """Serve a Django project (the test one by default); yields its base URL once
    every worker answers."""
    port = free_port()
    argv = server_argv(server, port, wsgi=wsgi, asgi=asgi)
    with started(["-m", *argv], env, log_path, cwd=cwd) as process:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 40
        answered = 0
        while answered < 4:  # a few answers: gunicorn's second worker boots too
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server} did not come up:\n{process.log()}")
            try:
                answered += httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.05)
        yield base


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(found, os.X_OK):
        raise RuntimeError(
            "redis-server is not installed: `make test` installs Debian's redis-server "
            "(apt-get install redis-server, as root or via sudo)"
        )
    return found


@contextmanager
def redis_server(log_path: Path) -> Iterator[str]:
    """A throwaway Redis on a free loopback port, nothing saved; yields its URL."""
    port = free_port()
    argv = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port),
            "--save", "", "--appendonly", "no", "--protected-mode", "yes"]  # fmt: skip
    with log_path.open("wb") as log:
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    process = Process(popen, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not come up:\n{process.log()}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.stop()


@contextmanager
def celery_worker(
    env: Mapping[str, str], log_path: Path, concurrency: int = 2
) -> Iterator[Process]:
    """``celery worker`` (prefork) for the test project's Celery app."""
    argv = ["-m", "celery", "-A", "tests.integrations.django_site.tasks", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency), "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    with started(argv, env, log_path) as process:
        yield process


@contextmanager
def served(argv: list[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> Iterator[str]:
    """``python -m <argv>`` in ``cwd``, ``{port}`` in it a free port; yields its base
    URL once it answers HTTP."""
    port = free_port()
    command = ["-m", *(part.replace("{port}", str(port)) for part in argv)]
    with started(command, env, log_path, cwd=cwd) as process:
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base)
        except TimeoutError:
            raise RuntimeError(f"{argv[0]} did not come up:\n{process.log()}") from None
        yield base
