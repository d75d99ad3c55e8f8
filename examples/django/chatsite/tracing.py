"""``init()`` once per process, before the application is built."""

from __future__ import annotations

import os

import neatlogs_web

neatlogs_web.init(
    workflow_name="example-chat-django",
    # Without an endpoint the example prints spans; `neatlogs-web serve` receives them.
    exporter=None if os.environ.get("NEATLOGS_ENDPOINT") else "console",
    schedule_delay_ms=1000,
)
