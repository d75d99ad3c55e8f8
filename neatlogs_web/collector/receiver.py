"""The OTLP/HTTP trace endpoint, `POST /v1/traces`, as the OTLP specification describes it.

Every bad request is answered and forgotten: the body is bounded while it is read and
again while it is decompressed, errors come back in the encoding the sender used, and
nothing a sender does can stop the receiver or touch what is already stored.
"""

from __future__ import annotations

import hmac
import logging
import sqlite3
import zlib

from google.rpc.status_pb2 import Status
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from . import otlp
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


class _Rejected(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class TraceReceiver:
    """The endpoint; options are fixed once, and nothing per request is kept on it."""

    def __init__(
        self, store: Store, *, api_key: str | None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self._store = store
        self._api_key = api_key.encode() if api_key else None
        self._max_body_bytes = max_body_bytes

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
            body = await self._read_body(request)
            # Decompressing, parsing and writing are CPU and disk work: off the event loop.
            batch = await run_in_threadpool(self._ingest, body, encoding, fmt)
        except _Rejected as exc:
            return _error(exc.status_code, exc.message, fmt)
        except ClientDisconnect:
            # The sender is gone; whatever it sent is dropped and nobody reads the answer.
            return Response(status_code=400)
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

    async def _read_body(self, request: Request) -> bytes:
        limit = self._max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Rejected(413, f"body is over the collector's limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Rejected(413, f"body is over the collector's limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _ingest(self, body: bytes, encoding: str, fmt: otlp.Format) -> otlp.Batch:
        if encoding not in _IDENTITY:
            body = self._decompress(body, encoding)
        batch = otlp.decode(body, fmt)
        self._store.ingest(batch)
        return batch

    def _decompress(self, body: bytes, encoding: str) -> bytes:
        limit = self._max_body_bytes
        decoder = zlib.decompressobj(_DECODERS[encoding])
        try:
            # max_length bounds the output, so a small "zip bomb" never gets expanded whole.
            data = decoder.decompress(body, limit + 1)
        except zlib.error as exc:
            raise _Rejected(400, f"body is not valid {encoding}: {exc}") from exc
        if len(data) > limit:
            raise _Rejected(
                413, f"decompressed body is over the collector's limit of {limit} bytes"
            )
        if not decoder.eof:
            raise _Rejected(400, f"body is truncated {encoding} data")
        return data


def _error(status_code: int, message: str, fmt: otlp.Format | None) -> Response:
    """An error in the sender's encoding: a google.rpc.Status for protobuf, else JSON."""
    if fmt == "protobuf":
        body = Status(code=_GRPC_CODES.get(status_code, 2), message=message)
        return Response(body.SerializeToString(), status_code, media_type=PROTOBUF)
    return JSONResponse({"error": message}, status_code)


# The gRPC code matching each HTTP status, as the Status message carries one.
_GRPC_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 503: 14}
