"""Fixtures for the suites that run against real third-party backends.

One Phoenix server serves the whole test session (it takes 10-20 s to start);
each test writes to its own project, or to a project it owns, so tests stay
independent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.backends.phoenix_client import PhoenixClient
from tests.backends.phoenix_server import PhoenixServer, ensure_installed


@pytest.fixture(scope="session")
def phoenix_server() -> Iterator[PhoenixServer]:
    """A real Arize Phoenix server on 127.0.0.1 (installed on first use)."""
    with PhoenixServer(python=ensure_installed()) as server:
        yield server


@pytest.fixture
def phoenix(phoenix_server: PhoenixServer) -> Iterator[PhoenixClient]:
    with PhoenixClient(phoenix_server.url) as client:
        yield client


@pytest.fixture
def project_name(request: pytest.FixtureRequest) -> str:
    """A project name no other test writes to."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
