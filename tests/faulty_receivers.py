"""Receivers that misbehave on 127.0.0.1, one per kind of trouble export meets.

Each is a context manager yielding an endpoint URL, so a test can run the same
scenario against every fault: nothing listening, a black hole that accepts
connections and never answers, a slow receiver, HTTP 500, HTTP 429 and HTTP 401. A
hostile receiver takes the export, then answers with what would cost the app
memory or time: a gzip bomb, a body that never ends, one byte a second. All of
them stay on loopback and stop with the ``with`` block.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.otlp_receiver import OTLPReceiver
from tests.servers import free_port

#: How much the hostile answers hold, so that a client reading all of it (one
#: without bounds) still ends: a bomb inflating to 300 MiB, a "never ending" body of 512 MiB.
BOMB_INFLATED = 300 * 2**20
ENDLESS_BODY = 512 * 2**20
_BLOCK = bytes(2**16)


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
    "HTTP 401": lambda: answering(status=401),
}


#: Writes a hostile answer on the connection; stops early once the event is set.
Answer = Callable[[BinaryIO, threading.Event], None]


@dataclass
class Hostile:
    url: str = ""
    #: Names of the spans exported to it, decoded: the export itself went through.
    span_names: list[str] = field(default_factory=list)


@contextmanager
def hostile(answer: Answer) -> Iterator[Hostile]:
    """A receiver that takes each export as a real one does, then answers with ``answer``."""
    stop = threading.Event()
    received = Hostile()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.span_names += [
                span.name
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client hung up, as it should
                answer(self.wfile, stop)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    received.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def _head(*headers: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", "Content-Type: application/x-protobuf", *headers, "", ""]
    return "\r\n".join(lines).encode()


def gzip_bomb() -> Answer:
    """HTTP 200 with a gzip body of a few hundred KB that inflates to ``BOMB_INFLATED`` bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip stream
    block = bytes(2**20)
    packed = [packer.compress(block) for _ in range(BOMB_INFLATED // len(block))]
    body = b"".join([*packed, packer.flush()])
    head = _head("Content-Encoding: gzip", f"Content-Length: {len(body)}")

    def answer(wfile: BinaryIO, stop: threading.Event) -> None:
        wfile.write(head + body)

    return answer


def endless_body() -> Answer:
    """HTTP 200 with a chunked body that goes on (for ``ENDLESS_BODY`` bytes)."""
    chunk = b"%x\r\n%s\r\n" % (len(_BLOCK), _BLOCK)

    def answer(wfile: BinaryIO, stop: threading.Event) -> None:
        wfile.write(_head("Transfer-Encoding: chunked"))
        for _ in range(ENDLESS_BODY // len(_BLOCK)):
            if stop.is_set():
                return
            wfile.write(chunk)
        wfile.write(b"0\r\n\r\n")

    return answer


def trickle(*, headers_first: bool) -> Answer:
    """HTTP 200 sent one byte a second: all of it, or the body after prompt headers."""
    head, body = _head("Content-Length: 64"), bytes(64)

    def answer(wfile: BinaryIO, stop: threading.Event) -> None:
        if headers_first:
            wfile.write(head)
        for byte in body if headers_first else head + body:
            wfile.write(bytes([byte]))
            if stop.wait(1.0):
                return

    return answer
