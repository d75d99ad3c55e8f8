"""The missing-secret-key warning points at the app's own line, whichever way it was wired.

A framework that builds the middleware later (Starlette and FastAPI build
``add_middleware()`` classes at the first call) stands between the app and
us; the warning names the app's file all the same: here, this test's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
import httpx
import pytest
from django.conf import settings
from django.test import override_settings
from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from neatlogs_web._session import signing
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiMiddleware
from neatlogs_web.integrations.django import wrap_asgi, wrap_wsgi
from neatlogs_web.integrations.flask import NeatlogsFlask
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiMiddleware
from tests.servers import free_port, wait_until_up

if not settings.configured:
    settings.configure(SECRET_KEY="django-key", SECRET_KEY_FALLBACKS=["django-old"])
    django.setup()


@pytest.fixture(autouse=True)
def _no_key_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key anywhere, and the process key not made yet: the warning is due."""
    monkeypatch.setattr(signing, "_process_key", None)
    monkeypatch.delenv("NEATLOGS_SECRET_KEY", raising=False)


def warned_at(wire: Callable[[], object]) -> str:
    """The file the missing-key warning names when ``wire()`` sets the app up."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wire()
    (warning,) = [w for w in caught if "NEATLOGS_SECRET_KEY" in str(w.message)]
    return warning.filename


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hello")


def first_request(app: Any) -> None:
    """One request through ``app``, as a server's first call builds its middleware."""

    async def get() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/")).status_code == 200

    asyncio.run(get())


def test_starlette_add_middleware() -> None:
    def wire() -> None:
        app = Starlette(routes=[Route("/", hello)])
        app.add_middleware(AsgiMiddleware)
        first_request(app)

    assert warned_at(wire) == __file__


def test_fastapi_add_middleware() -> None:
    def wire() -> None:
        app = FastAPI()
        app.get("/")(lambda: "hello")
        app.add_middleware(AsgiMiddleware)
        first_request(app)

    assert warned_at(wire) == __file__


def test_asgi_middleware_around_an_app() -> None:
    assert warned_at(lambda: AsgiMiddleware(Starlette(routes=[Route("/", hello)]))) == __file__


def test_flask_wsgi_middleware() -> None:
    app = Flask(__name__)
    assert warned_at(lambda: WsgiMiddleware(app.wsgi_app)) == __file__


def test_flask_extension_without_a_secret_key() -> None:
    assert warned_at(lambda: NeatlogsFlask(Flask(__name__))) == __file__


@pytest.mark.parametrize("wrap", [wrap_wsgi, wrap_asgi])
def test_django_wrappers_without_a_secret_key(wrap: Callable[[Any], object]) -> None:
    async def application(scope: Any, receive: Any, send: Any) -> None:
        pass

    with override_settings(SECRET_KEY=""):
        assert warned_at(lambda: wrap(application)) == __file__


def test_under_a_plain_server_the_warning_names_the_framework_not_the_standard_library(
    tmp_path: Path,
) -> None:
    """``uvicorn app:app``: Starlette builds the middleware inside the server's first
    call, so no line of the app's is on the stack; the warning names the
    framework's line that built it, not ``typing``'s in between."""
    (tmp_path / "app.py").write_text(
        "from starlette.applications import Starlette\n"
        "from neatlogs_web.asgi import NeatlogsSessionMiddleware\n"
        "app = Starlette()\n"
        "app.add_middleware(NeatlogsSessionMiddleware)\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NEATLOGS_SECRET_KEY"}
    command = [sys.executable, "-W", "always", "-m", "uvicorn", "app:app", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", timeout_s=20)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    (line,) = [line for line in stderr.splitlines() if "RuntimeWarning: neatlogs_web" in line]
    where = line.split(":", 1)[0]
    assert os.sep + "starlette" + os.sep in where, line
