"""Every ```python block of README.md and docs/integrations.md runs as pasted.

Each block is found by the heading it sits under and its place there. An app
is written to ``app.py`` and served as a user serves it (uvicorn, waitress) on
127.0.0.1; requests go over the wire and the spans it exports are read back
from a real OTLP receiver. A section's ``curl`` lines are those requests, sent
as they say; lines that pass a token from one to the next are run by bash, as
pasted. A module is run by a fresh interpreter, followed by a few lines of the
test's own (``probe``) that use what it defined. Install lines are read for
what they bring, and must install the package from the clone. The
README's frontend section is served in Chromium by
``tests/browser/test_frontends.py`` and ``test_readme_page.py``. The Django
blocks are laid out as the project files their first lines name and served
by the page's own commands. This file checks that every other block is run
here, or by the test ``RUN_ELSEWHERE`` names (the Celery recipe's web side,
with Redis and a worker). A block that cannot run alone (a signature list, an
app's own setup) has a ``<!-- not-runnable: reason -->`` line right above
it, and the reason says where its whole is run.

A new block fails ``test_every_python_block_is_run_or_marked`` until it gets
a test here or a marker there.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from packaging.requirements import Requirement
from websockets.sync.client import connect

from tests.install_lines import (
    THIS_PACKAGE,
    extras_of_this_package,
    from_the_clone,
    inline_pip_install_arguments,
    installed_by,
    pip_install_arguments,
)
from tests.integrations._processes import redis_server, served, started
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.readme import readme_frontend_snippets
from tests.servers import ROOT, run_example

DOCS = ("README.md", "docs/integrations.md")
NOT_RUNNABLE = re.compile(r"<!-- not-runnable: (.+?) -->")


@dataclass(frozen=True)
class Snippet:
    doc: str
    section: str
    index: int  # 1-based, among the section's python blocks
    code: str
    not_runnable: str | None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.doc, self.section, self.index)


def snippets(doc: str) -> list[Snippet]:
    """The ```python blocks of ``doc``, each with its section and marker."""
    found: list[Snippet] = []
    lines = (ROOT / doc).read_text().splitlines()
    section, counts, number = "", dict[str, int](), 0
    while number < len(lines):
        line = lines[number]
        if line.startswith("```"):
            end = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("```"))
            if line.strip() == "```python":
                counts[section] = counts.get(section, 0) + 1
                marker = NOT_RUNNABLE.fullmatch(lines[number - 1].strip())
                code = "\n".join(lines[number + 1 : end]) + "\n"
                reason = marker.group(1) if marker else None
                found.append(Snippet(doc, section, counts[section], code, reason))
            number = end + 1
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        number += 1
    return found


def snippet(doc: str, section: str, index: int = 1) -> Snippet:
    for found in snippets(doc):
        if found.key == (doc, section, index):
            assert found.not_runnable is None, f"{found.key} is marked not runnable"
            return found
    raise AssertionError(f"no python block {index} under {section!r} in {doc} any more")


README_FASTAPI = ("README.md", "Quick start: FastAPI", 1)
README_FLASK = ("README.md", "Quick start: Flask", 1)
FRONTENDS = "Frontends: one session per tab, or per browser"
DOCS_HTTPX = ("docs/integrations.md", "Calling other services: httpx", 1)
DOCS_FASTAPI = ("docs/integrations.md", "FastAPI: bind a route parameter, read the session", 1)
DOCS_FLASK = ("docs/integrations.md", "Flask: an extension configured from `app.config`", 1)
DJANGO = "Django: configured from `settings.py`"
DOCS_DJANGO = [("docs/integrations.md", DJANGO, index) for index in range(1, 6)]
CELERY = "Celery: the session follows the task into the worker"
DOCS_CELERY = ("docs/integrations.md", CELERY, 1)
DOCS_WEBSOCKETS = ("docs/integrations.md", "WebSockets", 1)
DOCS_THREADS = ("docs/integrations.md", "Threads and tasks", 1)
DOCS_LOGGING = ("docs/integrations.md", "Logging", 1)
DOCS_BACKENDS = ("docs/integrations.md", "Backends and their session keys", 1)
README_FEEDBACK = ("README.md", "Feedback", 1)
README_FEEDBACK_IN_BODY = ("README.md", "Feedback", 2)

# Every runnable block, and the test that runs it.
RUN_HERE = {
    README_FASTAPI: "test_readme_fastapi_quick_start_streams_one_trace_per_turn",
    README_FLASK: "test_readme_flask_quick_start_traces_the_turn_in_the_cookie_session",
    DOCS_HTTPX: "test_httpx_snippet_sends_the_session_to_the_allowed_host",
    DOCS_FASTAPI: "test_fastapi_dependency_snippet_binds_the_path_conversation",
    DOCS_FLASK: "test_flask_extension_snippet_streams_in_the_path_conversation",
    **{key: "test_django_snippets_serve_as_pasted" for key in DOCS_DJANGO},
    DOCS_CELERY: "test_celery_recipe_runs_the_documented_request_in_the_worker",
    DOCS_WEBSOCKETS: "test_websocket_snippet_rebinds_per_message",
    DOCS_THREADS: "test_threads_snippet_keeps_the_session_in_every_thread",
    DOCS_LOGGING: "test_logging_snippet_prints_the_session_on_each_line",
    DOCS_BACKENDS: "test_backend_keys_snippet_stamps_both_backends_keys",
    README_FEEDBACK: "test_feedback_snippet_records_a_judgment_on_the_turn_of_its_session",
    README_FEEDBACK_IN_BODY: "test_feedback_in_body_snippet_names_the_turn_a_stream_opened",
}
RUN_BY_FRONTENDS_TEST = {("README.md", FRONTENDS, 1), ("README.md", FRONTENDS, 2)}
# Blocks another module runs as pasted, with what they need around them: that
# module, and the test in it.
RUN_ELSEWHERE = {
    ("docs/integrations.md", CELERY, 2): (
        "tests/integrations/test_celery_recipe.py",
        "test_every_task_span_is_exported_in_its_session_and_turn",
    ),
}


def test_every_python_block_is_run_or_marked() -> None:
    unaccounted = []
    for doc in DOCS:
        for found in snippets(doc):
            if found.not_runnable is not None:
                assert len(found.not_runnable) > 20, f"{found.key}: say why, and what runs it"
            elif not {found.key} & (RUN_HERE.keys() | RUN_BY_FRONTENDS_TEST | RUN_ELSEWHERE.keys()):
                unaccounted.append(found.key)
    assert unaccounted == [], "python blocks no test runs: add a test here, or a marker"
    keys = {found.key for doc in DOCS for found in snippets(doc) if not found.not_runnable}
    listed = RUN_HERE.keys() | RUN_BY_FRONTENDS_TEST | RUN_ELSEWHERE.keys()
    assert listed <= keys, "a block listed here is gone"
    names = {name for name in globals() if name.startswith("test_")}
    assert set(RUN_HERE.values()) <= names
    for module, test in RUN_ELSEWHERE.values():
        assert f"def {test}(" in (ROOT / module).read_text(), f"{module} has no {test}"


def test_frontend_blocks_are_the_ones_the_browser_test_serves() -> None:
    served = readme_frontend_snippets()
    assert [snippet("README.md", FRONTENDS, i).code for i in (1, 2)] == [
        served["fastapi"],
        served["flask"],
    ]


# -- running them ---------------------------------------------------------------


def readme_key_command() -> list[str]:
    """The README's command that makes a secret key, as argv."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"\$\((python3 -c '[^']*secrets[^']*')\)", readme)
    assert command, "the README shows how to make a key"
    argv = shlex.split(command.group(1))
    return [sys.executable, *argv[1:]]


@pytest.fixture(scope="module")
def secret_key() -> str:
    key = subprocess.run(readme_key_command(), capture_output=True, text=True, check=True)
    made = key.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", made), made
    return made


def env_for(receiver: OTLPReceiver, secret_key: str, folder: Path) -> dict[str, str]:
    return {
        "NEATLOGS_ENDPOINT": receiver.url,
        "NEATLOGS_SECRET_KEY": secret_key,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "PYTHONPATH": str(folder),
    }


UVICORN = ["uvicorn", "app:app", "--port", "{port}", "--no-access-log"]
WAITRESS = ["waitress", "--listen=127.0.0.1:{port}", "--threads=8", "app:app"]


@contextmanager
def serve(
    code: str, command: list[str], receiver: OTLPReceiver, secret_key: str, folder: Path
) -> Iterator[str]:
    """``code`` as ``app.py``, served by ``command`` on 127.0.0.1; yields its base URL."""
    (folder / "app.py").write_text(code)
    with run_example(command, env_for(receiver, secret_key, folder)) as base:
        yield base


def run_module(
    code: str, probe: str, receiver: OTLPReceiver, secret_key: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` and then ``probe`` in a fresh interpreter; fail on a non-zero exit."""
    script = folder / "snippet.py"
    script.write_text(code + "\n# -- the test's probe --\n" + textwrap.dedent(probe))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env={**os.environ, **env_for(receiver, secret_key, folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@dataclass(frozen=True)
class Curl:
    """One ``curl`` line of a doc, as the request it sends."""

    method: str
    url: str
    headers: dict[str, str]
    data: str | None
    cookie_jar: bool  # -c/-b: cookies kept between the lines

    def send(self, client: httpx.Client, base: str) -> httpx.Response:
        """Send it with ``client`` (its cookies are the jar) to ``base`` instead of
        the documented host."""
        url = re.sub(r"^http://127\.0\.0\.1:8000", base, self.url)
        if not self.cookie_jar:
            client.cookies.clear()
        return client.request(self.method, url, headers=self.headers, content=self.data)


def section_blocks(doc: str, section: str, language: str = "sh") -> list[str]:
    """The ``language`` blocks under the heading ``section`` (of any level), its
    subsections' included, up to the next heading of its level or above."""
    lines = (ROOT / doc).read_text().splitlines()
    blocks, level, number = [], 0, 0
    while number < len(lines):
        line = lines[number]
        if line.startswith("```"):
            end = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("```"))
            if level and line.strip() == f"```{language}":
                blocks.append("\n".join(lines[number + 1 : end]) + "\n")
            number = end + 1
            continue
        heading = re.match(r"(#+) (.*)", line)
        if heading and level and len(heading.group(1)) <= level:
            break
        if heading and not level and heading.group(2).strip() == section:
            level = len(heading.group(1))
        number += 1
    assert level, f"no section {section!r} in {doc}"
    return blocks


def section_shell_lines(doc: str, section: str) -> list[list[str]]:
    """Every line of the ```sh blocks under ``section``, as argv."""
    blocks = section_blocks(doc, section)
    return [shlex.split(line, comments=True) for block in blocks for line in block.splitlines()]


def section_curls(doc: str, section: str) -> list[Curl]:
    curls = []
    for argv in section_shell_lines(doc, section):
        if argv[:1] != ["curl"]:
            continue
        method, headers, data, jar, url = None, {}, None, False, ""
        words = iter(argv[1:])
        for word in words:
            if word == "-X":
                method = next(words)
            elif word == "-H":
                name, value = next(words).split(":", 1)
                headers[name.strip()] = value.strip()
            elif word == "-d":
                data = next(words)
            elif word in ("-b", "-c"):
                next(words)
                jar = True
            elif word in ("-N", "-s", "-i"):  # unbuffered, quiet, headers shown: output only
                continue
            else:
                assert not word.startswith("-"), f"a curl option the test does not read: {word}"
                url = word
        method = method or ("POST" if data is not None else "GET")
        curls.append(Curl(method, url, headers, data, jar))
    assert curls, f"{section} shows no request to send"
    return curls


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def session_of_span(span: ReceivedSpan) -> Any:
    return span.attributes.get("session.id")


# -- README.md ----------------------------------------------------------------------


def test_readme_fastapi_quick_start_streams_one_trace_per_turn(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    code = snippet(*README_FASTAPI).code
    (curl,) = section_curls("README.md", README_FASTAPI[1])
    with serve(code, UVICORN, receiver, secret_key, tmp_path) as base:
        replies = []
        for text in ("hello", "and again"):
            with httpx.stream("POST", f"{base}/chat/conv-1", json={"text": text}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/plain")
                replies.append("".join(response.iter_text()))
        with httpx.Client() as user:
            assert curl.send(user, base).text == "You said: hello "  # the README's own request
    assert replies == ["You said: hello ", "You said: and again "]
    spans = receiver.wait_for(lambda spans: len(named(spans, "llm")) == 3)
    llms = named(spans, "llm")
    assert len(llms) == 3, [span.name for span in spans]
    # FastAPI traces each request itself: its request span takes the turn's name
    # and the trace() span is inside it, so a turn may show as two spans of one trace.
    turn_traces = {turn.trace_id for turn in named(spans, "turn")}
    assert len(turn_traces) == 3 and {llm.trace_id for llm in llms} == turn_traces
    by_id = {span.span_id: span for span in spans}
    for llm in llms:
        turn = by_id[llm.parent_span_id]  # a child of its turn
        assert turn.name == "turn" and turn.trace_id == llm.trace_id
        assert session_of_span(turn) == session_of_span(llm) == "conv-1"
        assert llm.attributes["openinference.span.kind"] == "LLM"
        assert turn.attributes["output.value"] == llm.attributes["output.value"]
        assert llm.attributes["output.value"].startswith("You said: ")
    inputs = {turn.attributes["input.value"] for turn in named(spans, "turn")}
    assert inputs == {"hello", "and again"}


def test_readme_flask_quick_start_traces_the_turn_in_the_cookie_session(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    code = snippet(*README_FLASK).code
    curls = section_curls("README.md", README_FLASK[1])
    with serve(code, WAITRESS, receiver, secret_key, tmp_path) as base, httpx.Client() as user:
        replies = [curl.send(user, base) for curl in curls]  # the README's requests, as sent
        cookie = user.cookies["neatlogs_session"]
    assert [reply.json() for reply in replies] == [
        {"reply": "You said: hello"},
        {"reply": "You said: and again"},
    ]
    session_id = cookie.rsplit(".", 2)[0]
    turns = named(receiver.wait_for(lambda spans: len(named(spans, "turn")) == 2), "turn")
    assert [session_of_span(turn) for turn in turns] == [session_id, session_id]
    assert len({turn.trace_id for turn in turns}) == 2
    assert {turn.attributes["output.value"] for turn in turns} == {
        "You said: hello",
        "You said: and again",
    }


@pytest.mark.parametrize(
    ("section", "needed"),
    [
        (README_FASTAPI[1], {"fastapi", "uvicorn", "opentelemetry-proto"}),
        (README_FLASK[1], {"flask", "waitress", "uvicorn", "opentelemetry-proto"}),
        (FRONTENDS, {"fastapi", "uvicorn", "opentelemetry-proto"}),
    ],
)
def test_quick_start_install_lines_bring_the_server_and_the_collector(
    section: str, needed: set[str]
) -> None:
    (line,) = pip_install_arguments("".join(section_blocks("README.md", section)))
    assert needed <= installed_by(line), line


def test_frontend_flask_install_line_brings_its_server_cors_and_the_collector() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"\n## {FRONTENDS}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in inline_pip_install_arguments(section) if ".[flask,collector]" in line]
    (line,) = lines
    assert {"flask", "flask-cors", "waitress", "opentelemetry-proto"} <= installed_by(line), line


# Every doc a newcomer pastes install lines from.
INSTALL_DOCS = [
    "README.md",
    *sorted(
        str(path.relative_to(ROOT))
        for path in [*ROOT.glob("docs/*.md"), *ROOT.glob("examples/*/README.md")]
    ),
]


def test_key_commands_run_in_a_terminal_without_the_venv() -> None:
    """Outside the venv a terminal may have ``python3`` and no ``python``."""
    key_line = re.compile(r'NEATLOGS_SECRET_KEY="\$\((\S+) -c')
    interpreters = [
        interpreter
        for doc in INSTALL_DOCS
        for interpreter in key_line.findall((ROOT / doc).read_text())
    ]
    assert len(interpreters) >= 5 and set(interpreters) == {"python3"}, interpreters


def test_every_install_line_installs_this_package_from_the_clone() -> None:
    """The package is not released yet, so a line that names it finds no
    distribution: each line installs it from the clone, with extras it has. Only
    the README's Install section names the released form, as what it will be."""
    extras = set(metadata.metadata(THIS_PACKAGE).get_all("Provides-Extra") or [])
    readme = (ROOT / "README.md").read_text()
    install = readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    by_name, unknown_extras, from_clone = [], [], 0
    for doc in INSTALL_DOCS:
        text = (ROOT / doc).read_text().replace(install, "")
        for arguments in pip_install_arguments(text) + inline_pip_install_arguments(text):
            clone = [argument for argument in arguments if from_the_clone(argument)]
            named = [Requirement(a).name for a in arguments if a not in clone]
            from_clone += len(clone)
            if THIS_PACKAGE in named:
                by_name.append((doc, arguments))
            unknown_extras += [(doc, x) for x in extras_of_this_package(arguments) - extras]
    assert by_name == [], "install lines that name the unreleased package"
    assert unknown_extras == [], "extras the package does not have"
    assert from_clone >= 10, from_clone
    assert all(from_the_clone(a) for line in pip_install_arguments(install) for a in line)
    assert {THIS_PACKAGE} == {
        Requirement(a).name for line in inline_pip_install_arguments(install) for a in line
    }, "the Install section says what the released form will be"


# -- docs/integrations.md -------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append({key.lower(): value for key, value in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def tool_service() -> Iterator[tuple[int, list[dict[str, str]]]]:
    """A downstream service on 127.0.0.1 that records the headers it receives."""
    handler = type("Recorder", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield int(server.server_address[1]), handler.seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_httpx_snippet_sends_the_session_to_the_allowed_host(
    receiver: OTLPReceiver,
    secret_key: str,
    tmp_path: Path,
    tool_service: tuple[int, list[dict[str, str]]],
) -> None:
    port, seen = tool_service
    code = snippet(*DOCS_HTTPX).code
    # Only the host changes: the tool service runs here instead of tools.internal.
    assert code.count("tools.internal:8002") == 2
    code = code.replace("tools.internal:8002", f"127.0.0.1:{port}")
    probe = """
    import asyncio
    import neatlogs_web

    async def main():
        with neatlogs_web.session("conv-h"), neatlogs_web.trace("turn"):
            await tools.get("/tool")
        await tools.aclose()

    neatlogs_web.init(workflow_name="support-bot")
    asyncio.run(main())
    assert neatlogs_web.flush(10)
    """
    run_module(code, probe, receiver, secret_key, tmp_path)
    (headers,) = seen
    assert headers["x-neatlogs-session-id"].rsplit(".", 2)[0] == "conv-h"
    (turn,) = named(receiver.wait_for(lambda spans: named(spans, "turn")), "turn")
    assert headers["traceparent"].split("-")[1] == turn.trace_id


def test_fastapi_dependency_snippet_binds_the_path_conversation(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    code = snippet(*DOCS_FASTAPI).code
    with serve(code, UVICORN, receiver, secret_key, tmp_path) as base, httpx.Client() as user:
        reply = user.post(f"{base}/chat/conv-7")
        whoami = user.get(f"{base}/whoami").json()
    assert reply.text == "hello\n"
    cookie_session = user.cookies["neatlogs_session"].rsplit(".", 2)[0]
    assert whoami == {"session_id": cookie_session}
    spans = receiver.wait_for(lambda spans: named(spans, "turn") and named(spans, "summarise"))
    # FastAPI's request span becomes the turn too: both are in the conversation's session.
    assert {session_of_span(span) for span in named(spans, "turn")} == {"conv-7"}
    assert [session_of_span(span) for span in named(spans, "summarise")] == ["conv-7"]
    assert len({span.trace_id for span in named(spans, "turn") + named(spans, "summarise")}) == 1


def test_flask_extension_snippet_streams_in_the_path_conversation(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    code = snippet(*DOCS_FLASK).code
    with serve(code, WAITRESS, receiver, secret_key, tmp_path) as base:
        reply = httpx.post(f"{base}/chat/conv-8")
        health = httpx.get(f"{base}/healthz")
    assert reply.text == "hello\n"
    assert "neatlogs_session" not in health.cookies, "an excluded path starts no session"
    turns = named(receiver.wait_for(lambda spans: named(spans, "turn")), "turn")
    assert [session_of_span(turn) for turn in turns] == ["conv-8"]


DJANGO_PROJECT_REST = """\
# -- the rest of a new project's settings, as the test's --
SECRET_KEY = "doc-snippet-django-key"
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = []
DATABASES = {}

"""


def django_project(folder: Path) -> tuple[Path, dict[str, list[str]]]:
    """The section's files, each where its first line says, in a project of its own;
    and the section's server commands, by server."""
    project = folder / "project"
    for key in DOCS_DJANGO:
        code = snippet(*key).code
        named = re.match(r"# ([\w/]+\.py)", code)
        assert named, f"{key} names no file on its first line"
        path = project / named.group(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(DJANGO_PROJECT_REST + code if path.name == "settings.py" else code)
    # The URL the view's comment gives, and a health check for the test's wait.
    (route,) = re.findall(r"# (path\(.*\))", (project / "chat" / "views.py").read_text())
    (project / "mysite" / "urls.py").write_text(
        "from django.http import HttpResponse\nfrom django.urls import path\n\n"
        "from chat.views import chat\n\n"
        f"urlpatterns = [{route}, path('healthz', lambda request: HttpResponse('ok'))]\n"
    )
    servers = {
        argv[0]: argv
        for argv in section_shell_lines("docs/integrations.md", DJANGO)
        if argv[:1] in (["gunicorn"], ["uvicorn"])
    }
    return project, servers


def test_django_snippets_serve_as_pasted(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    project, servers = django_project(tmp_path)
    assert sorted(servers) == ["gunicorn", "uvicorn"]
    port_options = {"gunicorn": ["-b", "127.0.0.1:{port}"], "uvicorn": ["--port", "{port}"]}
    env = env_for(receiver, secret_key, project)
    replies, sessions = [], []
    for server, argv in servers.items():
        log = tmp_path / f"{server}.log"
        with served([*argv, *port_options[server]], env, log, cwd=project) as base:
            with httpx.Client() as user:
                reply = user.get(f"{base}/chat/conv-{server}/", params={"q": server})
                replies.append(reply.text)
                assert "chat_session" in user.cookies  # NEATLOGS_COOKIE_NAME
                assert "chat_session" not in httpx.get(f"{base}/healthz").cookies  # excluded
            if server == "uvicorn":
                ws = base.replace("http", "ws", 1) + "/ws/chat/conv-ws/"
                with connect(ws, open_timeout=10) as socket:
                    for message in ({"text": "hi"}, {"text": "there", "conversation_id": "c-2"}):
                        socket.send(json.dumps(message))
                        sessions.append(json.loads(socket.recv(timeout=10))["session"])
        assert "StreamingHttpResponse must consume" not in log.read_text(), log.read_text()
    assert replies == ["You said: gunicorn\n", "You said: uvicorn\n"]
    assert sessions == ["conv-ws", "c-2"]
    turns = named(receiver.wait_for(lambda spans: len(named(spans, "turn")) >= 4), "turn")
    said = {
        (session_of_span(turn), turn.attributes["input.value"], turn.attributes["output.value"])
        for turn in turns
    }
    assert said == {
        ("conv-gunicorn", "gunicorn", "You said: gunicorn\n"),
        ("conv-uvicorn", "uvicorn", "You said: uvicorn\n"),
        ("conv-ws", "hi", "You said: hi"),
        ("c-2", "there", "You said: there"),
    }


def test_django_install_lines_bring_the_servers_and_a_websocket_library() -> None:
    lines = pip_install_arguments("".join(section_blocks("docs/integrations.md", DJANGO)))
    wsgi, asgi = (installed_by(line) for line in lines)
    assert {"django", "gunicorn"} <= wsgi
    assert {"django", "channels", "uvicorn", "websockets"} <= asgi


@pytest.mark.redis
def test_celery_recipe_runs_the_documented_request_in_the_worker(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    """The recipe's two files, its worker and web commands against a Redis of the
    test's own (``CELERY_BROKER_URL``), and its ``curl``: the worker's span is in
    the request's session and turn, with the task's input and output."""
    doc = "docs/integrations.md"
    for index in (1, 2):
        code = snippet(doc, CELERY, index).code
        named_file = re.match(r"# (\w+\.py):", code)
        assert named_file, f"block {index} of the recipe names no file"
        (tmp_path / named_file.group(1)).write_text(code)
    lines = section_shell_lines(doc, CELERY)
    (redis,) = [argv for argv in lines if argv[:1] == ["redis-server"]]
    # The worker the recipe starts beside the web side (the pool list below it aside).
    (worker,) = [argv[:-1] for argv in lines if argv[:1] == ["celery"] and argv[-1] == "&"]
    (web,) = [argv for argv in lines if argv[:1] == ["uvicorn"]]
    (curl,) = section_curls(doc, CELERY)
    broker = f"redis://127.0.0.1:{redis[redis.index('--port') + 1]}/0"
    assert redis[redis.index("--save") + 1] == "", "Redis saves no dump.rdb in the folder"
    assert f'broker="{broker}"' in (tmp_path / "tasks.py").read_text()
    text = json.loads(curl.data or "{}")["text"]

    with redis_server(tmp_path / "redis.log") as test_broker:
        env = {**env_for(receiver, secret_key, tmp_path), "CELERY_BROKER_URL": test_broker}
        with (
            started(["-m", *worker], env, tmp_path / "worker.log", cwd=tmp_path) as running,
            served([*web, "--port", "{port}"], env, tmp_path / "web.log", cwd=tmp_path) as base,
            httpx.Client() as user,
        ):
            reply = curl.send(user, base)
            spans = receiver.wait_for(lambda spans: named(spans, "summarise"), timeout_s=60)

    log = running.log()
    assert reply.status_code == 200, reply.text
    task_id = reply.json()["task_id"]
    session_id = user.cookies["neatlogs_session"].rsplit(".", 2)[0]
    assert len(named(spans, "summarise")) == 1, log
    (task,) = named(spans, "summarise")
    by_id = {span.span_id: span for span in spans}
    turn = by_id[task.parent_span_id]  # the worker's span is inside the request's turn
    assert (turn.name, turn.trace_id) == ("turn", task.trace_id)
    assert session_of_span(task) == session_of_span(turn) == session_id
    assert task.attributes["input.value"] == turn.attributes["input.value"] == text
    assert task.attributes["output.value"] == "The refund is late"  # as the page says
    assert turn.attributes["output.value"] == f"queued {task_id}"
    assert task.resource["service.name"] == "support-bot-worker"
    assert f"Task tasks.summarise[{task_id}] succeeded" in log


def test_celery_snippet_task_runs_in_the_callers_session(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    # The whole recipe runs with Redis and a worker below, and on each pool in
    # tests/integrations/test_celery_recipe.py; here the module as pasted runs a
    # task in-process, with no broker.
    probe = """
    import neatlogs_web
    from celery import signals

    signals.worker_process_init.send(sender=None)  # as a worker's pool process starts
    with neatlogs_web.session("conv-c"):
        result = summarise.apply(args=("hello",))
    assert result.successful(), result.traceback
    assert neatlogs_web.flush(10)
    """
    run_module(snippet(*DOCS_CELERY).code, probe, receiver, secret_key, tmp_path)
    (task,) = named(receiver.wait_for(lambda spans: named(spans, "summarise")), "summarise")
    assert session_of_span(task) == "conv-c"
    assert task.attributes["output.value"] == "hello"
    assert task.resource["service.name"] == "support-bot-worker"


def test_websocket_snippet_rebinds_per_message(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    code = snippet(*DOCS_WEBSOCKETS).code
    lines = section_shell_lines(*DOCS_WEBSOCKETS[:2])
    (client,) = [argv for argv in lines if argv[1:3] == ["-m", "websockets"]]
    path = client[3].removeprefix("ws://127.0.0.1:8000")
    with serve(code, UVICORN, receiver, secret_key, tmp_path) as base:
        socket = connect(base.replace("http", "ws", 1) + path)
        with socket:
            assert socket.response is not None
            token = socket.response.headers["X-Neatlogs-Session-Id"]
            answers = []
            for message in ({"conversation_id": "conv-9"}, {}, {"conversation_id": "bad id!"}):
                socket.send(json.dumps(message))
                answers.append(json.loads(socket.recv(timeout=10))["session_id"])
    connection_session = token.rsplit(".", 2)[0]
    assert answers == ["conv-9", connection_session, connection_session]
    turns = named(receiver.wait_for(lambda spans: len(named(spans, "turn")) == 3), "turn")
    assert [session_of_span(turn) for turn in turns] == answers


def test_websocket_install_line_brings_the_server_and_its_websocket_library() -> None:
    (line,) = pip_install_arguments("".join(section_blocks(*DOCS_WEBSOCKETS[:2])))
    assert {"starlette", "uvicorn", "websockets"} <= installed_by(line), line


def test_threads_snippet_keeps_the_session_in_every_thread(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    # Run as the doc says (python threads.py): its main block is the request.
    run_module(snippet(*DOCS_THREADS).code, "", receiver, secret_key, tmp_path)
    work = named(receiver.wait_for(lambda spans: len(named(spans, "work")) == 7), "work")
    assert sorted(span.attributes["item"] for span in work) == list("abcdefg")
    assert {session_of_span(span) for span in work} == {"conv-42"}


def test_logging_snippet_prints_the_session_on_each_line(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    probe = """
    import neatlogs_web

    neatlogs_web.init()
    chat = logging.getLogger("chat")
    with neatlogs_web.session("conv-l"):
        with neatlogs_web.trace("turn"):
            chat.info("in a turn")
        chat.info("in a session")
    chat.info("outside")
    neatlogs_web.shutdown()
    """
    done = run_module(snippet(*DOCS_LOGGING).code, probe, receiver, secret_key, tmp_path)
    lines = done.stderr.splitlines()
    in_turn = next(line for line in lines if line.endswith("chat: in a turn"))
    inside = next(line for line in lines if line.endswith("chat: in a session"))
    outside = next(line for line in lines if line.endswith("chat: outside"))
    # The ids on the line are those of the exported span: the line leads to it.
    (turn,) = named(receiver.wait_for(lambda spans: bool(named(spans, "turn"))), "turn")
    assert session_of_span(turn) == "conv-l"
    assert f"[session=conv-l trace={turn.trace_id} span={turn.span_id}]" in in_turn
    assert "[session=conv-l trace=- span=-]" in inside
    assert "[session=- trace=- span=-]" in outside


def test_backend_keys_snippet_stamps_both_backends_keys(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    probe = """
    with neatlogs_web.session("conv-b"), neatlogs_web.trace("turn"):
        pass
    assert neatlogs_web.flush(10)
    """
    run_module(snippet(*DOCS_BACKENDS).code, probe, receiver, secret_key, tmp_path)
    (turn,) = named(receiver.wait_for(lambda spans: named(spans, "turn")), "turn")
    assert turn.attributes["session.id"] == "conv-b"
    assert turn.attributes["langfuse.session.id"] == "conv-b"
    assert "neatlogs.session.id" not in turn.attributes


def run_shell(script: str, base: str, folder: Path) -> str:
    """``script`` (a doc's block of commands) run by bash in ``folder``, sent to
    ``base`` instead of the documented server; its output."""
    assert "http://127.0.0.1:8000" in script
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script.replace("http://127.0.0.1:8000", base)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_feedback_snippet_records_a_judgment_on_the_turn_of_its_session(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    code = snippet(*README_FEEDBACK).code
    run, requests, _streamed = section_blocks("README.md", "Feedback")
    assert shlex.split(run.splitlines()[-1]) == ["uvicorn", "app:app", "--port", "8000"]
    with (
        serve(code, UVICORN, receiver, secret_key, tmp_path) as base,
        httpx.Client(base_url=base) as user,
        httpx.Client(base_url=base) as stranger,
    ):
        said = run_shell(requests, base, tmp_path)  # the README's curl lines, as pasted
        answer = user.post("/chat", params={"message": "again"})
        token = answer.headers["x-neatlogs-feedback-token"]
        refused = stranger.post("/rate", params={"token": token, "thumbs_up": False})
        forged = stranger.post("/neatlogs/feedback", json={"token": token, "score": 0})
        own = user.post("/rate", params={"token": token, "thumbs_up": True})
    assert '{"reply":"You said: hello"}' in said
    assert "HTTP/1.1 204 No Content" in said
    assert said.rstrip().endswith('{"recorded":"yes"}'), said
    assert refused.json() == {"recorded": "no", "reason": "wrong_session"}
    assert (forged.status_code, forged.json()["error"]) == (403, "wrong_session")
    assert own.json() == {"recorded": "yes"}
    spans = receiver.wait_for(lambda spans: len(named(spans, "feedback")) >= 3)
    by_id = {span.span_id: span for span in spans}
    judged: dict[str, list[float]] = {}
    for feedback in named(spans, "feedback"):
        turn = by_id[feedback.parent_span_id]  # a child of the turn it judges
        assert turn.name == "turn" and turn.trace_id == feedback.trace_id
        assert session_of_span(feedback) == session_of_span(turn)
        score = feedback.attributes["neatlogs.feedback.score"]
        judged.setdefault(turn.attributes["input.value"], []).append(score)
    assert {said: sorted(scores) for said, scores in judged.items()} == {
        "hello": [0.0, 1.0],  # the README's two judgments, built-in and /rate
        "again": [1.0],
    }


def test_sections_whose_snippets_read_the_key_export_it() -> None:
    """A new terminal has no NEATLOGS_SECRET_KEY: a section whose app reads it from
    the environment shows the line that sets it."""
    reading = {
        found.section
        for found in snippets("README.md")
        if 'os.environ["NEATLOGS_SECRET_KEY"]' in found.code
    }
    assert reading >= {"Feedback", FRONTENDS}
    for section in reading:
        lines = section_shell_lines("README.md", section)
        exports = [argv[1] for argv in lines if argv[:1] == ["export"]]
        assert any(name.startswith("NEATLOGS_SECRET_KEY=") for name in exports), section


def test_frontend_commands_serve_the_page_and_the_api_where_the_snippets_name_them() -> None:
    served = readme_frontend_snippets()
    lines = section_shell_lines("README.md", FRONTENDS)
    (page,) = [argv for argv in lines if argv[1:3] == ["-m", "http.server"]]
    (api,) = [argv for argv in lines if argv[:1] == ["uvicorn"]]
    assert f'"http://localhost:{page[3]}"' in served["fastapi"]  # the CORS origin
    assert f'"http://localhost:{page[3]}"' in served["flask"]
    assert f'const API = "http://localhost:{api[api.index("--port") + 1]}";' in served["page"]


def test_feedback_in_body_snippet_names_the_turn_a_stream_opened(
    receiver: OTLPReceiver, secret_key: str, tmp_path: Path
) -> None:
    code = snippet(*README_FEEDBACK_IN_BODY).code
    *_, streamed = section_blocks("README.md", "Feedback")
    with (
        serve(code, UVICORN, receiver, secret_key, tmp_path) as base,
        httpx.Client(base_url=base) as user,
    ):
        said = run_shell(streamed, base, tmp_path)  # the README's curl lines, as pasted
        answer = user.post("/chat", params={"message": "again"})
    assert "x-neatlogs-feedback-token" not in answer.headers  # the turn began after them
    assert (tmp_path / "answer.txt").read_text().startswith("data: Hello\n\nevent: feedback\n")
    assert "HTTP/1.1 204 No Content" in said, said
    spans = receiver.wait_for(lambda spans: len(named(spans, "feedback")) >= 1)
    ((feedback,),) = [named(spans, "feedback")]
    assert feedback.attributes["neatlogs.feedback.score"] == 1.0
    (turn,) = [s for s in named(spans, "turn") if s.span_id == feedback.parent_span_id]
    assert turn.attributes["input.value"] == "hello"
    assert turn.trace_id == feedback.trace_id
    assert session_of_span(feedback) == session_of_span(turn)
