"""Outbound propagation with httpx: the session and trace follow the call.

The two-service example runs as a user starts it (two uvicorn processes, one
shared key, one real OTLP receiver): the tool service's spans carry the
caller's session and continue the caller's trace. An echo server shows what
is sent to allowed and to other hosts; two recording servers, the allowed one
redirecting to the other, show what each hop of a redirect received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.integrations.httpx import propagate
from tests.otlp_receiver import OTLPReceiver
from tests.pipeline import spans_after_flush
from tests.servers import run_example, run_uvicorn
from tests.tokens import make_token, session_of

SHARED_KEY = "shared-between-services"
HEADER = "x-neatlogs-session-id"


def uvicorn_command(app: str) -> list[str]:
    return ["uvicorn", app, "--app-dir", "examples/services", "--port", "{port}"]


def test_tool_service_spans_land_in_the_callers_session_and_trace() -> None:
    with OTLPReceiver() as receiver:
        env = {"NEATLOGS_ENDPOINT": receiver.url, "NEATLOGS_SECRET_KEY": SHARED_KEY}
        with (
            run_example(uvicorn_command("tool:app"), env) as tool_url,
            run_example(uvicorn_command("api:app"), {**env, "TOOL_URL": tool_url}) as api_url,
        ):
            sessions = []
            for user in range(2):
                with httpx.Client(base_url=api_url, timeout=30) as http:
                    for turn in range(2):
                        response = http.post("/chat", json={"message": f"u{user} t{turn} x"})
                        assert response.status_code == 200
                        if HEADER in response.headers:
                            sessions.append(session_of(response.headers[HEADER]))
                        # The tool service saw the caller's session too.
                        assert response.json()["tool"]["session_id"] == sessions[-1]
            conversation = httpx.post(f"{api_url}/chat/conv-7", json={"message": "hi"})
            assert conversation.json()["tool"]["session_id"] == "conv-7"

        def turns(spans: list[Any], name: str) -> list[Any]:
            return [s for s in spans if s.name == name and s.scope == "neatlogs_web"]

        def complete(spans: list[Any]) -> bool:
            return all(len(turns(spans, name)) == 5 for name in ("tool", "call_tool", "turn"))

        spans = receiver.wait_for(complete, timeout_s=20)

    assert len(set(sessions)) == 2
    service = {"example-api", "example-tool"}
    assert {s.resource["service.name"] for s in spans} == service
    by_id = {s.span_id: s for s in spans}
    tool_turns = turns(spans, "tool")
    assert len(tool_turns) == 5
    for tool in tool_turns:
        # The tool's turn joins the caller's trace: under the request span
        # FastAPI continued from the caller's traceparent, which carries the turn.
        assert tool.resource["service.name"] == "example-tool"
        assert tool.links == []
        chain = [tool]
        while chain[-1].resource["service.name"] == "example-tool":
            chain.append(by_id[chain[-1].parent_span_id])
        *tool_spans, caller = chain
        assert caller.name == "call_tool"
        assert {s.trace_id for s in chain} == {caller.trace_id}
        session_id = caller.attributes["session.id"]
        request = [s for s in tool_spans if s.scope == "fastapi" and s.kind == 2]
        assert [s.name for s in request] == ["POST /tools/word_count"]
        assert request[0].attributes["session.id"] == session_id
        for span in tool_spans:
            if span.scope != "fastapi":  # FastAPI's own spans bring no session
                assert span.attributes["session.id"] == session_id
    tool_sessions = sorted(s.attributes["session.id"] for s in tool_turns)
    assert tool_sessions == sorted([*[sessions[0]] * 2, *[sessions[1]] * 2, "conv-7"])
    # The API's turns say what was asked and answered.
    said = sorted(
        (t.attributes["input.value"], t.attributes["output.value"]) for t in turns(spans, "turn")
    )
    assert said == sorted(
        [*[(f"u{u} t{t} x", "3 words") for u in range(2) for t in range(2)], ("hi", "1 words")]
    )


def echo_app() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.headers))

    return Starlette(routes=[Route("/", echo)])


@pytest.fixture(scope="module")
def echo_urls() -> Iterator[tuple[str, str]]:
    """Two servers: one allowed to receive the session, one not (shared by the
    module's tests: they only echo)."""
    with run_uvicorn(echo_app()) as allowed, run_uvicorn(echo_app()) as other:
        yield allowed, other


def host_port(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}"


def test_only_allowed_hosts_get_the_session_trace_and_baggage(
    tracing: OTLPReceiver, echo_urls: tuple[str, str]
) -> None:
    allowed, other = echo_urls
    client = propagate(
        httpx.Client(timeout=10), [host_port(allowed)], secret_key=SHARED_KEY, baggage=True
    )
    with client, neatlogs_web.session("conv/1"), neatlogs_web.trace("turn"):
        sent = client.get(allowed, headers={"baggage": "tenant=a"}).json()
        elsewhere = client.get(other, headers={"baggage": "tenant=a"}).json()
    assert session_of(sent[HEADER]) == "conv/1"
    # The trace the allowed host continues is the turn's, as exported.
    (turn,) = spans_after_flush(tracing, 1)
    assert (turn.name, turn.attributes["session.id"]) == ("turn", "conv/1")
    assert sent["traceparent"].split("-")[1] == turn.trace_id
    assert sent["baggage"] == "tenant=a,session.id=conv%2F1"
    assert HEADER not in elsewhere
    assert "traceparent" not in elsewhere
    assert elsewhere["baggage"] == "tenant=a"


def test_async_client_sends_the_session_bound_where_each_request_is_sent(
    echo_urls: tuple[str, str],
) -> None:
    allowed, _ = echo_urls

    async def calls() -> list[dict[str, str]]:
        async with propagate(
            httpx.AsyncClient(timeout=10), [host_port(allowed)], secret_key=SHARED_KEY
        ) as client:

            async def call(session_id: str) -> dict[str, str]:
                with neatlogs_web.session(session_id):
                    return dict((await client.get(allowed)).json())

            sent = list(await asyncio.gather(*(call(f"user-{i}") for i in range(4))))
            # No session bound: nothing to sign, nothing sent.
            sent.append(dict((await client.get(allowed)).json()))
            return sent

    *per_user, unbound = asyncio.run(calls())
    assert [session_of(s[HEADER]) for s in per_user] == [f"user-{i}" for i in range(4)]
    assert HEADER not in unbound


def test_allowed_hosts_match_host_port_and_subdomain_wildcards() -> None:
    client = propagate(httpx.Client(), ["*.svc.internal", "tools", "api:443"], secret_key="k")
    hook = client.event_hooks["request"][0]
    with neatlogs_web.session("s"):
        for url, expected in [
            ("http://a.svc.internal/x", True),
            ("http://svc.internal/x", False),
            ("http://evilsvc.internal/x", False),
            ("http://tools:8080/x", True),
            ("http://tools.evil/x", False),
            ("https://api/x", True),
            ("http://api/x", False),
        ]:
            request = client.build_request("GET", url)
            hook(request)
            assert (HEADER in request.headers) is expected, url
    client.close()


def test_a_downstream_with_the_key_in_its_rotation_list_binds_the_session() -> None:
    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"session_id": neatlogs_web.current_session_id()})

    downstream = Starlette(routes=[Route("/", whoami)])
    downstream.add_middleware(NeatlogsSessionMiddleware, secret_key=["new-key", SHARED_KEY])
    with run_uvicorn(downstream) as base:
        client = propagate(httpx.Client(timeout=10), [host_port(base)], secret_key=SHARED_KEY)
        with client, neatlogs_web.session("rotated"):
            assert client.get(base).json()["session_id"] == "rotated"
        # A token from a key the downstream does not know is skipped.
        forged = make_token("forged", "unknown-key")
        seen = httpx.get(base, headers={HEADER: forged}).json()["session_id"]
        assert seen != "forged"


def test_allowed_hosts_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="allowed_hosts"):
        propagate(httpx.Client(), "tools.internal")
    with pytest.raises(ValueError, match="allowed_hosts"):
        propagate(httpx.Client(), [])


# -- redirects: every hop is checked against the allowed hosts ----------------------


@dataclass
class RecordingServer:
    """Records the headers of every request; answers ``?status=&to=`` with that
    redirect, anything else by echoing the headers."""

    url: str = ""
    received: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def record(request: Request) -> Response:
            self.received.append(dict(request.headers))
            if "to" in request.query_params:
                status = int(request.query_params["status"])
                return Response(
                    status_code=status, headers={"location": request.query_params["to"]}
                )
            return JSONResponse(dict(request.headers))

        return Starlette(routes=[Route("/", record, methods=["GET", "POST"])])

    def redirect(self, status: int, to: str) -> str:
        """A URL of this server that redirects to ``to`` with ``status``."""
        return str(httpx.URL(f"{self.url}/", params={"status": status, "to": to}))


@pytest.fixture(scope="module")
def recording_servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    """Two recording servers on 127.0.0.1: the first allowed, the second (another
    port: another host to the allow-list) not."""
    allowed, other = RecordingServer(), RecordingServer()
    with run_uvicorn(allowed.app()) as allowed.url, run_uvicorn(other.app()) as other.url:
        yield allowed, other


@pytest.fixture
def hop_servers(
    recording_servers: tuple[RecordingServer, RecordingServer],
) -> tuple[RecordingServer, RecordingServer]:
    """The recording servers, with nothing recorded yet."""
    for server in recording_servers:
        server.received.clear()
    return recording_servers


def send_following_redirects(
    client_kind: str, url: str, allowed: RecordingServer, method: str = "GET"
) -> httpx.Response:
    """``url`` requested with the user's own baggage, in session ``conv/1`` and a
    trace, by a propagating client of ``client_kind`` that follows redirects."""
    hosts = [host_port(allowed.url)]
    own_headers = {"baggage": "tenant=a"}
    body = b"body" if method == "POST" else None
    if client_kind == "sync":
        client = propagate(
            httpx.Client(timeout=10, follow_redirects=True), hosts, SHARED_KEY, baggage=True
        )
        with client, neatlogs_web.session("conv/1"), neatlogs_web.trace("turn"):
            return client.request(method, url, headers=own_headers, content=body)

    async def send() -> httpx.Response:
        async_client = httpx.AsyncClient(timeout=10, follow_redirects=True)
        async with propagate(async_client, hosts, SHARED_KEY, baggage=True) as client:
            with neatlogs_web.session("conv/1"), neatlogs_web.trace("turn"):
                return await client.request(method, url, headers=own_headers, content=body)

    return asyncio.run(send())


def assert_nothing_propagated(received: dict[str, str]) -> None:
    assert HEADER not in received
    assert "traceparent" not in received
    assert received["baggage"] == "tenant=a"


def assert_session_propagated(received: dict[str, str], receiver: OTLPReceiver) -> None:
    """The hop got the session, baggage and the trace of the turn ``receiver`` got."""
    assert session_of(received[HEADER]) == "conv/1"
    assert received["baggage"] == "tenant=a,session.id=conv%2F1"
    (turn,) = spans_after_flush(receiver, 1)
    assert (turn.name, turn.attributes["session.id"]) == ("turn", "conv/1")
    assert received["traceparent"].split("-")[1] == turn.trace_id


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("status", "method"), [(301, "GET"), (302, "GET"), (303, "POST"), (307, "POST"), (308, "GET")]
)
def test_a_redirect_to_a_host_that_is_not_allowed_arrives_without_the_session(
    tracing: OTLPReceiver,
    hop_servers: tuple[RecordingServer, RecordingServer],
    client_kind: str,
    status: int,
    method: str,
) -> None:
    allowed, other = hop_servers
    start = allowed.redirect(status, f"{other.url}/")
    response = send_following_redirects(client_kind, start, allowed, method)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [status]
    [first] = allowed.received
    assert_session_propagated(first, tracing)
    [redirected] = other.received
    assert_nothing_propagated(redirected)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_a_redirect_chain_back_to_an_allowed_host_gets_the_session_there_only(
    tracing: OTLPReceiver,
    hop_servers: tuple[RecordingServer, RecordingServer],
    client_kind: str,
) -> None:
    allowed, other = hop_servers
    back = other.redirect(307, f"{allowed.url}/")
    response = send_following_redirects(client_kind, allowed.redirect(302, back), allowed)
    assert [r.status_code for r in response.history] == [302, 307]
    first, last = allowed.received
    [middle] = other.received
    assert_session_propagated(first, tracing)
    assert_nothing_propagated(middle)
    # The hop back gets the headers once, as the first hop did: not appended twice.
    assert_session_propagated(last, tracing)
    assert response.json() == last


def test_a_redirect_followed_by_hand_arrives_without_the_session(
    hop_servers: tuple[RecordingServer, RecordingServer],
) -> None:
    allowed, other = hop_servers
    client = propagate(httpx.Client(timeout=10), [host_port(allowed.url)], SHARED_KEY)
    with client, neatlogs_web.session("conv/1"):
        response = client.get(allowed.redirect(302, f"{other.url}/"))
        assert response.next_request is not None
        client.send(response.next_request)
    assert session_of(allowed.received[0][HEADER]) == "conv/1"
    [redirected] = other.received
    assert HEADER not in redirected
