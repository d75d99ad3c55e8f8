"""The two apps the loopback run serves with uvicorn: bare Starlette and the same with ours."""

from __future__ import annotations

from benchmarks.asgi_suite import ours, starlette_app

bare_app = starlette_app()
ours_app = starlette_app([ours()])
