"""A real Arize Phoenix server on 127.0.0.1 for tests.

Phoenix is a heavy package (hundreds of MB: pandas, pyarrow, grpcio, an LLM
agent stack) that pins its own versions of OpenTelemetry, FastAPI and
Starlette, so it lives in its own virtual environment, ``.venv-phoenix`` at
the repository root, never in the project's ``.venv``. Only the server runs
there; the tests talk to it over HTTP like any user's app would.

``ensure_installed()`` creates that environment on first use (``make
phoenix`` calls it too, through ``python -m tests.backends.phoenix_server
install``). ``PhoenixServer`` starts ``phoenix serve`` on free ports with a
temporary working directory and SQLite store, telemetry and every outbound
call it makes on its own initiative turned off, waits until it answers, and
stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.servers import ROOT, free_port

#: The Phoenix release the suite is proven against. Bump it here only.
PHOENIX_VERSION = "20.26.1"

#: Where Phoenix's own environment lives; ``NEATLOGS_PHOENIX_VENV`` overrides it.
DEFAULT_VENV = ROOT / ".venv-phoenix"

#: First install downloads ~850 MB of wheels; a start applies ~100 migrations.
INSTALL_TIMEOUT_S = 900.0
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0

# Everything Phoenix would reach out to the internet for on its own, off:
# the telemetry pixels, web fonts, the WASM sandbox download, the agent
# assistant and its docs/GitHub tools, and the MCP endpoint we do not use.
QUIET_ENV = {
    "PHOENIX_TELEMETRY_ENABLED": "false",
    "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
    "PHOENIX_AGENTS_DISABLE_WEB_ACCESS": "true",
    "PHOENIX_AGENTS_DISABLE_GITHUB": "true",
    "PHOENIX_AGENTS_DISABLE_BASH": "true",
    "PHOENIX_ENABLE_MCP_SERVER": "false",
    "PHOENIX_ENABLE_PROMETHEUS": "false",
    "PHOENIX_ENABLE_AUTH": "false",
    # Its migrations print every SQL statement otherwise.
    "PHOENIX_LOG_MIGRATIONS": "false",
    "PHOENIX_LOGGING_LEVEL": "warning",
}


class PhoenixError(RuntimeError):
    """Phoenix could not be installed or did not start."""


def venv_dir() -> Path:
    return Path(os.environ.get("NEATLOGS_PHOENIX_VENV") or DEFAULT_VENV)


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _stamp(venv: Path) -> Path:
    return venv / f".installed-arize-phoenix-{PHOENIX_VERSION}"


def ensure_installed() -> Path:
    """Install ``arize-phoenix`` into its own environment if needed; return its python."""
    venv = venv_dir()
    python = _venv_python(venv)
    if _stamp(venv).exists() and python.exists():
        return python
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)], "create Phoenix's virtual environment")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"arize-phoenix=={PHOENIX_VERSION}",
        ],
        f"install arize-phoenix=={PHOENIX_VERSION}",
    )
    for old in venv.glob(".installed-arize-phoenix-*"):
        old.unlink()
    _stamp(venv).touch()
    return python


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PhoenixError(f"could not {what} in {INSTALL_TIMEOUT_S:.0f}s") from exc
    if done.returncode != 0:
        raise PhoenixError(f"could not {what} (exit {done.returncode}):\n{done.stderr[-4000:]}")


class PhoenixServer:
    """``phoenix serve`` in a subprocess; use as a context manager.

    ``url`` is the HTTP base (UI, REST ``/v1``, GraphQL ``/graphql``, and
    OTLP/HTTP at ``/v1/traces``); ``grpc_port`` is its OTLP/gRPC port, a free
    one, since Phoenix always opens it.
    """

    def __init__(self, python: Path | None = None, start_timeout_s: float = START_TIMEOUT_S):
        self.python = python if python is not None else ensure_installed()
        self.start_timeout_s = start_timeout_s
        self.startup_s: float | None = None
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.grpc_port = free_port()
        while self.grpc_port == self.port:
            self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.otlp_traces_url = f"{self.url}/v1/traces"

    @property
    def working_dir(self) -> Path:
        assert self._workdir is not None, "the server is not running"
        return self._workdir / "phoenix"

    @property
    def log_path(self) -> Path:
        assert self._workdir is not None, "the server is not running"
        return self._workdir / "phoenix.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (AssertionError, OSError):
            return ""

    def start(self) -> None:
        try:
            self._start()
        except PhoenixError as error:
            # A free port can be taken between our probe and Phoenix's bind: once more.
            if "address already in use" not in str(error):
                raise
            self._pick_ports()
            self._start()

    def _start(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="phoenix-test-"))
        self.working_dir.mkdir()
        tmp = self._workdir / "tmp"
        tmp.mkdir()
        env = {
            key: value
            for key, value in os.environ.items()
            # Our own configuration must not leak into Phoenix's (it is an
            # OpenTelemetry app itself, and reads PHOENIX_* settings).
            if not key.startswith(("PHOENIX_", "OTEL_", "NEATLOGS_", "FASTAPI_OTEL_"))
        }
        env.update(QUIET_ENV)
        env.update(
            {
                "PHOENIX_HOST": "127.0.0.1",
                "PHOENIX_PORT": str(self.port),
                "PHOENIX_GRPC_PORT": str(self.grpc_port),
                "PHOENIX_WORKING_DIR": str(self.working_dir),
                "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{self.working_dir / 'phoenix.db'}",
                # Its pid files go under the temp dir: keep them in ours.
                "TMPDIR": str(tmp),
                "PYTHONUNBUFFERED": "1",
            }
        )
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(self.python), "-m", "phoenix.server.main", "serve"],
                cwd=self._workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started

    def _wait_until_ready(self, started: float) -> None:
        assert self._process is not None
        deadline = started + self.start_timeout_s
        with httpx.Client(timeout=2.0) as http:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise PhoenixError(
                        f"Phoenix exited with code {code} while starting; its log:\n"
                        f"{self.log()[-8000:]}"
                    )
                try:
                    # /healthz answers once uvicorn serves; /v1/projects once the
                    # database is migrated and the default project exists.
                    if (
                        http.get(f"{self.url}/healthz").status_code == 200
                        and http.get(f"{self.url}/v1/projects").status_code == 200
                    ):
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise PhoenixError(
                        f"Phoenix did not answer on {self.url} within "
                        f"{self.start_timeout_s:.0f}s; its log:\n{self.log()[-8000:]}"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> PhoenixServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if argv == ["install"]:
        started = time.monotonic()
        python = ensure_installed()
        print(f"arize-phoenix {PHOENIX_VERSION} ready in {venv_dir()} ({python})")
        print(f"({time.monotonic() - started:.0f}s)")
        return 0
    if argv == ["serve"]:
        with PhoenixServer() as server:
            print(f"Phoenix {PHOENIX_VERSION} on {server.url} (started in {server.startup_s:.1f}s)")
            print("Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0
    print("usage: python -m tests.backends.phoenix_server install|serve", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
