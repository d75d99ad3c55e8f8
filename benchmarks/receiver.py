"""A local OTLP/HTTP receiver that reads each export request and throws it away.

It stands in for a tracing backend on 127.0.0.1 so that export is measured
for real (spans encoded, gzipped and sent over HTTP) without the cost of a
backend that stores them. Every ``POST`` is answered ``200`` with an empty
``ExportTraceServiceResponse`` (zero bytes of protobuf), whatever the path, so
one receiver serves ``/v1/traces``, Langfuse's ``/api/public/otel/v1/traces``
and anything else an SDK appends to its base URL.

Requests are tallied by the first segment of their path, so each variant
exports under its own prefix (``/ours/v1/traces``, ``/langfuse/api/...``) and
the report can say how many requests, bytes and spans each one sent per turn
(spans are counted by decoding the protobuf when ``opentelemetry-proto`` is
installed: that is how a dropped span would show). The receiver runs in the
benchmark's parent process, never in a measured one.
"""

from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _request_type() -> Any:
    """The protobuf request message, or ``None`` without ``opentelemetry-proto``."""
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError:  # the test extras install it; without it spans go uncounted
        return None
    return trace_service_pb2.ExportTraceServiceRequest


_EXPORT_REQUEST = _request_type()


@dataclass
class Tally:
    """What one path prefix sent so far."""

    requests: int = 0
    #: Bytes of request bodies as they came over the wire (gzipped where the SDK gzips).
    body_bytes: int = 0
    #: Requests whose body was gzip-encoded.
    gzipped: int = 0
    #: Spans in those requests; ``None`` when they cannot be decoded here.
    spans: int | None = None


def count_spans(body: bytes, gzipped: bool) -> int | None:
    """Spans in one OTLP protobuf export request, or ``None`` without the protobuf types."""
    if _EXPORT_REQUEST is None:
        return None
    request = _EXPORT_REQUEST.FromString(gzip.decompress(body) if gzipped else body)
    return sum(
        len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans
    )


class DiscardReceiver:
    """``ThreadingHTTPServer`` on 127.0.0.1 with per-prefix tallies; use as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[str, Tally] = defaultdict(Tally)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bench-otlp-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def tally(self, prefix: str) -> Tally:
        """A copy of what requests under ``/{prefix}/`` have sent so far."""
        with self._lock:
            found = self._tallies.get(prefix, Tally())
            return Tally(found.requests, found.body_bytes, found.gzipped, found.spans)

    def _record(self, path: str, body: bytes, gzipped: bool) -> None:
        prefix = path.lstrip("/").split("/", 1)[0]
        spans = count_spans(body, gzipped)
        with self._lock:
            tally = self._tallies[prefix]
            tally.requests += 1
            tally.body_bytes += len(body)
            tally.gzipped += gzipped
            if spans is not None:
                tally.spans = (tally.spans or 0) + spans

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as exporters' sessions expect

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                gzipped = self.headers.get("Content-Encoding", "").lower() == "gzip"
                receiver._record(self.path, body, gzipped)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None  # a line per export would drown the progress output

        return Handler

    def __enter__(self) -> DiscardReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
