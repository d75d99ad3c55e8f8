"""The README's FastAPI chat app exporting to the local collector, read back
through the collector's own API.

FastAPI traces each request itself (its telemetry is on by default). With
default options, three users with three turns each are three sessions of three
turns and three traces each, with the first input, last output, token totals
and end user of each conversation. Real uvicorn, real HTTP, real OTLP export.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry import trace as otel_trace
from pydantic import BaseModel

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.collector.live import LiveCollector
from tests.pipeline import reset_global_tracer_provider
from tests.servers import run_uvicorn

USERS = ("ana", "ben", "cai")
TURNS = 3
WORKFLOW = "support-bot"


class Message(BaseModel):
    text: str


def user_from_header(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-user-id":
            return str(value.decode("latin-1"))
    return None


def reply_to(text: str) -> str:
    return f"re: {text}"


def prompt_tokens(text: str) -> int:
    return 5 + len(text)


def make_app() -> FastAPI:
    """As in the README's quick start, with the turn's input, output and usage."""
    app = FastAPI()
    app.add_middleware(
        NeatlogsSessionMiddleware,
        secret_key="collector-test-secret",
        conversation_paths=["/chat/{conversation_id}"],
        end_user=user_from_header,
    )
    llm_client = otel_trace.get_tracer("tests.fake_llm_client")

    @app.post("/chat/{conversation_id}")
    async def chat(conversation_id: str, body: Message) -> dict[str, str]:
        with neatlogs_web.trace("turn", input=body.text):
            with neatlogs_web.trace("llm", kind="llm"):
                # The model client's own span, through the global provider.
                with llm_client.start_as_current_span("POST /v1/chat/completions"):
                    answer = reply_to(body.text)
                neatlogs_web.set_usage(
                    prompt_tokens=prompt_tokens(body.text),
                    completion_tokens=len(answer),
                    model="fake-chat-1",
                )
            neatlogs_web.set_output(answer)
        return {"answer": answer}

    return app


def messages_of(user: str) -> list[str]:
    return [f"{user}: question {turn} of {TURNS}" for turn in range(1, TURNS + 1)]


def talk(base: str, user: str) -> None:
    with httpx.Client(base_url=base, headers={"x-user-id": user}, timeout=30) as client:
        for text in messages_of(user):
            response = client.post(f"/chat/conv-{user}", json={"text": text})
            assert response.json() == {"answer": reply_to(text)}


def test_three_users_three_turns_are_three_sessions_of_three_turns(
    collector: LiveCollector,
) -> None:
    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    neatlogs_web.init(
        endpoint=collector.url,
        workflow_name=WORKFLOW,
        schedule_delay_ms=50,
        flush_on_sigterm=False,
    )
    try:
        with run_uvicorn(make_app()) as base, ThreadPoolExecutor(len(USERS)) as pool:
            list(pool.map(lambda user: talk(base, user), USERS))
        assert neatlogs_web.flush(10)
    finally:
        neatlogs_web.shutdown()
        reset_global_tracer_provider()

    sessions = {row["session_id"]: row for row in collector.get("/api/sessions").json()["sessions"]}
    assert set(sessions) == {f"conv-{user}" for user in USERS}
    for user in USERS:
        row = sessions[f"conv-{user}"]
        messages = messages_of(user)
        prompt = sum(prompt_tokens(text) for text in messages)
        completion = sum(len(reply_to(text)) for text in messages)
        assert row == {
            **row,
            "workflow": WORKFLOW,
            "turn_count": TURNS,
            "trace_count": TURNS,
            "error_count": 0,
            "first_input": messages[0],
            "last_output": reply_to(messages[-1]),
            "end_user": user,
            "tokens": {"input": prompt, "output": completion, "total": prompt + completion},
        }, user
        # The conversation, turn by turn: one trace each, rooted at FastAPI's request
        # span that carries the turn, with its input and output and no request apart.
        entries = collector.get(f"/api/sessions/conv-{user}").json()["traces"]
        route = "POST /chat/{conversation_id}"
        assert [
            (e["name"], e["turn"], e["input"], e["output"], e["http_status"], e["request"])
            for e in entries
        ] == [(route, True, text, reply_to(text), 200, None) for text in messages], user
