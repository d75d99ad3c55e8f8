"""A FastAPI chat app traced by neatlogs_web, read back through Phoenix's own API.

The promise under test (issue 13, DESIGN.md "A session is a timeline of
turns"): with default options, on a FastAPI that traces every request itself,
N user turns are N traces in the user's Phoenix session, under the workflow's
project, with the session's first input, last output, token totals and end
user filled in, each trace rooted at FastAPI's request span, which carries
its turn; and when the app already set up Phoenix's own tracer provider
(``phoenix.otel.register()``), every span of the app's work still carries its
session (FastAPI's own spans inside a request never do).

The app is real: uvicorn on 127.0.0.1, three users with their own cookie
jars over real HTTP, export over OTLP/HTTP to a real Phoenix server. Each
module fixture runs the conversation once; the tests below it each check one
fact, so a failure names the fact that does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace as otel_trace
from phoenix.otel import register
from pydantic import BaseModel

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.backends.phoenix_client import PhoenixClient, Session, Span, settled, wait_for
from tests.backends.phoenix_server import PhoenixServer
from tests.pipeline import reset_global_tracer_provider
from tests.servers import run_uvicorn

pytestmark = pytest.mark.backends

# --- How an app gives a turn its input, output, kind and tokens: as the README shows. ---


def init_tracing(endpoint: str, workflow: str) -> None:
    neatlogs_web.init(
        endpoint=endpoint,
        workflow_name=workflow,
        schedule_delay_ms=50,
        flush_on_sigterm=False,
    )


def run_turn(message: str) -> str:
    """One user turn: a ``turn`` with the conversation, an ``llm`` child with tokens."""
    with neatlogs_web.trace("turn", input=message):
        with neatlogs_web.trace("llm", kind="llm"):
            reply = fake_llm(message)
            neatlogs_web.set_usage(
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                model=MODEL,
            )
        neatlogs_web.set_output(reply.text)
    return reply.text


# --- The app and its users. ---

MODEL = "fake-chat-1"
SECRET = "phoenix-test-secret"
USERS = ("ana", "ben", "cai")
TURNS = 3
WORKFLOW = "support-bot"


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def fake_llm(message: str) -> Reply:
    """A model call as tracing sees one: the client library's own span, through
    whatever global provider the app has (as the OpenAI instrumentation's is)."""
    client_tracer = otel_trace.get_tracer("tests.fake_llm_client")
    with client_tracer.start_as_current_span("POST /v1/chat/completions") as span:
        span.set_attribute("http.request.method", "POST")
        text = f"re: {message}"
    return Reply(text, prompt_tokens=expected_prompt_tokens(message), completion_tokens=len(text))


def expected_prompt_tokens(message: str) -> int:
    return 7 + len(message)


def expected_reply(message: str) -> str:
    return f"re: {message}"


def messages_of(user: str) -> list[str]:
    return [f"{user}: question {turn} of {TURNS}" for turn in range(1, TURNS + 1)]


class ChatIn(BaseModel):
    message: str


def user_from_header(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-user-id":
            return str(value.decode("latin-1"))
    return None


def make_chat_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(NeatlogsSessionMiddleware, secret_key=SECRET, end_user=user_from_header)

    @app.post("/chat")
    async def chat(body: ChatIn) -> dict[str, str | None]:
        answer = run_turn(body.message)
        return {"answer": answer, "session_id": neatlogs_web.current_session_id()}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@dataclass(frozen=True)
class Conversations:
    """What the users saw: their session ids (from the app) and answers."""

    project: str
    session_of: dict[str, str]
    answers_of: dict[str, list[str]]
    new_spans: list[Span]

    @property
    def session_ids(self) -> set[str]:
        return set(self.session_of.values())


def talk(base: str, user: str) -> tuple[str, list[str]]:
    """One user's turns, over one client with its own cookie jar."""
    sessions: set[str] = set()
    answers: list[str] = []
    with httpx.Client(base_url=base, headers={"x-user-id": user}, timeout=30) as client:
        for message in messages_of(user):
            response = client.post("/chat", json={"message": message})
            response.raise_for_status()
            body = response.json()
            answers.append(body["answer"])
            sessions.add(body["session_id"])
    assert len(sessions) == 1, f"{user} was given several sessions by the app: {sessions}"
    return sessions.pop(), answers


def run_conversations(
    server: PhoenixServer, phoenix: PhoenixClient, project: str, setup: Callable[[], None]
) -> Conversations:
    """Three users talk to the app concurrently; returns once Phoenix stored it all."""
    before = {span.span_id for span in phoenix.all_spans()}
    setup()
    with run_uvicorn(make_chat_app()) as base, ThreadPoolExecutor(len(USERS)) as pool:
        results = dict(zip(USERS, pool.map(lambda user: talk(base, user), USERS), strict=True))
    # Our pipeline and any other provider the app set (register()'s).
    assert neatlogs_web.flush(10), "neatlogs_web did not export every span"
    provider = otel_trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        assert force_flush(10_000), "the global provider did not export every span"
    session_of = {user: session for user, (session, _) in results.items()}
    assert len(set(session_of.values())) == len(USERS), f"users share sessions: {session_of}"
    new_spans = wait_for(
        lambda: [span for span in phoenix.all_spans() if span.span_id not in before],
        settled(),
        timeout_s=30,
    )
    return Conversations(
        project=project,
        session_of=session_of,
        answers_of={user: answers for user, (_, answers) in results.items()},
        new_spans=new_spans,
    )


def sessions_by_user(phoenix: PhoenixClient, convos: Conversations) -> dict[str, Session | None]:
    """Each user's Phoenix session, in whichever project it landed: the project
    has its own test, so the facts below fail for their own reasons only."""
    found = {
        s.session_id: s for project in phoenix.project_names() for s in phoenix.sessions(project)
    }
    return {user: found.get(session) for user, session in convos.session_of.items()}


def where_sessions_went(phoenix: PhoenixClient, convos: Conversations) -> dict[str, list[str]]:
    """For failure messages: which projects hold our sessions."""
    return {
        project: ours
        for project in phoenix.project_names()
        if (
            ours := [
                s.session_id
                for s in phoenix.sessions(project)
                if s.session_id in convos.session_ids
            ]
        )
    }


# --- FastAPI with its own telemetry on (the default), neatlogs_web's provider. ---


@pytest.fixture(scope="module")
def chat(phoenix_server: PhoenixServer) -> Iterator[Conversations]:
    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    with PhoenixClient(phoenix_server.url) as phoenix:
        try:
            yield run_conversations(
                phoenix_server,
                phoenix,
                WORKFLOW,
                lambda: init_tracing(phoenix_server.url, WORKFLOW),
            )
        finally:
            neatlogs_web.shutdown()
            reset_global_tracer_provider()


def test_fastapi_traces_requests_itself_in_this_setup(chat: Conversations) -> None:
    """Not a promise of ours: the premise. FastAPI's own request spans reached
    Phoenix, so the one-trace-per-turn tests below are tested against them."""
    routes = {span.attribute("http.route") for span in chat.new_spans}
    assert "/chat" in routes, sorted(span.name for span in chat.new_spans)


def test_the_workflow_is_the_phoenix_project(phoenix: PhoenixClient, chat: Conversations) -> None:
    assert WORKFLOW in phoenix.project_names(), where_sessions_went(phoenix, chat)
    assert set(s.session_id for s in phoenix.sessions(WORKFLOW)) == chat.session_ids, (
        where_sessions_went(phoenix, chat)
    )


def test_each_user_is_one_session_of_one_trace_per_turn(
    phoenix: PhoenixClient, chat: Conversations
) -> None:
    by_user = sessions_by_user(phoenix, chat)
    assert all(by_user.values()), where_sessions_went(phoenix, chat)
    shape = {user: (s.num_traces, s.root_span_names) for user, s in by_user.items() if s}
    assert shape == {user: (TURNS, ["POST /chat"] * TURNS) for user in USERS}


def test_each_trace_shows_its_turns_input_and_output(
    phoenix: PhoenixClient, chat: Conversations
) -> None:
    by_user = sessions_by_user(phoenix, chat)
    assert all(by_user.values()), where_sessions_went(phoenix, chat)
    shown = {user: (s.inputs, s.outputs) for user, s in by_user.items() if s}
    assert shown == {
        user: (messages_of(user), [expected_reply(m) for m in messages_of(user)]) for user in USERS
    }
    assert {user: answers for user, answers in chat.answers_of.items()} == {
        user: [expected_reply(m) for m in messages_of(user)] for user in USERS
    }


def test_each_session_shows_first_input_and_last_output(
    phoenix: PhoenixClient, chat: Conversations
) -> None:
    by_user = sessions_by_user(phoenix, chat)
    assert all(by_user.values()), where_sessions_went(phoenix, chat)
    shown = {user: (s.first_input, s.last_output) for user, s in by_user.items() if s}
    assert shown == {
        user: (messages_of(user)[0], expected_reply(messages_of(user)[-1])) for user in USERS
    }


def test_each_session_counts_its_llm_tokens(phoenix: PhoenixClient, chat: Conversations) -> None:
    by_user = sessions_by_user(phoenix, chat)
    assert all(by_user.values()), where_sessions_went(phoenix, chat)
    counted = {user: s.tokens for user, s in by_user.items() if s}
    for user in USERS:
        prompt = sum(expected_prompt_tokens(m) for m in messages_of(user))
        completion = sum(len(expected_reply(m)) for m in messages_of(user))
        assert (counted[user].prompt, counted[user].completion, counted[user].total) == (
            prompt,
            completion,
            prompt + completion,
        ), user


def test_each_session_shows_its_end_user(phoenix: PhoenixClient, chat: Conversations) -> None:
    by_user = sessions_by_user(phoenix, chat)
    assert all(by_user.values()), where_sessions_went(phoenix, chat)
    assert {user: s.user_id for user, s in by_user.items() if s} == {user: user for user in USERS}


def test_every_span_of_the_apps_work_carries_its_users_session(chat: Conversations) -> None:
    assert_the_apps_spans_carry_their_session(chat)


def is_fastapi_operation(span: Span) -> bool:
    """FastAPI's own spans inside a request (``fastapi.endpoint``, ...): they bring
    no session to a trace; the request span carries it once a turn claims it."""
    return span.name.startswith("fastapi.") and span.parent_id is not None


def assert_the_apps_spans_carry_their_session(convos: Conversations) -> None:
    assert convos.new_spans, "no span reached Phoenix"
    unstamped = sorted(
        {
            span.name
            for span in convos.new_spans
            if not span.attribute("session.id") and not is_fastapi_operation(span)
        }
    )
    assert unstamped == [], f"spans without session.id: {unstamped}"
    operations = sorted(
        {span.name for span in convos.new_spans if is_fastapi_operation(span)}
        & {span.name for span in convos.new_spans if span.attribute("session.id")}
    )
    assert operations == [], f"FastAPI's own spans with session.id: {operations}"
    stamped = {span.attribute("session.id") for span in convos.new_spans} - {None}
    assert stamped == convos.session_ids
    # One trace is one user's: no trace mixes sessions.
    per_trace: dict[str, set[Any]] = {}
    for span in convos.new_spans:
        if span.attribute("session.id"):
            per_trace.setdefault(span.trace_id, set()).add(span.attribute("session.id"))
    assert all(len(ids) == 1 for ids in per_trace.values())


# --- The app set up Phoenix's own provider first: "any provider". ---

REGISTERED_PROJECT = f"{WORKFLOW}-registered"


@pytest.fixture(scope="module")
def registered_chat(phoenix_server: PhoenixServer) -> Iterator[Conversations]:
    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    providers: list[Any] = []

    def setup() -> None:
        # What a Phoenix user's app already does, before neatlogs_web comes in.
        providers.append(
            register(
                endpoint=phoenix_server.otlp_traces_url,
                project_name=REGISTERED_PROJECT,
                batch=True,
                verbose=False,
            )
        )
        init_tracing(phoenix_server.url, REGISTERED_PROJECT)

    with PhoenixClient(phoenix_server.url) as phoenix:
        try:
            yield run_conversations(phoenix_server, phoenix, REGISTERED_PROJECT, setup)
        finally:
            neatlogs_web.shutdown()
            for provider in providers:
                provider.shutdown()
            reset_global_tracer_provider()


def test_register_provider_spans_carry_their_users_session(
    registered_chat: Conversations,
) -> None:
    assert_the_apps_spans_carry_their_session(registered_chat)


def test_register_provider_spans_stay_in_its_project(
    phoenix: PhoenixClient, registered_chat: Conversations
) -> None:
    assert set(s.session_id for s in phoenix.sessions(REGISTERED_PROJECT)) == (
        registered_chat.session_ids
    ), where_sessions_went(phoenix, registered_chat)


def test_register_provider_sessions_have_one_trace_per_turn(
    phoenix: PhoenixClient, registered_chat: Conversations
) -> None:
    by_user = sessions_by_user(phoenix, registered_chat)
    assert all(by_user.values()), where_sessions_went(phoenix, registered_chat)
    shape = {user: (s.num_traces, s.root_span_names) for user, s in by_user.items() if s}
    assert shape == {user: (TURNS, ["POST /chat"] * TURNS) for user in USERS}
