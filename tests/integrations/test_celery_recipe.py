"""The Celery recipe of docs/integrations.md, as pasted, on every worker pool.

Its ``tasks.py`` and ``app.py`` are written out of the page unchanged, the
web side is served with the page's ``uvicorn`` command and a worker started
with the page's ``celery`` command for each pool, against a real Redis on a
free loopback port (``CELERY_BROKER_URL``). Five users, each in a session of
their own, enqueue a task; the five task spans must reach a real OTLP
receiver, each in its user's session and in the trace of the turn that
enqueued it, with the task's input and output (the page's own run, with its
``curl``, is in ``tests/test_doc_snippets.py``). A worker set up the way the
recipe used to say (``init()`` from a ``worker_process_init`` handler) runs
untraced on the threads pool, and must say so, once, in its log.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from celery import Celery

from neatlogs_web.integrations.celery import NeatlogsCelery
from tests.install_lines import installed_by, pip_install_arguments
from tests.integrations._processes import redis_server, served, started
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import ROOT

POOLS = ("prefork", "solo", "threads", "gevent")
USERS = 5
SECTION = "## Celery: the session follows the task into the worker"
NOT_INITIALISED = "tracing was never initialised"

# tasks.py as the recipe had it: tracing started by a worker_process_init
# handler of the app's own, which Celery sends to prefork and solo pools only.
TASKS_WITH_A_PROCESS_INIT_HANDLER = """\
import neatlogs_web
from celery import Celery, signals
from neatlogs_web.integrations.celery import NeatlogsCelery

app = Celery("chat", broker="redis://127.0.0.1:6379/0")
NeatlogsCelery(app, secret_key=None)


@signals.worker_process_init.connect
def start_tracing(**_):
    neatlogs_web.init(workflow_name="support-bot-worker")


@app.task
def summarise(text):
    with neatlogs_web.trace("summarise", input=text):
        ...
"""

# The signals a prefork worker sends: worker_init in its own process, which runs
# no task (the sender is the worker; only its pool_cls is read), then
# worker_process_init in each child after the fork. A threads worker sends
# worker_init alone.
SIGNALS_OF_A_WORKER = """\
import sys

import neatlogs_web
from celery import Celery, signals
from neatlogs_web.integrations.celery import NeatlogsCelery


class Worker:
    pool_cls = sys.argv[1]


NeatlogsCelery(Celery("chat"), init_options={"workflow_name": "support-bot-worker"})
signals.worker_init.send(sender=Worker())
with neatlogs_web.trace("after-worker-init"):
    pass
signals.worker_process_init.send(sender="celery@host")
with neatlogs_web.trace("after-worker-process-init"):
    pass
assert neatlogs_web.flush(10)
"""


@dataclass(frozen=True)
class Recipe:
    files: dict[str, str]  # file name -> code, as pasted
    web: list[str]  # the web server's command, after ``python -m``
    workers: dict[str, list[str]]  # pool -> the worker's command, after ``python -m``


def recipe_section() -> str:
    text = (ROOT / "docs" / "integrations.md").read_text()
    return text.split(SECTION + "\n", 1)[1].split("\n## ", 1)[0]


def read_recipe() -> Recipe:
    """The section's ```python blocks, by the file their first line names, and
    the commands of its ```sh blocks."""
    section = recipe_section()
    files: dict[str, str] = {}
    commands: list[list[str]] = []
    for language, code in re.findall(r"^```(\w+)\n(.*?)^```$", section, re.S | re.M):
        if language == "python":
            named = re.match(r"# (\w+\.py):", code)
            assert named, f"a python block of the recipe names no file:\n{code}"
            files[named.group(1)] = code
        elif language == "sh":
            commands += [shlex.split(line, comments=True) for line in code.splitlines()]
    (web,) = [argv for argv in commands if argv[:1] == ["uvicorn"]]
    workers = {
        argv[argv.index("--pool") + 1]: argv
        for argv in commands
        if argv[:1] == ["celery"] and "--pool" in argv
    }
    return Recipe(files, [*web, "--port", "{port}"], workers)


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, code in files.items():
        (folder / name).write_text(code)
    return folder


def session_of(span: ReceivedSpan) -> object:
    return span.attributes.get("session.id")


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    return read_recipe()


@pytest.fixture(scope="module")
def otlp() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def env(otlp: OTLPReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """What the web side and the workers share: the broker, the key, the endpoint."""
    with redis_server(tmp_path_factory.mktemp("redis") / "redis.log") as broker:
        yield {
            "CELERY_BROKER_URL": broker,
            "NEATLOGS_SECRET_KEY": secrets.token_urlsafe(32),
            "NEATLOGS_ENDPOINT": otlp.url,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }


@pytest.fixture(scope="module")
def folder(recipe: Recipe, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("recipe") / "project", recipe.files)


@pytest.fixture(scope="module")
def web(recipe: Recipe, env: dict[str, str], folder: Path) -> Iterator[str]:
    with served(recipe.web, env, folder / "web.log", cwd=folder) as base:
        yield base


def enqueue_from_new_sessions(base: str, texts: list[str]) -> dict[str, str]:
    """Each text enqueued by a user of its own; the session each one got, by text."""
    sessions = {}
    for text in texts:
        with httpx.Client(base_url=base, timeout=30) as user:
            user.post("/summarise", json={"text": text}).raise_for_status()
            sessions[text] = user.cookies["neatlogs_session"].rsplit(".", 2)[0]
    return sessions


def test_the_recipe_starts_a_worker_on_each_pool_the_tests_run() -> None:
    recipe = read_recipe()
    assert sorted(recipe.files) == ["app.py", "tasks.py"]
    assert sorted(recipe.workers) == sorted(POOLS)
    assert ".delay(" in recipe.files["app.py"], "the web side enqueues"
    assert 'broker="redis://' in recipe.files["tasks.py"]


def test_the_recipe_install_line_brings_the_redis_transport_and_the_web_side() -> None:
    (line,) = pip_install_arguments(recipe_section())
    brought = installed_by(line)
    # kombu reaches a redis:// broker through the redis client library.
    assert {"celery", "kombu", "redis"} <= brought, line
    assert {"fastapi", "uvicorn"} <= brought, line


@pytest.mark.slow
@pytest.mark.parametrize("pool", POOLS)
def test_every_task_span_is_exported_in_its_session_and_turn(
    pool: str, recipe: Recipe, env: dict[str, str], folder: Path, web: str, otlp: OTLPReceiver
) -> None:
    texts = [f"{pool}-{user}" for user in range(USERS)]

    def tasks(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.name == "summarise" and s.attributes["input.value"] in texts]

    def all_with_their_turns(spans: list[ReceivedSpan]) -> bool:
        published = {(s.trace_id, s.span_id) for s in spans}
        found = tasks(spans)
        return len(found) >= USERS and all(
            (s.trace_id, s.parent_span_id) in published for s in found
        )

    with started(["-m", *recipe.workers[pool]], env, folder / f"{pool}.log", cwd=folder) as worker:
        sessions = enqueue_from_new_sessions(web, texts)
        spans = otlp.wait_for(all_with_their_turns, timeout_s=30)
        log = worker.log()

    assert len(set(sessions.values())) == USERS
    found = tasks(spans)
    assert len(found) == USERS, f"{len(found)} of {USERS} task spans\n{log}"
    assert sorted(span.attributes["input.value"] for span in found) == texts
    by_id = {(span.trace_id, span.span_id): span for span in spans}
    for task in found:
        text = task.attributes["input.value"]
        turn = by_id[(task.trace_id, task.parent_span_id)]
        assert (turn.name, turn.attributes["input.value"]) == ("turn", text)
        assert session_of(task) == session_of(turn) == sessions[text]
        assert task.attributes["output.value"] == text  # one sentence: its own summary
        assert task.resource["service.name"] == "support-bot-worker"
        assert turn.resource["service.name"] == "support-bot"
    assert NOT_INITIALISED not in log


@pytest.mark.slow
def test_a_worker_that_never_initialised_tracing_says_so_once_naming_the_fix(
    recipe: Recipe, env: dict[str, str], otlp: OTLPReceiver, tmp_path: Path
) -> None:
    files = {"tasks.py": TASKS_WITH_A_PROCESS_INIT_HANDLER, "app.py": recipe.files["app.py"]}
    folder = write(tmp_path / "project", files)
    argv = ["-m", *recipe.workers["threads"], "--loglevel", "INFO"]
    texts = [f"untraced-{user}" for user in range(USERS)]
    with (
        served(recipe.web, env, folder / "web.log", cwd=folder) as web,
        started(argv, env, folder / "worker.log", cwd=folder) as worker,
    ):
        enqueue_from_new_sessions(web, texts)
        deadline = time.monotonic() + 30
        while worker.log_path.read_text().count("succeeded in") < USERS:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.05)
    log = worker.log_path.read_text()

    warnings = [line for line in log.splitlines() if NOT_INITIALISED in line]
    assert len(warnings) == 1, log
    assert "WARNING" in warnings[0] and "init_options" in warnings[0]
    # What the warning says: the worker exported nothing (the web side's turns went out).
    worker_spans = [s for s in otlp.spans if s.resource["service.name"] == "support-bot-worker"]
    assert [s for s in worker_spans if s.attributes.get("input.value") in texts] == []


@pytest.mark.parametrize(
    ("pool", "traced"),
    [
        ("prefork", ["after-worker-process-init"]),  # in the child, never in the parent
        ("threads", ["after-worker-init", "after-worker-process-init"]),
    ],
)
def test_tracing_starts_in_the_process_that_runs_tasks(
    pool: str, traced: list[str], receiver: OTLPReceiver, tmp_path: Path
) -> None:
    script = tmp_path / "worker_signals.py"
    script.write_text(SIGNALS_OF_A_WORKER)
    env = {**os.environ, "NEATLOGS_ENDPOINT": receiver.url, "NEATLOGS_SECRET_KEY": "k" * 32}
    done = subprocess.run(
        [sys.executable, str(script), pool], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    spans = receiver.wait_for(lambda got: len(got) >= len(traced))
    assert sorted(span.name for span in spans) == traced
    assert {span.resource["service.name"] for span in spans} == {"support-bot-worker"}


def test_an_option_init_does_not_take_stops_the_app_where_it_starts() -> None:
    with pytest.raises(TypeError, match=r"init_options=.*'workflow'"):
        NeatlogsCelery(Celery("chat"), init_options={"workflow": "support-bot-worker"})
