"""A real OTLP/HTTP receiver on 127.0.0.1 for tests: decodes what arrives.

Spans are decoded with opentelemetry-proto, exactly as a backend would, and
kept flattened for assertions. The receiver can also misbehave on purpose
(status codes, delays) for fault tests. A POST to any path but an OTLP one
(``.../v1/traces``) is a backend's JSON API as a stand-in (Langfuse's
scores, Phoenix's span annotations): recorded in ``api_calls`` and answered
with ``api_status`` after ``api_delay_s``.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    links: list[tuple[str, str]]
    status_code: int


@dataclass(frozen=True)
class ApiCall:
    """A JSON request to a path that is not OTLP's, decoded."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Received:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    api_calls: list[ApiCall] = field(default_factory=list)


class OTLPReceiver:
    """Start with ``with OTLPReceiver() as receiver:``; ``receiver.url`` is the endpoint."""

    def __init__(self, port: int = 0) -> None:
        self.received = Received()
        self.lock = threading.Lock()
        self.status = 200
        self.delay_s = 0.0
        #: Sent as ``Retry-After`` with a non-200 status when set.
        self.retry_after: str | None = None
        #: How the stand-in JSON API answers.
        self.api_status = 200
        self.api_delay_s = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not self.path.endswith("/v1/traces"):
                    self._answer_api_call(body)
                    return
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if receiver.status != 200:
                    self.send_response(receiver.status)
                    if receiver.retry_after is not None:
                        self.send_header("Retry-After", receiver.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._store(request, dict(self.headers.items()), self.path)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _answer_api_call(self, body: bytes) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                call = ApiCall(self.path, headers, json.loads(body))
                with receiver.lock:
                    receiver.received.api_calls.append(call)
                time.sleep(receiver.api_delay_s)
                self.send_response(receiver.api_status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: shutdown() waits for the next poll, once per test.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def _store(
        self, request: ExportTraceServiceRequest, headers: dict[str, str], path: str
    ) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            resource=resource,
                            scope=scope_spans.scope.name,
                            links=[
                                (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                            ],
                            status_code=span.status.code,
                        )
                    )
        with self.lock:
            self.received.spans.extend(spans)
            self.received.requests.append({k.lower(): v for k, v in headers.items()})
            self.received.paths.append(path)

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.received.spans)

    @property
    def api_calls(self) -> list[ApiCall]:
        with self.lock:
            return list(self.received.api_calls)

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> list[ReceivedSpan]:
        """Wait until ``predicate(spans)`` holds; return the spans either way."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            spans = self.spans
            if predicate(spans):
                return spans
            time.sleep(0.02)
        return self.spans

    def clear(self) -> None:
        with self.lock:
            self.received = Received()

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
