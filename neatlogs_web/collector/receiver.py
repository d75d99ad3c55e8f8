"""The OTLP/HTTP trace endpoint, `POST /v1/traces`, as the OTLP specification describes it.

Every bad request is answered and forgotten: the body is bounded while it is read and
decompressed as it arrives (a small body that would inflate past the limit is refused
at the limit, never inflated whole), the spans and parts of one request are counted
on the wire before any is built, errors come back in the encoding the sender used, and
nothing a sender does can stop the receiver or touch what is already stored.
"""

from __future__ import annotations

import hmac
import logging
import sqlite3
import zlib
from dataclasses import replace

from google.rpc.status_pb2 import Status
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from . import felt, otlp
from .store import Store

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_FORMATS: dict[str, otlp.Format] = {
    PROTOBUF: "protobuf",
    "application/protobuf": "protobuf",
    JSON: "json",
}
# zlib's window-bits: 16 + 15 reads gzip, 15 reads the zlib stream HTTP calls "deflate".
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_IDENTITY = ("", "identity")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Spans in one export: SDKs send 512 by default, the OpenTelemetry Collector 8,192.
#: Each stored span costs memory while its request is handled, so this bounds that.
DEFAULT_MAX_SPANS = 20_000


class _Rejected(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class TraceReceiver:
    """The endpoint; options are fixed once, and nothing per request is kept on it."""

    def __init__(
        self,
        store: Store,
        *,
        api_key: str | None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_spans: int = DEFAULT_MAX_SPANS,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        if max_spans < 1:
            raise ValueError("max_spans must be at least 1")
        self._store = store
        self._api_key = api_key.encode() if api_key else None
        self._max_body_bytes = max_body_bytes
        self._max_spans = max_spans

    async def handle(self, request: Request) -> Response:
        """Answer one export request."""
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = _FORMATS.get(media_type)
        try:
            self._authorize(request)
            if fmt is None:
                raise _Rejected(
                    415, f"unsupported Content-Type {media_type!r}: send {PROTOBUF} or {JSON}"
                )
            encoding = request.headers.get("content-encoding", "").strip().lower()
            if encoding not in _IDENTITY and encoding not in _DECODERS:
                raise _Rejected(
                    415, f"unsupported Content-Encoding {encoding!r}: send gzip, deflate or none"
                )
            body = await self._read_body(request, encoding)
            # Parsing and writing are CPU and disk work: off the event loop.
            batch = await run_in_threadpool(self._ingest, body, fmt)
        except _Rejected as exc:
            return _error(exc.status_code, exc.message, fmt)
        except ClientDisconnect:
            # The sender is gone; whatever it sent is dropped and nobody reads the answer.
            return Response(status_code=400)
        except otlp.TooLarge as exc:
            return _error(413, str(exc), fmt)
        except otlp.MalformedRequest as exc:
            return _error(400, str(exc), fmt)
        except sqlite3.Error:
            logger.exception("storing spans failed")
            # 503 is the status OTLP senders retry with backoff.
            return _error(503, "the collector could not store the spans; retry later", fmt)
        media = PROTOBUF if fmt == "protobuf" else JSON
        return Response(otlp.encode_response(batch, fmt), media_type=media)

    def _authorize(self, request: Request) -> None:
        if self._api_key is None:
            return
        given = request.headers.get("x-api-key", "").encode()
        if not hmac.compare_digest(given, self._api_key):
            raise _Rejected(401, "missing or wrong x-api-key header")

    async def _read_body(self, request: Request, encoding: str) -> bytes:
        """The body, decompressed as it arrives; 413 as soon as either the bytes sent
        or the bytes they inflate to pass the limit."""
        limit = self._max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Rejected(413, f"body is over the collector's limit of {limit} bytes")
        decoder = None if encoding in _IDENTITY else zlib.decompressobj(_DECODERS[encoding])
        chunks: list[bytes] = []
        received = inflated = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _Rejected(413, f"body is over the collector's limit of {limit} bytes")
            if decoder is None:
                chunks.append(chunk)
                continue
            try:
                # max_length bounds the output: a "zip bomb" stops inflating at the limit.
                data = decoder.decompress(chunk, limit - inflated + 1)
            except zlib.error as exc:
                raise _Rejected(400, f"body is not valid {encoding}: {exc}") from exc
            inflated += len(data)
            if inflated > limit:
                raise _Rejected(
                    413, f"decompressed body is over the collector's limit of {limit} bytes"
                )
            chunks.append(data)
        if decoder is not None and not decoder.eof:
            raise _Rejected(400, f"body is truncated {encoding} data")
        return b"".join(chunks)

    def _ingest(self, body: bytes, fmt: otlp.Format) -> otlp.Batch:
        batch = otlp.decode(body, fmt, max_spans=self._max_spans)
        self._store.ingest(batch)
        unreadable = felt.unreadable_figures(batch.spans)
        if not unreadable:
            return batch
        # The spans are stored; what the sender learns is which figures no turn shows.
        warning = (
            f"{unreadable} felt-latency figure(s) were no wait of 0 to"
            f" {felt.MAX_WAIT_SECONDS} seconds (or no bool for complete) and were ignored"
        )
        return replace(batch, reason="; ".join(filter(None, (batch.reason, warning))))


def _error(status_code: int, message: str, fmt: otlp.Format | None) -> Response:
    """An error in the sender's encoding: a google.rpc.Status for protobuf, else JSON."""
    if fmt == "protobuf":
        body = Status(code=_GRPC_CODES.get(status_code, 2), message=message)
        return Response(body.SerializeToString(), status_code, media_type=PROTOBUF)
    return JSONResponse({"error": message}, status_code)


# The gRPC code matching each HTTP status, as the Status message carries one.
_GRPC_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 503: 14}
