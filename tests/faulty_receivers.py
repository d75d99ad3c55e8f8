"""Receivers that misbehave on 127.0.0.1, one per kind of trouble export meets.

Each is a context manager yielding an endpoint URL, so a test can run the same
scenario against every fault: nothing listening, a black hole that accepts
connections and never answers, a slow receiver, HTTP 500 and HTTP 429. All of
them stay on loopback and stop with the ``with`` block.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from tests.otlp_receiver import OTLPReceiver
from tests.servers import free_port


@contextmanager
def closed_port() -> Iterator[str]:
    """A port nobody listens on: every connection is refused."""
    yield f"http://127.0.0.1:{free_port()}"


@contextmanager
def black_hole() -> Iterator[str]:
    """Accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def answering(
    status: int = 200, delay_s: float = 0.0, retry_after: str | None = None
) -> Iterator[str]:
    """A real OTLP receiver that answers ``status`` after ``delay_s``."""
    with OTLPReceiver() as receiver:
        receiver.status = status
        receiver.delay_s = delay_s
        receiver.retry_after = retry_after
        yield receiver.url


#: Every fault by name, as the shutdown table lists them.
FAULTS: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "closed port": closed_port,
    "black hole": black_hole,
    "slow (3 s)": lambda: answering(delay_s=3.0),
    "HTTP 500": lambda: answering(status=500),
    "HTTP 429": lambda: answering(status=429, retry_after="1"),
}
