"""``neatlogs-web demo``: the local collector, the example chat app, simulated users.

Everything runs on 127.0.0.1: the collector and the FastAPI example start as
subprocesses (exactly as a user would start them), then simulated users chat
concurrently, each session found a different way (cookie, signed header,
conversation id in the path), and the per-session summary is read back from
the collector's JSON API. About one answer in three gets a thumbs up or down
(now and then with a comment), sent as a page would: the feedback token the
answer named its turn with (its ``feedback`` event) to the app's
``POST /neatlogs/feedback``, in the same session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .collector.ports import check_port_free

SESSION_HEADER = "X-Neatlogs-Session-Id"
FEEDBACK_EVENT = "event: feedback"
FEEDBACK_PATH = "/neatlogs/feedback"
MODES = ("cookie", "header", "conversation")
#: What a person says with a thumbs down, and with a thumbs up.
_COMMENTS = (("too vague", "that is not what I asked"), ("spot on", "thanks, that helped"))
_MESSAGES = (
    "what is a session",
    "summarise my last order",
    "find flights to Lisbon",
    "explain contextvars",
    "draft a reply to Sam",
    "how many tokens was that",
)


@dataclass
class SimulatedUser:
    """One user of the chat app, and what it learned of its session."""

    index: int
    mode: str
    session_id: str | None = None
    turns: int = 0
    failures: int = 0
    #: Votes the app recorded: thumbs up, thumbs down, and how many had a comment.
    up: int = 0
    down: int = 0
    comments: int = 0
    token: str | None = None
    conversation_id: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"user-{self.index:02d}"


def example_app_dir() -> Path:
    """Where the FastAPI example lives: in the wheel, or in a source checkout."""
    packaged = Path(__file__).parent / "_examples" / "fastapi"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "examples" / "fastapi"


def _count(number: int, noun: str) -> str:
    """``"1 turn"``, ``"5 turns"``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_on_sigterm() -> None:
    """SIGTERM (a process manager, ``kill``) stops the demo like Ctrl-C does:
    through the ``finally`` blocks that stop the collector and the app."""

    def exit_cleanly(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_cleanly)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with code {process.returncode} before it was up")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout_s:.0f}s")


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], health_url: str) -> Iterator[None]:
    process = subprocess.Popen(argv, env={**os.environ, **env})
    try:
        _wait_until_up(health_url, process)
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _session_headers(user: SimulatedUser) -> dict[str, str]:
    """The signed session header, for a user who keeps its session that way."""
    return {SESSION_HEADER: user.token} if user.mode == "header" and user.token else {}


async def _chat(http: httpx.AsyncClient, user: SimulatedUser, message: str) -> str | None:
    """One turn; the feedback token that names it, if the answer sent one."""
    path = f"/chat/{user.conversation_id}" if user.mode == "conversation" else "/chat"
    feedback_token = None
    async with http.stream(
        "POST", path, json={"message": message}, headers=_session_headers(user)
    ) as response:
        response.raise_for_status()
        # The answer names its turn in an event of its own: its data is the token.
        previous = ""
        async for line in response.aiter_lines():
            if previous == FEEDBACK_EVENT and line.startswith("data: "):
                feedback_token = line.removeprefix("data: ")
            previous = line
    token = response.headers.get(SESSION_HEADER)
    if token:
        user.token = token
        user.session_id = token.rsplit(".", 2)[0]
    if user.mode == "header":
        # A frontend that keeps only the header token: drop the cookie.
        http.cookies.clear()
    if user.mode == "conversation":
        user.session_id = user.conversation_id
    return feedback_token


async def _judge(
    http: httpx.AsyncClient, user: SimulatedUser, feedback_token: str, rng: random.Random
) -> None:
    """Thumbs up (two times in three) or down on a turn, now and then with a comment,
    from the turn's session: its cookie, its header, or its conversation id."""
    judgment: dict[str, str | int] = {"token": feedback_token, "score": int(rng.random() < 2 / 3)}
    if rng.random() < 0.3:
        judgment["comment"] = rng.choice(_COMMENTS[int(judgment["score"])])
    params = {"conversation_id": user.conversation_id} if user.mode == "conversation" else {}
    response = await http.post(
        FEEDBACK_PATH, json=judgment, params=params, headers=_session_headers(user)
    )
    response.raise_for_status()
    if judgment["score"]:
        user.up += 1
    else:
        user.down += 1
    user.comments += "comment" in judgment


async def _run_user(base: str, user: SimulatedUser, deadline: float, turns: int) -> None:
    rng = random.Random(user.index)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while user.turns < turns and time.monotonic() < deadline:
            message = f"{rng.choice(_MESSAGES)} ({user.name} turn {user.turns + 1})"
            try:
                feedback_token = await _chat(http, user, message)
                user.turns += 1
                if feedback_token is not None and rng.random() < 1 / 3:
                    await _judge(http, user, feedback_token, rng)
            except httpx.HTTPError as exc:
                user.failures += 1
                user.errors.append(type(exc).__name__)
            await asyncio.sleep(rng.uniform(0.05, 0.4))


async def simulate_users(
    base: str, users: int, turns: int, duration_s: float
) -> list[SimulatedUser]:
    """Drive ``users`` concurrent users for ``turns`` turns or ``duration_s``."""
    simulated = [SimulatedUser(index, MODES[index % len(MODES)]) for index in range(users)]
    for user in simulated:
        if user.mode == "conversation":
            user.conversation_id = f"demo-conversation-{user.index:02d}"
    deadline = time.monotonic() + duration_s
    await asyncio.gather(*(_run_user(base, user, deadline, turns) for user in simulated))
    return simulated


def _print_summary(users: list[SimulatedUser], sessions: dict[str, dict[str, Any]]) -> None:
    print()
    # "sent": turns the user sent, "votes": its thumbs up and down; the other
    # columns: what the collector stored.
    print(
        f"{'user':<9} {'found by':<13} {'session':<26} "
        f"{'sent':>5} {'turns':>5} {'traces':>6} {'spans':>6} {'votes':>7}"
    )
    for user in users:
        stored = sessions.get(user.session_id or "", {})
        print(
            f"{user.name:<9} {user.mode:<13} {(user.session_id or '-')[:26]:<26} "
            f"{user.turns:>5} {stored.get('turn_count', 0):>5} "
            f"{stored.get('trace_count', 0):>6} {stored.get('span_count', 0):>6} "
            f"{f'+{user.up} -{user.down}':>7}"
        )
    failures = sum(user.failures for user in users)
    print(f"\n{len(users)} users, {sum(u.turns for u in users)} turns, {failures} failed requests")
    up, down = sum(u.up for u in users), sum(u.down for u in users)
    print(
        f"{up + down} answers judged through {FEEDBACK_PATH}: {up} thumbs up, {down} down, "
        f"{sum(u.comments for u in users)} with a comment (each in its turn, on the page)"
    )


def run_demo(
    *,
    users: int = 20,
    turns: int = 5,
    duration_s: float = 60.0,
    collector_port: int = 4318,
    wait: bool = True,
) -> int:
    """Start everything, simulate users, print where to look; 0 when all went well."""
    collector = f"http://127.0.0.1:{collector_port}"
    app_port = _free_port()
    base = f"http://127.0.0.1:{app_port}"
    python = sys.executable
    collector_argv = [
        python,
        "-m",
        "neatlogs_web",
        "serve",
        "--port",
        str(collector_port),
        "--db",
        ":memory:",
    ]
    app_argv = [
        python,
        "-m",
        "uvicorn",
        "app:app",
        "--app-dir",
        str(example_app_dir()),
        "--host",
        "127.0.0.1",
        "--port",
        str(app_port),
        "--log-level",
        "warning",
    ]
    app_env = {"NEATLOGS_ENDPOINT": collector, "NEATLOGS_SECRET_KEY": "demo-only-secret"}
    check_port_free(
        "127.0.0.1", collector_port, "neatlogs-web demo --port {port} (make demo PORT={port})"
    )
    _stop_on_sigterm()
    print(f"collector  {collector}   (session timeline page)")
    with _process(collector_argv, {}, collector + "/api/sessions"):
        with _process(app_argv, app_env, base + "/healthz"):
            print(
                f"chat app   {base}   ({_count(users, 'simulated user')},"
                f" {_count(turns, 'turn')} each;"
                " it stops once they are done; Ctrl-C stops the demo)"
            )
            try:
                simulated = asyncio.run(simulate_users(base, users, turns, duration_s))
            except KeyboardInterrupt:
                print("\ninterrupted: stopping the users")
                return 130
        # The app has stopped; its lifespan shutdown flushed every span.
        listing = httpx.get(collector + "/api/sessions", params={"limit": 500}).json()
        sessions = {entry["session_id"]: entry for entry in listing["sessions"]}
        _print_summary(simulated, sessions)
        if wait:
            print(f"\nOpen {collector}/ to see each session as a timeline, feedback on its turns.")
            print("The chat app has stopped; the collector keeps running until you press Ctrl-C.")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        else:
            print(
                "\nThe collector stopped with the demo (--no-wait). To browse sessions, run "
                "`neatlogs-web serve` and point your app's NEATLOGS_ENDPOINT at it."
            )
    ok = all(user.failures == 0 and user.session_id in sessions for user in simulated)
    return 0 if ok else 1
