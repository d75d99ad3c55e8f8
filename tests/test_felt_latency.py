"""What the person waited for, on each turn: the first words and the end of the answer.

A real uvicorn on 127.0.0.1 serves a streamed answer whose first words come
after a known delay and whose end comes after another; a real HTTP client
reads it as a browser would, and the exported spans are decoded. The
figures must show the delays (never less, and not much more than the
client itself saw), on the turn of the right session, whichever stack
carries the turn: plain Starlette and FastAPI with its own telemetry on
uvicorn, and Flask on waitress, whose streamed body the server pulls after
the view returned.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import flask
import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from websockets.sync.client import connect

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiSessions
from tests.apps import TracedRequests
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import run_uvicorn, run_waitress

FIRST_WORDS_S = 0.4
REST_S = 0.3
#: How early a server's event loop may wake from a sleep: uvloop's timers count
#: whole milliseconds from a time cached at the start of each loop iteration.
TIMER_SLACK_S = 0.002
DURATION_KEY = "neatlogs.response.duration"
FIRST_CHUNK_KEY = "neatlogs.response.time_to_first_chunk"
START_KEY = "neatlogs.response.time_to_start"
COMPLETE_KEY = "neatlogs.response.complete"


async def _answer(question: str) -> AsyncIterator[str]:
    with neatlogs_web.trace("turn", input=question):
        await asyncio.sleep(FIRST_WORDS_S)
        yield "Hello"
        await asyncio.sleep(REST_S)
        yield ", world"


async def stream(request: Request) -> StreamingResponse:
    return StreamingResponse(_answer(request.query_params["q"]), media_type="text/plain")


async def whole(request: Request) -> PlainTextResponse:
    with neatlogs_web.trace("turn", input=request.query_params["q"]):
        await asyncio.sleep(FIRST_WORDS_S)
    return PlainTextResponse("done")


async def probe(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _starlette() -> Any:
    return Starlette(
        routes=[Route("/stream", stream), Route("/whole", whole), Route("/probe", probe)]
    )


def _fastapi() -> Any:
    app = FastAPI()
    app.add_api_route("/stream", stream)
    app.add_api_route("/whole", whole)
    app.add_api_route("/probe", probe)
    return app


def _flask() -> Any:
    """The same answers as a Flask app, whose streamed body the WSGI server pulls."""
    app = flask.Flask(__name__)

    def answer(question: str) -> Iterator[str]:
        with neatlogs_web.trace("turn", input=question):
            time.sleep(FIRST_WORDS_S)
            yield "Hello"
            time.sleep(REST_S)
            yield ", world"

    @app.get("/stream")
    def flask_stream() -> flask.Response:
        return flask.Response(answer(flask.request.args["q"]), mimetype="text/plain")

    @app.get("/whole")
    def flask_whole() -> str:
        with neatlogs_web.trace("turn", input=flask.request.args["q"]):
            time.sleep(FIRST_WORDS_S)
        return "done"

    @app.get("/probe")
    def flask_probe() -> str:
        return "ok"

    return app


@contextmanager
def _serve(stack: str) -> Iterator[str]:
    if stack == "flask-waitress":
        with run_waitress(WsgiSessions(_flask(), secret_key="felt")) as base:
            yield base
        return
    app = _starlette() if stack == "starlette" else _fastapi()
    with run_uvicorn(NeatlogsSessionMiddleware(app, secret_key="felt")) as base:
        yield base


@pytest.fixture(params=["starlette", "fastapi", "flask-waitress"])
def served(request: pytest.FixtureRequest, tracing: OTLPReceiver) -> Iterator[str]:
    with _serve(request.param) as base:
        yield base


@pytest.fixture(params=["starlette", "fastapi"])
def served_asgi(request: pytest.FixtureRequest, tracing: OTLPReceiver) -> Iterator[str]:
    """Where the server stops at once when the client leaves. A WSGI server decides
    for itself: waitress keeps pulling the body into its buffer after the client
    left, so the answer is complete as far as the app can know."""
    with _serve(request.param) as base:
        yield base


def _read_streamed(client: httpx.Client, url: str) -> tuple[float, float]:
    """Seconds until the first body bytes and until the end, as the client saw them."""
    sent = time.perf_counter()
    first = None
    with client.stream("GET", url) as response:
        for chunk in response.iter_bytes():
            if chunk and first is None:
                first = time.perf_counter() - sent
    assert first is not None
    return first, time.perf_counter() - sent


def _figures_of_turn(spans: list[ReceivedSpan], question: str) -> ReceivedSpan:
    """The turn asked ``question``, which carries the felt latency; checks that the
    framework's request span carrying the turn (its input copied), where there is
    one, carries the same figures, and no other span of the trace does."""
    (turn,) = [s for s in spans if s.name == "turn" and s.attributes.get("input.value") == question]
    carriers = [s for s in spans if s.trace_id == turn.trace_id and DURATION_KEY in s.attributes]
    assert {s.span_id for s in carriers} == {
        s.span_id
        for s in spans
        if s.trace_id == turn.trace_id and s.attributes.get("input.value") == question
    }
    keys = (START_KEY, FIRST_CHUNK_KEY, DURATION_KEY, COMPLETE_KEY)
    assert all(
        [c.attributes.get(k) for k in keys] == [turn.attributes.get(k) for k in keys]
        for c in carriers
    )
    return turn


def test_a_streamed_answer_shows_when_its_first_words_and_its_end_reached_the_person(
    served: str, tracing: OTLPReceiver
) -> None:
    with httpx.Client(timeout=10) as client:
        client_first, client_end = _read_streamed(client, f"{served}/stream?q=streamed")
        session = client.cookies.get("neatlogs_session")
    assert session is not None
    assert neatlogs_web.flush(10)
    spans = tracing.wait_for(lambda got: any(DURATION_KEY in s.attributes for s in got))
    figures = _figures_of_turn(spans, "streamed")

    first, end = figures.attributes[FIRST_CHUNK_KEY], figures.attributes[DURATION_KEY]
    assert FIRST_WORDS_S <= first <= client_first
    assert FIRST_WORDS_S + REST_S <= end <= client_end
    assert 0 <= figures.attributes[START_KEY] <= first
    assert figures.attributes[COMPLETE_KEY] is True
    assert figures.attributes["session.id"] == session.split(".", 1)[0]


def test_a_whole_answer_shows_its_wait_and_a_request_without_a_turn_records_nothing(
    served: str, tracing: OTLPReceiver
) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{served}/probe").text == "ok"
        sent = time.perf_counter()
        assert client.get(f"{served}/whole", params={"q": "whole"}).text == "done"
        waited = time.perf_counter() - sent
    assert neatlogs_web.flush(10)
    spans = tracing.wait_for(lambda got: any(DURATION_KEY in s.attributes for s in got))
    figures = _figures_of_turn(spans, "whole")
    assert FIRST_WORDS_S <= figures.attributes[FIRST_CHUNK_KEY] <= waited
    assert figures.attributes[FIRST_CHUNK_KEY] <= figures.attributes[DURATION_KEY] <= waited
    assert {s.trace_id for s in spans if DURATION_KEY in s.attributes} == {figures.trace_id}


def test_an_answer_the_person_left_is_not_complete(served_asgi: str, tracing: OTLPReceiver) -> None:
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{served_asgi}/stream", params={"q": "left"}) as response,
    ):
        next(response.iter_bytes())  # the first words, then the person closes the tab
    assert neatlogs_web.flush(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = tracing.received.spans
        if any(DURATION_KEY in s.attributes or COMPLETE_KEY in s.attributes for s in spans):
            break
        time.sleep(0.05)
        neatlogs_web.flush(1)
    figures = next(s for s in tracing.received.spans if COMPLETE_KEY in s.attributes)
    assert figures.attributes[COMPLETE_KEY] is False
    assert figures.attributes[FIRST_CHUNK_KEY] >= FIRST_WORDS_S
    assert DURATION_KEY not in figures.attributes


def test_a_wsgi_body_nobody_reads_or_closes_still_exports_its_turn(tracing: OTLPReceiver) -> None:
    """A turn held for its answer ends with the body, even one a caller drops
    unread (a test client that never reads the response)."""
    from werkzeug.test import EnvironBuilder

    app = WsgiSessions(_flask(), secret_key="felt")
    environ = EnvironBuilder(path="/whole", query_string={"q": "unread"}).get_environ()
    body = app(environ, lambda status, headers, exc_info=None: lambda data: None)
    del body
    assert neatlogs_web.flush(10)
    spans = tracing.wait_for(lambda got: any(s.name == "turn" for s in got))
    (turn,) = [s for s in spans if s.name == "turn"]
    assert turn.attributes["input.value"] == "unread"
    assert turn.attributes[COMPLETE_KEY] is False


def _starlette_with_late_turns(background_may_end: threading.Event | None = None) -> Any:
    """A turn whose answer is out before a background task ends (it waits for
    ``background_may_end``), and a turn a producer task closes after the person
    left its stream."""
    from starlette.background import BackgroundTask

    async def then_background(request: Request) -> PlainTextResponse:
        with neatlogs_web.trace("turn", input="then-background"):
            pass

        async def slow() -> None:
            if background_may_end is not None:
                await asyncio.to_thread(background_may_end.wait, 20)

        return PlainTextResponse("done", background=BackgroundTask(slow))

    tasks: set[asyncio.Task[None]] = set()

    async def produced(request: Request) -> StreamingResponse:
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def produce() -> None:
            with neatlogs_web.trace("turn", input="produced"):
                for index in range(8):
                    await asyncio.sleep(0.1)
                    await queue.put(f"data: {index}\n\n")
            await queue.put(None)

        task = asyncio.create_task(produce())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

        async def relay() -> AsyncIterator[str]:
            while (item := await queue.get()) is not None:
                yield item

        return StreamingResponse(relay(), media_type="text/event-stream")

    return Starlette(
        routes=[Route("/then-background", then_background), Route("/produced", produced)]
    )


def test_a_turn_is_exported_when_its_answer_is_out_not_when_background_work_ends(
    tracing: OTLPReceiver,
) -> None:
    background_may_end = threading.Event()
    app = NeatlogsSessionMiddleware(
        _starlette_with_late_turns(background_may_end), secret_key="felt"
    )
    with run_uvicorn(app) as base:
        try:
            assert httpx.get(f"{base}/then-background").text == "done"
            assert neatlogs_web.flush(10)
            spans = tracing.wait_for(
                lambda got: any(s.attributes.get("input.value") == "then-background" for s in got)
            )
        finally:
            background_may_end.set()  # only now may the background task end
    (turn,) = [s for s in spans if s.attributes.get("input.value") == "then-background"]
    assert turn.attributes[COMPLETE_KEY] is True


def test_a_turn_that_ends_after_the_person_left_is_still_exported(tracing: OTLPReceiver) -> None:
    app = NeatlogsSessionMiddleware(_starlette_with_late_turns(), secret_key="felt")
    with run_uvicorn(app) as base:
        with (
            httpx.Client(timeout=10) as client,
            client.stream("GET", f"{base}/produced") as response,
        ):
            next(response.iter_bytes())  # the first event, then the tab closes
        time.sleep(1.2)  # the producer ends its turn after the request is over
        assert neatlogs_web.flush(10)
        spans = tracing.wait_for(
            lambda got: any(s.attributes.get("input.value") == "produced" for s in got)
        )
    (turn,) = [s for s in spans if s.attributes.get("input.value") == "produced"]
    assert turn.name == "turn"


def test_a_failed_turn_is_exported_at_once_though_its_response_waits_for_the_collector(
    tracing: OTLPReceiver,
) -> None:
    """Flask keeps an error response in a cycle with its exception: the body is
    dropped only when the garbage collector runs. A turn that failed is not held
    for that answer."""
    app = flask.Flask(__name__)

    @app.get("/refuse")
    def refuse() -> str:
        with neatlogs_web.trace("turn", input="refused"):
            flask.abort(403)

    app.wsgi_app = WsgiSessions(app.wsgi_app, secret_key="felt")  # type: ignore[method-assign]
    gc.disable()
    try:
        assert app.test_client().get("/refuse").status_code == 403
        assert neatlogs_web.flush(10)
        spans = tracing.wait_for(lambda got: any(s.name == "turn" for s in got), timeout_s=5)
        assert [s.attributes["input.value"] for s in spans if s.name == "turn"] == ["refused"]
    finally:
        gc.enable()


def _websocket_chat() -> Any:
    """Each message is a turn: its first reply after a known delay, its last after
    another; a message saying "fail" fails its turn after the first reply."""
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            try:
                with neatlogs_web.trace("turn", input=text):
                    await asyncio.sleep(FIRST_WORDS_S)
                    await websocket.send_text("Hello")
                    if text == "fail":
                        raise RuntimeError("the model went away")
                    await asyncio.sleep(REST_S)
                    await websocket.send_text(", world")
            except RuntimeError:
                await websocket.send_text("sorry")

    return Starlette(routes=[WebSocketRoute("/chat", chat)])


def test_each_websocket_message_shows_the_wait_for_its_own_replies(
    tracing: OTLPReceiver,
) -> None:
    app = NeatlogsSessionMiddleware(_websocket_chat(), secret_key="felt")
    waited: dict[str, tuple[float, float]] = {}
    with run_uvicorn(app) as base, connect(base.replace("http", "ws", 1) + "/chat") as socket:
        for question in ("first", "second"):
            time.sleep(0.5)  # the person reads, then asks: the wait starts at the question
            sent = time.perf_counter()
            socket.send(question)
            assert socket.recv(timeout=10) == "Hello"
            first = time.perf_counter() - sent
            assert socket.recv(timeout=10) == ", world"
            waited[question] = (first, time.perf_counter() - sent)
        socket.send("fail")
        assert [socket.recv(timeout=10), socket.recv(timeout=10)] == ["Hello", "sorry"]
    assert neatlogs_web.flush(10)
    spans = tracing.wait_for(lambda got: sum(s.name == "turn" for s in got) >= 3)
    turns = {s.attributes["input.value"]: s for s in spans if s.name == "turn"}

    for question, (client_first, client_end) in waited.items():
        figures = turns[question].attributes
        earliest = FIRST_WORDS_S - TIMER_SLACK_S
        assert earliest <= figures[FIRST_CHUNK_KEY] <= client_first, (figures, waited)
        assert earliest + REST_S <= figures[DURATION_KEY] <= client_end, (figures, waited)
        assert figures[COMPLETE_KEY] is True
        assert START_KEY not in figures  # no status line on a socket
    failed = turns["fail"].attributes
    assert failed[COMPLETE_KEY] is False
    assert failed[FIRST_CHUNK_KEY] >= FIRST_WORDS_S - TIMER_SLACK_S
    assert {s.trace_id for s in spans if DURATION_KEY in s.attributes} == {
        s.trace_id for s in turns.values()
    }


def _websocket_side_by_side() -> Any:
    """Each message handled in a task of its own, so a person can send the next
    (a "stop") while an answer still streams; a heartbeat goes out between."""
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(text: str) -> None:
            with neatlogs_web.trace("turn", input=text):
                await asyncio.sleep(FIRST_WORDS_S)
                await websocket.send_text(f"{text}: Hello")
                await asyncio.sleep(REST_S)
                await websocket.send_text(f"{text}: world")

        async def heartbeat() -> None:
            await asyncio.sleep(0.1)
            await websocket.send_text("ping")

        tasks.add(asyncio.create_task(heartbeat()))
        async for text in websocket.iter_text():
            tasks.add(asyncio.create_task(answer(text)))
        await asyncio.gather(*tasks)

    return Starlette(routes=[WebSocketRoute("/chat", chat)])


def test_websocket_messages_handled_side_by_side_each_show_their_own_wait(
    tracing: OTLPReceiver,
) -> None:
    app = NeatlogsSessionMiddleware(_websocket_side_by_side(), secret_key="felt")
    seen: dict[str, float] = {}
    with run_uvicorn(app) as base, connect(base.replace("http", "ws", 1) + "/chat") as socket:
        started = time.perf_counter()
        socket.send("m1")
        time.sleep(0.2)  # the second message while the first answer is on its way
        sent_second = time.perf_counter() - started
        socket.send("m2")
        while len(seen) < 5:
            message = socket.recv(timeout=10)
            seen[message] = time.perf_counter() - started
    assert neatlogs_web.flush(10)
    spans = tracing.wait_for(lambda got: sum(s.name == "turn" for s in got) >= 2)
    turns = {s.attributes["input.value"]: s.attributes for s in spans if s.name == "turn"}
    for name, sent in (("m1", 0.0), ("m2", sent_second)):
        figures, earliest = turns[name], FIRST_WORDS_S - TIMER_SLACK_S
        assert earliest <= figures[FIRST_CHUNK_KEY] <= seen[f"{name}: Hello"] - sent, seen
        assert earliest + REST_S <= figures[DURATION_KEY] <= seen[f"{name}: world"] - sent
        assert figures[COMPLETE_KEY] is True


def test_a_turn_whose_block_encloses_the_whole_answer_carries_its_figures(
    tracing: OTLPReceiver,
) -> None:
    """An ASGI middleware of the app's own, inside ours, that makes each request
    a turn: the block ends after the answer went out."""

    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.sleep(FIRST_WORDS_S)
        return PlainTextResponse("done")

    inner = TracedRequests(
        Starlette(routes=[Route("/slow", slow)]), "turn", lambda scope: {"input": scope["path"]}
    )
    with run_uvicorn(NeatlogsSessionMiddleware(inner, secret_key="felt")) as base:
        sent = time.perf_counter()
        assert httpx.get(f"{base}/slow").text == "done"
        waited = time.perf_counter() - sent
    assert neatlogs_web.flush(10)
    spans = tracing.wait_for(lambda got: any(s.name == "turn" for s in got))
    (turn,) = [s.attributes for s in spans if s.name == "turn"]
    assert FIRST_WORDS_S - TIMER_SLACK_S <= turn[FIRST_CHUNK_KEY] <= turn[DURATION_KEY] <= waited
    assert turn[COMPLETE_KEY] is True


def test_a_message_received_in_a_task_of_its_own_is_timed_from_its_arrival(
    tracing: OTLPReceiver,
) -> None:
    """Django Channels receives each message in a task of its own, so the consumer
    never sees that task's context: the connection's latest message is the one."""

    async def consumer(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await asyncio.ensure_future(receive()))["type"] != "websocket.disconnect":
            with neatlogs_web.trace("turn", input=message["text"]):
                await send({"type": "websocket.send", "text": "Hello"})

    app = NeatlogsSessionMiddleware(consumer, secret_key="felt")
    with run_uvicorn(app) as base, connect(base.replace("http", "ws", 1) + "/") as socket:
        time.sleep(0.5)  # the person reads the page before asking
        sent = time.perf_counter()
        socket.send("late")
        assert socket.recv(timeout=10) == "Hello"
        waited = time.perf_counter() - sent
    assert neatlogs_web.flush(10)
    spans = tracing.wait_for(lambda got: any(s.name == "turn" for s in got))
    (turn,) = [s.attributes for s in spans if s.name == "turn"]
    assert 0 <= turn[FIRST_CHUNK_KEY] <= turn[DURATION_KEY] <= waited


def test_a_turn_that_answers_no_message_waits_for_nothing(tracing: OTLPReceiver) -> None:
    """A greeting before the first message and a push after the answer are turns
    of the app's own: nobody waited for them, whatever came before."""
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        with neatlogs_web.trace("turn", input="greeting"):
            await websocket.send_text("Hi")
        text = await websocket.receive_text()
        with neatlogs_web.trace("turn", input=text):
            await websocket.send_text("Hello")
        await asyncio.sleep(0.3)
        with neatlogs_web.trace("turn", input="push"):
            await websocket.send_text("One more thing")

    app = NeatlogsSessionMiddleware(
        Starlette(routes=[WebSocketRoute("/chat", chat)]), secret_key="felt"
    )
    with run_uvicorn(app) as base, connect(base.replace("http", "ws", 1) + "/chat") as socket:
        assert socket.recv(timeout=10) == "Hi"
        socket.send("question")
        assert [socket.recv(timeout=10), socket.recv(timeout=10)] == ["Hello", "One more thing"]
    assert neatlogs_web.flush(10)
    spans = tracing.wait_for(lambda got: sum(s.name == "turn" for s in got) >= 3)
    turns = {s.attributes["input.value"]: s.attributes for s in spans if s.name == "turn"}
    assert turns["question"][COMPLETE_KEY] is True
    assert turns["question"][FIRST_CHUNK_KEY] < 0.3
    for unasked in ("greeting", "push"):
        assert not any(key.startswith("neatlogs.response.") for key in turns[unasked])


def test_a_turn_still_held_for_its_answer_is_exported_at_shutdown(
    tracing: OTLPReceiver,
) -> None:
    """The process stops between the server writing a body and closing it (a
    SIGTERM right after the last byte went out): the turn held for the answer
    still ends, and the shutdown's flush sends it."""
    from werkzeug.test import EnvironBuilder

    app = WsgiSessions(_flask(), secret_key="felt")
    environ = EnvironBuilder(path="/whole", query_string={"q": "at shutdown"}).get_environ()
    body = app(environ, lambda status, headers, exc_info=None: lambda data: None)
    neatlogs_web.shutdown()
    turns = [s for s in tracing.spans if s.name == "turn"]
    assert [s.attributes["input.value"] for s in turns] == ["at shutdown"]
    assert turns[0].attributes[COMPLETE_KEY] is False  # its end never came
    del body
