"""Fixtures every tier shares, and the tiers themselves.

A tier is a marker (declared in pyproject.toml) given here by where a test
lives, so a module carries no decorator for it and `-m` chooses a tier:
``make pythons`` runs the tests no tier marks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from itsdangerous.signer import SigningAlgorithm

import neatlogs_web
from neatlogs_web._session.signing import SessionSigner, VerifiedToken
from tests.otlp_receiver import OTLPReceiver
from tests.pipeline import reset_global_tracer_provider

if TYPE_CHECKING:
    from tests.collector.live import LiveCollector

#: Where the tests of each tier live: a folder (ending in "/") or a module.
TIERS = {
    "tests/unit/": "unit",
    "tests/browser/": "browser",
    "tests/backends/": "backends",
    "tests/reliability/": "reliability",
    "tests/integrations/test_celery_worker.py": "redis",
    "tests/integrations/test_django_servers.py": "slow",
    "tests/integrations/test_django_example.py": "slow",
    "tests/test_benchmarks_smoke.py": "slow",
}


#: Folders whose modules share one pytest-xdist worker: the backend suite's one
#: Phoenix server starts once.
ONE_WORKER = ("tests/backends/",)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, before ``-m`` chooses among them."""
    for item in items:
        where = item.path.relative_to(config.rootpath).as_posix()
        for place, tier in TIERS.items():
            if where == place or (place.endswith("/") and where.startswith(place)):
                item.add_marker(tier)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n``, each module runs on one worker, so its module-scoped servers start
    once, and each folder of ``ONE_WORKER`` on one worker."""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return next((folder for folder in ONE_WORKER if module.startswith(folder)), module)

    return ByModule(config, log)


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each test of it runs on both middlewares: ``"asgi"`` and ``"wsgi"``."""
    return str(request.param)


@pytest.fixture
def fresh_global_provider() -> Iterator[None]:
    """No pipeline and no global provider before and after the test."""
    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    yield
    neatlogs_web.shutdown()
    reset_global_tracer_provider()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


@pytest.fixture
def tracing(receiver: OTLPReceiver) -> Iterator[OTLPReceiver]:
    """init() exporting over OTLP/HTTP to a real receiver on 127.0.0.1."""
    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    neatlogs_web.init(endpoint=receiver.url, schedule_delay_ms=20, flush_on_sigterm=False)
    yield receiver
    neatlogs_web.shutdown()
    reset_global_tracer_provider()


@pytest.fixture(autouse=True)
def _no_tracing_leaks() -> Iterator[None]:
    yield
    neatlogs_web.shutdown()
    assert neatlogs_web.current_session_id() is None, "a session binding leaked out of a test"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[LiveCollector]:
    """The local collector on a free loopback port, its store in ``tmp_path``."""
    # Imported on use: `make floor` runs the export tests without the collector's
    # dependencies.
    from tests.collector.live import LiveCollector

    with LiveCollector(tmp_path / "collector.db") as live:
        yield live


@pytest.fixture
def hmac_checks(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One item per HMAC computed to verify a signature (one per key tried)."""
    checks: list[None] = []
    verify = SigningAlgorithm.verify_signature

    def counted(self: SigningAlgorithm, key: bytes, value: bytes, sig: bytes) -> bool:
        checks.append(None)
        return verify(self, key, value, sig)

    monkeypatch.setattr(SigningAlgorithm, "verify_signature", counted)
    return checks


@pytest.fixture
def verified_tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each token the middleware asked to verify, in order (a remembered one is not asked)."""
    tokens: list[str] = []
    verify = SessionSigner.verify

    def counted(self: SessionSigner, token: str) -> VerifiedToken | None:
        tokens.append(token)
        return verify(self, token)

    monkeypatch.setattr(SessionSigner, "verify", counted)
    return tokens
