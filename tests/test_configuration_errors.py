"""A configuration mistake stops the app at startup, with a message naming the option.

Starlette builds ``add_middleware()`` classes on the server's first call, the
lifespan, not when the app module is imported: the error must still stop
the server, not turn into a 500 on every request.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.servers import free_port

APP = """
from fastapi import FastAPI
from neatlogs_web.asgi import NeatlogsSessionMiddleware

app = FastAPI()
app.add_middleware(NeatlogsSessionMiddleware, secret_key="k", {options})

@app.get("/")
def index() -> dict[str, str]:
    return {{"ok": "yes"}}
"""


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ("conversation_path='/chat/{conversation_id}'", "'conversation_path': did you mean"),
        ("conversation_paths=['/chat/{id}']", "conversation_paths: template '/chat/{id}'"),
        ("same_site='none'", "same_site='none' needs secure=True"),
        ("header_name=None", "header_name must be a string, not None"),
        ("max_age=float('inf')", "max_age must be a number of seconds from 1"),
    ],
    ids=["typo", "bad-template", "bad-value", "bad-type", "infinite"],
)
def test_uvicorn_stops_at_startup_naming_the_option(
    tmp_path: Path, options: str, named: str
) -> None:
    (tmp_path / "badapp.py").write_text(textwrap.dedent(APP.format(options=options)))
    port = free_port()
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "uvicorn", "badapp:app", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as running:
        pytest.fail(f"uvicorn kept serving a misconfigured app:\n{running.stderr!s}")
    assert finished.returncode != 0
    assert named in finished.stderr
    assert "Application startup failed" in finished.stderr
