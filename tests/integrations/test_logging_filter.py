"""The logging filter, configured from ``dictConfig``, in concurrent requests.

Log lines from a real server carry the session of the request that logged
them, and, inside a span, ids that match the exported span.
"""

from __future__ import annotations

import io
import logging
import logging.config
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_uvicorn

FORMAT = "%(levelname)s [session=%(session_id)s trace=%(trace_id)s span=%(span_id)s] %(message)s"
LINE = re.compile(r"INFO \[session=(\S+) trace=(\S+) span=(\S+)\] (\S+)")
logger = logging.getLogger("tests.chat")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"session": {"()": "neatlogs_web.integrations.logging.SessionLogFilter"}},
            "formatters": {"plain": {"format": FORMAT}},
            "handlers": {
                "memory": {
                    "class": "logging.StreamHandler",
                    "stream": stream,
                    "formatter": "plain",
                    "filters": ["session"],
                }
            },
            "loggers": {"tests.chat": {"handlers": ["memory"], "level": "INFO"}},
        }
    )
    yield stream
    chat_logger = logging.getLogger("tests.chat")
    for handler in list(chat_logger.handlers):
        chat_logger.removeHandler(handler)


def make_app() -> Starlette:
    async def chat(request: Request) -> PlainTextResponse:
        conversation = request.path_params["conversation_id"]
        logger.info("received:%s", conversation)
        with neatlogs_web.trace("turn", conversation=conversation):
            logger.info("in_turn:%s", conversation)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/chat/{conversation_id}", chat)])
    app.add_middleware(
        NeatlogsSessionMiddleware, secret_key="k", conversation_paths=["/chat/{conversation_id}"]
    )
    return app


def test_records_carry_the_requests_session_and_the_active_span(
    tracing: OTLPReceiver, log_stream: io.StringIO
) -> None:
    conversations = [f"conv-{i}" for i in range(5)]
    with run_uvicorn(make_app()) as base, ThreadPoolExecutor(max_workers=5) as clients:
        statuses = clients.map(lambda c: httpx.get(f"{base}/chat/{c}").status_code, conversations)
        assert list(statuses) == [200] * len(conversations)
    logger.info("outside")
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: len(s) >= len(conversations))
    span_ids = {s.attributes["conversation"]: (s.trace_id, s.span_id) for s in spans}

    lines = [LINE.fullmatch(line) for line in log_stream.getvalue().splitlines()]
    parsed = [m.groups() for m in lines if m is not None]
    assert len(parsed) == 2 * len(conversations) + 1
    for session, trace_id, span_id, message in parsed:
        if message == "outside":
            assert (session, trace_id, span_id) == ("-", "-", "-")
            continue
        where, conversation = message.split(":")
        assert session == conversation
        if where == "in_turn":
            assert (trace_id, span_id) == span_ids[conversation]
        else:
            # Before the turn: no span of ours (Starlette does not trace itself).
            assert (trace_id, span_id) == ("-", "-")


def test_custom_default_for_unknown_values() -> None:
    from neatlogs_web.integrations.logging import SessionLogFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert SessionLogFilter(default="").filter(record)
    assert (record.session_id, record.trace_id, record.span_id) == ("", "", "")
    with neatlogs_web.session("s-1", end_user_id="u-1"):
        SessionLogFilter().filter(record)
    assert (record.session_id, record.end_user_id) == ("s-1", "u-1")
