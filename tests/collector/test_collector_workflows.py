"""A session is one app's conversation: the same session id sent by two workflows is two
sessions, in the list, a session's answer, the filters and the search.

Two apps that each call `init(workflow_name=...)` export over real OTLP/HTTP to a
running collector, which is then read back through its JSON API.
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from neatlogs_web.collector.schema import SCHEMA_VERSION
from tests.collector import otlp_data as otlp
from tests.collector.live import LiveCollector

ROOT = Path(__file__).resolve().parents[2]

#: An app as the quick starts write one: init() with its workflow, then turns of one
#: conversation, each with its input and output.
APP = textwrap.dedent(
    """
    import sys
    import neatlogs_web

    endpoint, workflow, conversation, *questions = sys.argv[1:]
    neatlogs_web.init(endpoint=endpoint, workflow_name=workflow, flush_on_sigterm=False)
    with neatlogs_web.session(conversation):
        for question in questions:
            with neatlogs_web.trace("turn", input=question):
                neatlogs_web.set_output(f"{workflow} answers {question}")
    assert neatlogs_web.flush(10)
    neatlogs_web.shutdown()
    """
)


def run_app(collector: LiveCollector, workflow: str, conversation: str, *questions: str) -> None:
    subprocess.run(
        [sys.executable, "-c", APP, collector.url, workflow, conversation, *questions],
        cwd=ROOT,
        check=True,
        timeout=60,
    )


def send(collector: LiveCollector, *spans: Span, resource: dict[str, Any]) -> None:
    response = httpx.post(
        collector.url + "/v1/traces",
        content=otlp.protobuf(*spans, resource=resource),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert response.status_code == 200


def listed(collector: LiveCollector, **params: str) -> list[tuple[str, str | None, int]]:
    answer = collector.get("/api/sessions", **params)
    assert answer.status_code == 200, answer.text
    rows = [(s["session_id"], s["workflow"], s["turn_count"]) for s in answer.json()["sessions"]]
    return sorted(rows, key=lambda row: (row[0], row[1] or "", row[2]))


def inputs(collector: LiveCollector, session_id: str, **params: str) -> list[str]:
    answer = collector.get(f"/api/sessions/{session_id}", **params)
    assert answer.status_code == 200, answer.text
    return [trace["input"] for trace in answer.json()["traces"]]


def test_two_apps_with_one_conversation_id_are_two_sessions(collector: LiveCollector) -> None:
    run_app(collector, "fastapi-chat", "conv-1", "fastapi 1", "fastapi 2")
    run_app(collector, "django-chat", "conv-1", "django 1", "django 2")

    assert listed(collector) == [("conv-1", "django-chat", 2), ("conv-1", "fastapi-chat", 2)]
    assert inputs(collector, "conv-1", workflow="fastapi-chat") == ["fastapi 1", "fastapi 2"]
    assert inputs(collector, "conv-1", workflow="django-chat") == ["django 1", "django 2"]
    fastapi = collector.get("/api/sessions/conv-1", workflow="fastapi-chat").json()
    assert (fastapi["workflow"], fastapi["turn_count"], fastapi["trace_count"]) == (
        "fastapi-chat",
        2,
        2,
    )
    assert fastapi["last_output"] == "fastapi-chat answers fastapi 2"

    # The filters and the search keep each app's session apart.
    assert listed(collector, workflow="django-chat") == [("conv-1", "django-chat", 2)]
    assert listed(collector, q="conv-1") == listed(collector)
    assert listed(collector, q="django 2") == [("conv-1", "django-chat", 2)]
    assert listed(collector, q="fastapi-chat answers") == [("conv-1", "fastapi-chat", 2)]
    assert sorted(collector.get("/api/facets").json()["workflows"]) == [
        "django-chat",
        "fastapi-chat",
    ]


def test_an_id_alone_opens_its_one_session_or_offers_the_choice(
    collector: LiveCollector,
) -> None:
    run_app(collector, "fastapi-chat", "conv-1", "fastapi 1")
    run_app(collector, "fastapi-chat", "conv-2", "only here")
    run_app(collector, "django-chat", "conv-1", "django 1")

    assert inputs(collector, "conv-2") == ["only here"]
    assert collector.get("/api/sessions/conv-2").json()["workflow"] == "fastapi-chat"

    choice = collector.get("/api/sessions/conv-1")
    assert choice.status_code == 300
    assert "?workflow=" in choice.json()["error"]
    assert sorted((s["session_id"], s["workflow"]) for s in choice.json()["sessions"]) == [
        ("conv-1", "django-chat"),
        ("conv-1", "fastapi-chat"),
    ]
    missing = collector.get("/api/sessions/conv-2", workflow="django-chat")
    assert missing.status_code == 404
    assert "django-chat" in missing.json()["error"]


def test_a_session_without_a_workflow_is_named_by_an_empty_one(
    collector: LiveCollector,
) -> None:
    send(
        collector,
        otlp.span("turn", attributes={"session.id": "conv-1", "input.value": "bare"}),
        resource={"host.name": "box"},
    )
    run_app(collector, "fastapi-chat", "conv-1", "fastapi 1")

    assert listed(collector) == [("conv-1", None, 1), ("conv-1", "fastapi-chat", 1)]
    assert inputs(collector, "conv-1", workflow="") == ["bare"]
    assert collector.get("/api/facets").json()["workflows"] == ["fastapi-chat"]


def test_the_list_pages_through_sessions_that_share_an_id_and_a_time(
    collector: LiveCollector,
) -> None:
    for workflow in ("a-app", "b-app", "c-app"):
        send(
            collector,
            otlp.span("turn", attributes={"session.id": "conv-1"}),
            resource={"service.name": workflow},
        )

    seen, cursor = [], None
    while True:
        answer = collector.get("/api/sessions", limit="1", **({"before": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        seen += [row["workflow"] for row in answer.json()["sessions"]]
        cursor = answer.json()["next"]
        if cursor is None:
            break
    assert seen == ["c-app", "b-app", "a-app"]


@pytest.mark.parametrize(
    "cursor",
    [b"[1]", b'[1, "conv-1"]', b'["1", "conv-1", "app"]', b'[-1, "conv-1", "app"]', b"[" * 5000],
)
def test_a_list_cursor_that_names_no_session_is_refused(
    collector: LiveCollector, cursor: bytes
) -> None:
    answer = collector.get("/api/sessions", before=base64.urlsafe_b64encode(cursor).decode())
    assert answer.status_code == 400
    assert "before" in answer.json()["error"]


def test_a_database_of_version_2_is_upgraded_to_sessions_per_workflow(
    old_database: Callable[[int], Path],
) -> None:
    path = old_database(2)

    with LiveCollector(path) as live:
        assert listed(live) == [
            ("conv-1", "django-chat", 2),
            ("conv-1", "fastapi-chat", 2),
            ("lonely", None, 1),
        ]
        assert inputs(live, "conv-1", workflow="django-chat") == [
            "django-chat question 1",
            "django-chat question 2",
        ]
        assert inputs(live, "lonely") == [None]
        assert live.get("/api/traces", session="none").json()["traces"][0]["name"] == "orphan"
        # The upgraded file takes new spans as a new one would (ids unlike the dump's).
        send(
            live,
            otlp.span(
                "turn",
                trace_id=b"\xfe" * 16,
                span_id=b"\xfe" * 8,
                start_ms=200_000,
                attributes={"session.id": "conv-1"},
            ),
            resource={"service.name": "django-chat"},
        )
        assert listed(live)[0] == ("conv-1", "django-chat", 3)

    with sqlite3.connect(path) as upgraded:
        assert upgraded.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    upgraded.close()
