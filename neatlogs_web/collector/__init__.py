"""A local OTLP collector with a session timeline page, for development.

It receives what any neatlogs or OpenTelemetry SDK exports over OTLP/HTTP, keeps it in
SQLite, and shows sessions as timelines. `neatlogs-web serve` runs it; `create_app`
embeds it. Production sends the same OTLP to the neatlogs backend or an OpenTelemetry
Collector instead.
"""

from .app import create_app
from .receiver import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SPANS
from .store import Store, StoreError, default_db_path

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_SPANS",
    "Store",
    "StoreError",
    "create_app",
    "default_db_path",
]
