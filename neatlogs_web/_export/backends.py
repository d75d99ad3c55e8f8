"""Where each backend takes spans, with which credentials, and where it keeps a judgment.

``init(backend=...)`` names the receiver: the neatlogs backend, any OTLP
receiver, Phoenix or Langfuse. Each takes OTLP/HTTP, at its own path and with
its own credentials; Phoenix and Langfuse also have a place of their own for a
person's judgment of a turn (span annotations, scores) on the same host. This
module says where, and with which headers; it sends nothing.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Final, Literal, get_args
from urllib.parse import urlsplit

from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_TRACES_HEADERS,
)
from opentelemetry.util.re import parse_env_headers

__all__ = ["BACKENDS", "Backend", "Destination", "destination", "detect_backend", "traces_url"]

Backend = Literal["neatlogs", "otlp", "phoenix", "langfuse"]
BACKENDS: Final[tuple[Backend, ...]] = get_args(Backend)
#: Langfuse's OTLP endpoint; the exporter appends ``/v1/traces`` as to any other.
LANGFUSE_OTLP_PATH: Final = "/api/public/otel"
_TRACES_PATH: Final = "/v1/traces"


@dataclass(frozen=True)
class Destination:
    """Where a backend takes spans, the headers it wants, and where a judgment goes."""

    traces_url: str
    #: Headers of our own (credentials); ``None``: only what ``OTEL_EXPORTER_OTLP_*HEADERS`` say.
    headers: dict[str, str] | None
    #: The backend's own API for a judgment of a turn; ``None``: the feedback span only.
    feedback_url: str | None = None

    def all_headers(self) -> dict[str, str]:
        """What the OTLP exporter sends: the environment's headers, ours over them."""
        env = os.environ.get(OTEL_EXPORTER_OTLP_TRACES_HEADERS) or os.environ.get(
            OTEL_EXPORTER_OTLP_HEADERS, ""
        )
        headers = {
            key.lower(): value for key, value in parse_env_headers(env, liberal=True).items()
        }
        return headers | (self.headers or {})


def detect_backend(endpoint: str, api_key: str | None) -> Backend:
    """The backend ``init()`` assumes when not told: Langfuse by its OTLP path,
    else the neatlogs backend with an API key, else any OTLP receiver."""
    if LANGFUSE_OTLP_PATH in urlsplit(endpoint).path:
        return "langfuse"
    return "neatlogs" if api_key else "otlp"


def destination(backend: Backend, endpoint: str, api_key: str | None) -> Destination:
    """Where spans (and judgments) go for ``backend`` at ``endpoint``.

    ``ValueError`` naming the option at fault: an endpoint that is no http(s)
    URL, a Langfuse key that is not ``public_key:secret_key``.
    """
    base = _base(endpoint)
    if backend == "phoenix":
        key = api_key or os.environ.get("PHOENIX_API_KEY")
        return Destination(
            base + _TRACES_PATH,
            {"authorization": f"Bearer {key}"} if key else None,
            base + "/v1/span_annotations",
        )
    if backend == "langfuse":
        host = base.partition(LANGFUSE_OTLP_PATH)[0]
        return Destination(
            host + LANGFUSE_OTLP_PATH + _TRACES_PATH,
            _langfuse_auth(api_key),
            host + "/api/public/scores",
        )
    return Destination(base + _TRACES_PATH, {"x-api-key": api_key} if api_key else None)


def traces_url(endpoint: str) -> str:
    """``{endpoint}/v1/traces``, accepting an endpoint that already ends in it."""
    return _base(endpoint) + _TRACES_PATH


def _base(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(
            f"endpoint {endpoint!r} must be an http:// or https:// URL, e.g. http://127.0.0.1:4318"
        )
    return base.removesuffix(_TRACES_PATH)


def _langfuse_auth(api_key: str | None) -> dict[str, str] | None:
    """Langfuse's Basic auth: ``api_key`` as ``public_key:secret_key``, else
    ``LANGFUSE_PUBLIC_KEY`` and ``LANGFUSE_SECRET_KEY``, as Langfuse's SDKs read them."""
    if api_key is None:
        public, secret = (
            os.environ.get("LANGFUSE_PUBLIC_KEY"),
            os.environ.get("LANGFUSE_SECRET_KEY"),
        )
        if not (public and secret):
            return None
        api_key = f"{public}:{secret}"
    elif not all(api_key.partition(":")[::2]):
        raise ValueError(
            'with backend="langfuse", api_key is "public_key:secret_key" (pk-lf-...:sk-lf-...), '
            "or leave it unset and set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"
        )
    return {"authorization": "Basic " + base64.b64encode(api_key.encode()).decode("ascii")}
