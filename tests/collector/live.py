"""The local collector on loopback, as tests and the screenshots script start it: in a
thread of this process (uvicorn), or as `neatlogs-web serve` in a process of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import uvicorn
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from neatlogs_web.collector import Store, create_app
from tests.collector import otlp_data as otlp
from tests.servers import free_port

ResultT = TypeVar("ResultT")


class LiveCollector:
    """The collector served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, db: Path, api_key: str | None = None, **options: Any) -> None:
        self.store = Store(db)
        config = uvicorn.Config(
            create_app(self.store, api_key=api_key, **options),
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LiveCollector:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("the collector did not start")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()
        self.store.close()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=10)

    def send(
        self, *spans: Span, resource: dict[str, Any] | None = None, scope: str = "tests"
    ) -> httpx.Response:
        """Export these spans in one OTLP/HTTP protobuf request, as an SDK's batch; the
        collector's answer."""
        response = httpx.post(
            self.url + "/v1/traces",
            content=otlp.protobuf(*spans, resource=resource, scope=scope),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response


class CollectorProcess:
    """`neatlogs-web serve` in a process of its own, so its memory is its own to measure."""

    def __init__(self, db: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "neatlogs_web", "serve", "--port", str(port), "--db", str(db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.process = psutil.Process(self._popen.pid)
        for _ in range(400):
            try:
                httpx.get(self.url + "/api/sessions", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.025)
        self.stop()
        raise RuntimeError("the collector process did not start")

    def peak_growth(self, call: Callable[[], ResultT]) -> tuple[ResultT, int]:
        """What `call` returns, and how far above its RSS before the call the
        collector's RSS went while it ran (sampled every few milliseconds)."""
        before = self.process.memory_info().rss
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, self.process.memory_info().rss)
                done.wait(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = call()
        finally:
            done.set()
            sampler.join()
        return result, peak - before

    def stop(self) -> None:
        self._popen.terminate()
        self._popen.wait(10)
