"""Fixtures: a store, an in-process client, a real collector on loopback, and SDK senders."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from starlette.testclient import TestClient

from neatlogs_web.collector import Store, create_app
from tests.collector.live import CollectorProcess, LiveCollector


@pytest.fixture
def store() -> Iterator[Store]:
    opened = Store(":memory:")
    yield opened
    opened.close()


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_app(store, max_body_bytes=64 * 1024)
    # A loopback Host: the collector answers no other (DNS rebinding protection).
    with TestClient(app, base_url="http://127.0.0.1:4318") as test_client:
        yield test_client


@pytest.fixture
def collector_process(tmp_path: Path) -> Iterator[CollectorProcess]:
    process = CollectorProcess(tmp_path / "process.db")
    yield process
    process.stop()


@pytest.fixture
def live_collector_factory(tmp_path: Path) -> Iterator[Callable[..., LiveCollector]]:
    started: list[LiveCollector] = []

    def start(api_key: str | None = None, **options: Any) -> LiveCollector:
        live = LiveCollector(tmp_path / f"collector-{len(started)}.db", api_key=api_key, **options)
        started.append(live.__enter__())
        return live

    yield start
    for live in started:
        live.__exit__()


@pytest.fixture
def old_database(tmp_path: Path) -> Callable[[int], Path]:
    """A collector database of an earlier schema version, restored in a file of its own
    from its dump beside this file (``collector_v2.sql``, ...)."""

    def restore(version: int) -> Path:
        path = tmp_path / f"collector-v{version}.db"
        dump = Path(__file__).with_name(f"collector_v{version}.sql")
        with sqlite3.connect(path) as database:
            database.executescript(dump.read_text())
        database.close()
        return path

    return restore


@pytest.fixture
def sdk_provider(collector: LiveCollector) -> Iterator[Callable[..., TracerProvider]]:
    """TracerProviders exporting to the live collector the way apps do: OTLP/HTTP, gzip."""
    providers: list[TracerProvider] = []

    def make(service: str = "sdk-app", **resource: str) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
        exporter = OTLPSpanExporter(
            endpoint=f"{collector.url}/v1/traces", compression=Compression.Gzip, timeout=10
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.shutdown()
