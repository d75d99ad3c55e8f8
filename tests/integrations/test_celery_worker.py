"""The session follows a Django request's work into a real Celery worker.

A real Redis (Debian's ``redis-server``) on a free loopback port, the test
Django project under gunicorn, and ``celery worker`` (prefork) in
subprocesses. 50 users, each with a cookie jar of their own, make requests
that enqueue tasks: one that calls another task, a chain, one retried once
and one that fails. Every span the worker records must carry its user's
session (0 wrong, 0 missing) and join the trace of the turn that enqueued it; tasks
from a producer without the key, or published outside any request, run
with no session.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from celery import Celery

from tests.integrations._processes import celery_worker, django_server, redis_server
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.tokens import make_token

USERS = 50
REQUESTS_PER_USER = 2
WORKER = "django-worker"
TASKS = "tests.integrations.django_site.tasks"
# Spans one /enqueue request makes in the worker (see django_site/tasks.py):
# answer + llm, tool, two chain steps, two flaky attempts, fails + its failure handler.
WORKER_SPANS_PER_REQUEST = 9
ANONYMOUS = 10


def _worker(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.resource.get("service.name") == WORKER]


def run_user(base: str, user: str) -> set[str]:
    with httpx.Client(base_url=base, timeout=30) as client:
        return {
            client.get("/enqueue", params={"u": user}).raise_for_status().json()["session"]
            for _ in range(REQUESTS_PER_USER)
        }


def test_every_worker_span_carries_its_users_session(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    with redis_server(tmp_path / "redis.log") as broker:
        env = {
            "NEATLOGS_ENDPOINT": receiver.url,
            "NEATLOGS_SECRET_KEY": "",
            "CELERY_BROKER_URL": broker,
        }
        with (
            celery_worker(env, tmp_path / "worker.log") as worker,
            django_server("gunicorn-gthread", env, tmp_path / "server.log") as base,
        ):
            users = [f"user-{index}" for index in range(USERS)]
            with ThreadPoolExecutor(16) as pool:
                seen = dict(zip(users, pool.map(lambda u: run_user(base, u), users), strict=True))
            _publish_without_our_key(broker)
            for index in range(ANONYMOUS):
                httpx.get(f"{base}/internal/enqueue", params={"u": f"internal-{index}"})
            expected = USERS * REQUESTS_PER_USER * WORKER_SPANS_PER_REQUEST + 4 + ANONYMOUS
            spans = receiver.wait_for(lambda got: len(_worker(got)) >= expected, timeout_s=90)
            log = worker.log()

    assert all(len(sessions) == 1 for sessions in seen.values()), "a user's cookie was lost"
    sessions = {user: min(found) for user, found in seen.items()}
    assert len(set(sessions.values())) == USERS
    worker_spans = _worker(spans)
    assert len(worker_spans) == expected, f"{len(worker_spans)} of {expected} spans\n{log}"

    outside = [s for s in worker_spans if not s.attributes["user"].startswith("user-")]
    assert {s.attributes["user"] for s in outside} == {
        "foreign-plain", "foreign-forged", "foreign-wrong-key", "foreign-none",
        *(f"internal-{index}" for index in range(ANONYMOUS)),
    }  # fmt: skip
    assert [s.attributes.get("session.id") for s in outside if "session.id" in s.attributes] == []

    users_spans = [s for s in worker_spans if s.attributes["user"].startswith("user-")]
    missing = [s.name for s in users_spans if "session.id" not in s.attributes]
    wrong = [
        (s.name, s.attributes["user"], s.attributes["session.id"])
        for s in users_spans
        if "session.id" in s.attributes
        and s.attributes["session.id"] != sessions[s.attributes["user"]]
    ]
    assert missing == [], f"{len(missing)} worker spans without a session"
    assert wrong == [], f"{len(wrong)} worker spans in a wrong session"
    per_user = Counter(s.attributes["user"] for s in users_spans)
    assert set(per_user.values()) == {REQUESTS_PER_USER * WORKER_SPANS_PER_REQUEST}
    names = Counter(s.name for s in users_spans)
    turns = USERS * REQUESTS_PER_USER
    assert names == {
        "task.answer": turns, "llm": turns, "task.tool": turns, "task.step": 2 * turns,
        "task.flaky": 2 * turns, "task.fails": turns, "task.failure_handler": turns,
    }  # fmt: skip

    # Each task joins the trace of the span that was active where it was published:
    # the web turn ("enqueue"), or the worker span that called it, of the same user.
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    tasks = [s for s in users_spans if s.name.startswith("task.")]
    assert len(tasks) == turns * 8
    for task in tasks:
        assert task.links == [], task
        publisher = by_id[(task.trace_id, task.parent_span_id)]
        assert publisher.attributes["user"] == task.attributes["user"]
        assert publisher.name == ("llm" if task.name == "task.tool" else "enqueue")


def _publish_without_our_key(broker: str) -> None:
    """A producer without the integration: no header, a plain id, a forged or
    wrongly signed token. The worker must trust none of them."""
    producer = Celery("foreign", broker=broker)
    name = f"{TASKS}.anonymous"
    headers: dict[str, dict[str, str]] = {
        "foreign-none": {},
        "foreign-plain": {"neatlogs_session": "user-0-victim"},
        "foreign-forged": {
            "neatlogs_session": "victim.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        },
        "foreign-wrong-key": {"neatlogs_session": make_token("victim", "another-apps-key")},
    }
    with producer.connection_for_write() as connection:
        for label, extra in headers.items():
            producer.send_task(name, args=[label], headers=extra, connection=connection)
