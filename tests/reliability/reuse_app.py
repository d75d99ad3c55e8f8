"""The connection-reuse app (``tests/connection_reuse.py``), as a server imports it."""

from __future__ import annotations

import neatlogs_web
from tests.connection_reuse import AllStacks

neatlogs_web.init(workflow_name="reuse", schedule_delay_ms=50, flush_on_sigterm=False)
asgi_app = AllStacks()
