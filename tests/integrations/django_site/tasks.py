"""The Celery app: imported by the web workers (to publish) and by ``celery worker``.

Tasks record spans carrying ``user`` (an argument; the session itself never
is one). ``answer`` calls another task, ``step`` runs in a chain, ``flaky``
is retried once, ``fails`` raises; ``anonymous`` is published by a producer
without the integration.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.django_site.settings")

from celery import Celery, Task, signals
from django.conf import settings

import neatlogs_web
from neatlogs_web.integrations.celery import NeatlogsCelery
from neatlogs_web.integrations.django import secret_keys

app = Celery("django_site", broker=settings.CELERY_BROKER_URL)
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=4,
)
NeatlogsCelery(app, secret_key=secret_keys())


@signals.worker_process_init.connect(weak=False)
def start_tracing(**_: Any) -> None:
    # Each prefork child exports its own spans.
    neatlogs_web.init(workflow_name="django-worker", schedule_delay_ms=50)


@app.task
def answer(user: str) -> None:
    with neatlogs_web.trace("task.answer", user=user), neatlogs_web.trace("llm", user=user):
        tool.delay(user)


@app.task
def tool(user: str) -> None:
    with neatlogs_web.trace("task.tool", user=user):
        pass


@app.task
def step(user: str, index: int) -> None:
    with neatlogs_web.trace("task.step", user=user, index=index):
        pass


@app.task(bind=True, max_retries=1, default_retry_delay=0)
def flaky(self: Task, user: str) -> None:  # type: ignore[type-arg]
    with neatlogs_web.trace("task.flaky", user=user, attempt=self.request.retries):
        pass
    if self.request.retries == 0:
        raise self.retry()


class Failure(Exception):
    pass


@app.task
def fails(user: str) -> None:
    with neatlogs_web.trace("task.fails", user=user):
        raise Failure(user)


@signals.task_failure.connect(sender=fails, weak=False)
def on_failure(args: tuple[Any, ...] = (), **_: Any) -> None:
    # Error handlers run inside the task's session too.
    with neatlogs_web.trace("task.failure_handler", user=args[0] if args else "?"):
        pass


@app.task
def anonymous(label: str) -> None:
    with neatlogs_web.trace("task.anonymous", user=label):
        pass
