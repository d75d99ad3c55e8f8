"""The browser's side of header sessions, shipped with the package.

``neatlogs-session.js`` is a small ES module that keeps the signed session
token per tab or per browser and sends it with ``fetch``. Serve it from the
API with one route (it changes only with the package, so the responses carry
validators for conditional requests), or copy :data:`SCRIPT` into the
frontend's sources. Starlette and Flask are imported only when their helper
is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from flask import Response as FlaskResponse
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["SCRIPT", "script_endpoint", "script_view"]

#: The ES module, for copying into a frontend or serving with any static handler.
SCRIPT: Final = Path(__file__).with_name("neatlogs-session.js")
_MEDIA_TYPE: Final = "text/javascript"


async def script_endpoint(request: Request) -> Response:
    """Starlette / FastAPI endpoint: ``app.add_route("/neatlogs-session.js", script_endpoint)``."""
    from starlette.responses import FileResponse

    return FileResponse(SCRIPT, media_type=_MEDIA_TYPE, headers={"Cache-Control": "no-cache"})


def script_view() -> FlaskResponse:
    """Flask view: ``app.add_url_rule("/neatlogs-session.js", view_func=script_view)``."""
    from flask import send_file

    return send_file(SCRIPT, mimetype=_MEDIA_TYPE, max_age=0)
