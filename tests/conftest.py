from __future__ import annotations

from collections.abc import Iterator

import pytest
from itsdangerous.signer import SigningAlgorithm
from playwright.sync_api import Browser, sync_playwright

import neatlogs_web
from tests.otlp_receiver import OTLPReceiver
from tests.pipeline import reset_global_tracer_provider

# Debian's chromium, as CI installs it; flags keep it off the (closed) network.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless chromium per test module, driven by Playwright (closed before the
    module's neighbours run, so its event loop never meets theirs)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


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
