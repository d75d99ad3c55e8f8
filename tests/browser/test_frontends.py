"""The README's frontend section, run as pasted, in Chromium across origins.

The README's FastAPI and Flask APIs are written to files and started as users
start them (uvicorn, waitress), exporting to a real local collector. A
single-page app on another port of 127.0.0.1 imports the shipped helper from
the API and runs the README's page module; the API is reached on
127.0.0.1 (another port: same site) and as ``api.example.test`` (another
site, mapped to 127.0.0.1 by Chromium's host resolver). Two tabs of one
browser profile send three messages each; sessions and turns are counted in
the collector, where a session beyond the expected ones (a preflight, the
helper's own download) fails the count. Only the origins and the two option
values the README names as the alternatives are substituted.

The helper's allow-list is tested against an app and a "third party" on two
more ports: the third party answers any origin (CORS), records what it is
sent and answers with a token of its own; it must never receive the page's
token, on a request of its own or at the end of the app's redirect, and the
token it answers with must never be kept.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.frontend import script_endpoint
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.collector.live import LiveCollector
from tests.readme import readme_frontend_snippets
from tests.servers import run_example, run_uvicorn
from tests.tokens import make_token, session_of

SECRET = "frontend-test-key"
CROSS_SITE_HOST = "api.example.test"
STORAGE_KEY = "neatlogs-session"  # the helper's default
README_PAGE_ORIGIN = "http://localhost:5173"
README_API_ORIGIN = "http://localhost:8000"
TABS = 2
MESSAGES = 3
PAGE_HTML = (
    '<!doctype html><meta charset="utf-8"><title>chat</title>\n'
    '<script type="module">import { send } from "./chat.js"; window.send = send;</script>\n'
)


def replace(text: str, old: str, new: str, count: int = 1) -> str:
    """``text`` with ``old`` replaced; fails when the README no longer says ``old``."""
    assert text.count(old) == count, f"expected {count} x {old!r} in the README snippet"
    return text.replace(old, new)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class StaticSite:
    """The single-page app's origin: files under ``root``, served on another port."""

    root: Path
    origin: str

    def add_page(self, name: str, module: str) -> str:
        folder = self.root / name
        folder.mkdir()
        (folder / "chat.js").write_text(module)
        (folder / "index.html").write_text(PAGE_HTML)
        return f"{self.origin}/{name}/"


@dataclass
class Api:
    port: int

    def base(self, site: str) -> str:
        host = "127.0.0.1" if site == "same-site" else CROSS_SITE_HOST
        return f"http://{host}:{self.port}"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Chromium that resolves the cross-site host name to 127.0.0.1."""
    rules = f"--host-resolver-rules=MAP {CROSS_SITE_HOST} 127.0.0.1"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    root = tmp_path_factory.mktemp("spa")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield StaticSite(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCollector]:
    with LiveCollector(tmp_path_factory.mktemp("collector") / "spans.db") as live:
        yield live


def _serve(
    source: str, command: list[str], site: StaticSite, collector: LiveCollector, folder: Path
) -> Iterator[Api]:
    (folder / "app.py").write_text(replace(source, README_PAGE_ORIGIN, site.origin))
    env = {
        "NEATLOGS_ENDPOINT": collector.url,
        "NEATLOGS_SECRET_KEY": SECRET,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "PYTHONPATH": str(folder),
    }
    with run_example(command, env, health_path="/neatlogs-session.js") as base:
        yield Api(int(base.rsplit(":", 1)[1]))


UVICORN = ["uvicorn", "app:app", "--port", "{port}", "--no-access-log"]
WAITRESS = ["waitress", "--listen=127.0.0.1:{port}", "--threads=8", "app:app"]


@pytest.fixture(scope="module")
def fastapi_api(
    site: StaticSite, collector: LiveCollector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    source = readme_frontend_snippets()["fastapi"]
    yield from _serve(source, UVICORN, site, collector, tmp_path_factory.mktemp("fastapi"))


@pytest.fixture(scope="module")
def flask_api(
    site: StaticSite, collector: LiveCollector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    source = readme_frontend_snippets()["flask"]
    yield from _serve(source, WAITRESS, site, collector, tmp_path_factory.mktemp("flask"))


@pytest.fixture(scope="module")
def cookie_api(
    site: StaticSite, collector: LiveCollector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """The README's FastAPI app with ``sources`` left at its default (the cookie among them)."""
    source = readme_frontend_snippets()["fastapi"]
    line = next(line for line in source.splitlines(True) if "sources=" in line)
    source = replace(source, line, "")
    yield from _serve(source, UVICORN, site, collector, tmp_path_factory.mktemp("cookie"))


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Api:
    return request.getfixturevalue(f"{request.param}_api")  # type: ignore[no-any-return]


def page_module(api_base: str, storage: str, credentials: str) -> str:
    """The README's page module, for this API origin and these two options."""
    module = replace(readme_frontend_snippets()["page"], README_API_ORIGIN, api_base, count=2)
    module = replace(module, 'storage: "tab",', f'storage: "{storage}",')
    return replace(module, 'credentials: "include",', f'credentials: "{credentials}",')


def cookie_page_module(api_base: str) -> str:
    """A page that keeps no token: the browser's cookie is the session."""
    return f"""
export async function send(message) {{
  const response = await fetch("{api_base}/chat", {{
    method: "POST",
    credentials: "include",
    headers: {{ "Content-Type": "application/json" }},
    body: JSON.stringify({{ message }}),
  }});
  return (await response.json()).reply;
}}
"""


# -- counting in the collector ------------------------------------------------------


def session_traces(collector: LiveCollector) -> dict[str, int]:
    answer = collector.get("/api/sessions", limit="500").json()
    return {row["session_id"]: row["trace_count"] for row in answer["sessions"]}


def turns_in(collector: LiveCollector, session_id: str) -> int:
    traces = collector.get(f"/api/sessions/{session_id}", limit="500").json()["traces"]
    return sum(bool(trace["turn"]) for trace in traces)


def new_sessions(
    collector: LiveCollector, before: dict[str, int], turns: int, timeout_s: float = 15.0
) -> dict[str, int]:
    """Turns per session that appeared since ``before``, once ``turns`` turns arrived and
    nothing more came in; a session from before that changed fails the test."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, int] | None = None
    while time.monotonic() < deadline:
        now = session_traces(collector)
        changed = {sid: n for sid, n in now.items() if before.get(sid) != n}
        assert not changed.keys() & before.keys(), "an earlier scenario's session changed"
        if changed == last and sum(turns_in(collector, sid) for sid in changed) >= turns:
            return {sid: turns_in(collector, sid) for sid in changed}
        last = changed
        time.sleep(0.15)
    return {sid: turns_in(collector, sid) for sid in last or {}}


# -- driving the tabs -----------------------------------------------------------------


def open_tabs(context: BrowserContext, url: str) -> list[Any]:
    tabs = [context.new_page() for _ in range(TABS)]
    for tab in tabs:
        tab.goto(url)
        tab.wait_for_function("typeof window.send === 'function'")
    return tabs


def chat(tabs: list[Any], first: int, count: int, *, shared_storage: bool = False) -> None:
    """Each tab sends ``count`` messages, the tabs taking turns.

    With ``shared_storage`` (the token in ``localStorage``), a tab's next message
    waits until every tab sees the token it holds: Chromium hands one tab's
    ``localStorage`` writes to the other tabs' processes a few milliseconds later,
    and a person does not type into the next tab faster than that (two first
    messages at the same moment get a session each, as the README says).
    """
    for number in range(first, first + count):
        for index, tab in enumerate(tabs):
            message = f"tab{index} message{number}"
            assert tab.evaluate("m => window.send(m)", message) == f"You said: {message}"
            if shared_storage:
                token = stored_token(tab)
                for other in tabs:
                    other.wait_for_function(
                        "([k, v]) => localStorage.getItem(k) === v", arg=[STORAGE_KEY, token]
                    )


def stored_token(tab: Any) -> str | None:
    token = tab.evaluate("k => sessionStorage.getItem(k) ?? localStorage.getItem(k)", STORAGE_KEY)
    return None if token is None else str(token)


SETUPS = {
    # setup: (storage, expected turns per session, as a sorted list)
    "per-tab": ("tab", [MESSAGES] * TABS),
    "per-browser": ("browser", [MESSAGES * TABS]),
}


@pytest.mark.parametrize("credentials", ["include", "omit"])
@pytest.mark.parametrize("where", ["same-site", "cross-site"])
@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("api", ["fastapi", "flask"], indirect=True)
def test_readme_setups_count_sessions_and_turns_in_the_collector(
    api: Api,
    setup: str,
    where: str,
    credentials: str,
    chromium: Browser,
    site: StaticSite,
    collector: LiveCollector,
    request: pytest.FixtureRequest,
) -> None:
    storage, expected = SETUPS[setup]
    name = re.sub(r"\W+", "-", request.node.name)
    url = site.add_page(name, page_module(api.base(where), storage, credentials))
    before = session_traces(collector)
    context = chromium.new_context()
    try:
        tabs = open_tabs(context, url)
        chat(tabs, 0, MESSAGES, shared_storage=storage == "browser")
        shown = {session_of(token) for tab in tabs if (token := stored_token(tab))}
        cookies = context.cookies()
    finally:
        context.close()
    found = new_sessions(collector, before, MESSAGES * TABS)
    assert sorted(found.values()) == expected, found
    # What the tabs hold is where their turns went; header-only sets no cookie.
    assert shown == found.keys()
    assert cookies == []


@pytest.mark.parametrize("api", ["fastapi", "flask"], indirect=True)
def test_a_tab_whose_token_went_bad_gets_a_fresh_one_and_keeps_it(
    api: Api, chromium: Browser, site: StaticSite, collector: LiveCollector
) -> None:
    url = site.add_page(
        f"bad-token-{api.port}", page_module(api.base("cross-site"), "tab", "include")
    )
    before = session_traces(collector)
    context = chromium.new_context()
    try:
        tabs = open_tabs(context, url)
        chat(tabs, 0, 1)
        first = [stored_token(tab) for tab in tabs]
        assert None not in first
        tampered = str(first[0])[:-2] + ("AA" if not str(first[0]).endswith("AA") else "BB")
        expired = make_token(session_of(str(first[1])), SECRET, age_s=15 * 24 * 3600)
        for tab, bad in zip(tabs, [tampered, expired], strict=True):
            tab.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [STORAGE_KEY, bad])
        chat(tabs, 1, 2)
        fresh = [stored_token(tab) for tab in tabs]
    finally:
        context.close()
    found = new_sessions(collector, before, TABS * 3)
    replaced = {session_of(str(token)) for token in fresh}
    assert replaced.isdisjoint(session_of(str(token)) for token in first)
    # Each tab's first turn in its first session, the next two in the fresh one.
    assert found == {**{session_of(str(t)): 1 for t in first}, **dict.fromkeys(replaced, 2)}


COOKIE_CASES = {
    # The cookie shares one session between the tabs on the same site...
    "cookie-same-site": ("same-site", None, [MESSAGES * TABS]),
    # ...but another site never gets the SameSite=Lax cookie: every request is new.
    "cookie-cross-site": ("cross-site", None, [1] * (MESSAGES * TABS)),
    # Why per-tab needs header-only sources: with the cookie among them, a tab that
    # sends credentials joins the tab that was issued the cookie.
    "per-tab-helper-cookie-sources": ("same-site", "tab", [MESSAGES * TABS]),
}


@pytest.mark.parametrize("case", COOKIE_CASES)
def test_the_cookie_shares_one_session_per_browser_on_the_same_site_only(
    case: str, chromium: Browser, site: StaticSite, collector: LiveCollector, cookie_api: Api
) -> None:
    where, storage, expected = COOKIE_CASES[case]
    base = cookie_api.base(where)
    module = cookie_page_module(base) if storage is None else page_module(base, storage, "include")
    url = site.add_page(case, module)
    before = session_traces(collector)
    context = chromium.new_context()
    try:
        chat(open_tabs(context, url), 0, MESSAGES)
        cookies = [cookie["name"] for cookie in context.cookies()]
    finally:
        context.close()
    found = new_sessions(collector, before, MESSAGES * TABS)
    assert sorted(found.values()) == expected, found
    assert cookies == ([] if where == "cross-site" else ["neatlogs_session"])


def test_the_helper_is_served_as_a_module_and_starts_no_session(
    fastapi_api: Api, flask_api: Api, collector: LiveCollector
) -> None:
    import httpx

    from neatlogs_web.frontend import SCRIPT

    before = session_traces(collector)
    for api in (fastapi_api, flask_api):
        response = httpx.get(api.base("same-site") + "/neatlogs-session.js")
        assert response.headers["content-type"].startswith("text/javascript")
        assert response.text == SCRIPT.read_text()
        assert "set-cookie" not in response.headers
        assert "x-neatlogs-session-id" not in response.headers
    time.sleep(0.3)
    assert session_traces(collector) == before


# -- the token goes to allowed origins only, and only they may set it ---------------

SESSION_HEADER = "X-Neatlogs-Session-Id"
PLANTED = "planted"


def helper_page_module(helper_url: str, options: str) -> str:
    """A page module that sends through the helper; ``send`` answers what came back."""
    return f"""
import {{ createSessionFetch }} from "{helper_url}";

const sessionFetch = createSessionFetch({options});

export async function send([url, method]) {{
  try {{
    const response = await sessionFetch(url, {{ method }});
    return {{ status: response.status, body: await response.json() }};
  }} catch (error) {{
    return {{ error: error.name }};
  }}
}}
"""


@dataclass
class ThirdParty:
    """Another origin with permissive CORS (any origin, any header, credentials,
    the session header exposed) that records the headers it is sent (on /record
    and /chat) and answers with a validly signed token for a session of its
    choosing."""

    url: str = ""
    received: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def record(request: Request) -> JSONResponse:
            self.received.append(dict(request.headers))
            return JSONResponse({"ok": True}, headers={SESSION_HEADER: make_token(PLANTED, SECRET)})

        # /chat as well: a request meant for the app's /chat that lands here is recorded.
        paths = ["/record", "/chat"]
        app = Starlette(routes=[Route(path, record, methods=["GET", "POST"]) for path in paths])
        app.add_middleware(
            CORSMiddleware,
            allow_origin_regex=".*",
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[SESSION_HEADER],
        )
        return app


@dataclass
class TokenApp:
    """The API on an allowed origin: header sessions, CORS for the static site,
    the helper at ``/neatlogs-session.js``, a page of its own at ``/page/`` that
    uses the helper's defaults, and ``/moved``, a redirect to the third party."""

    third_party: ThirdParty
    url: str = ""

    def chat(self) -> str:
        return f"{self.url}/chat"

    def app(self, page_origin: str) -> Starlette:
        async def chat(request: Request) -> JSONResponse:
            return JSONResponse({"session_id": neatlogs_web.current_session_id()})

        async def moved(request: Request) -> Response:
            return RedirectResponse(f"{self.third_party.url}/record", status_code=307)

        async def page(request: Request) -> HTMLResponse:
            return HTMLResponse(PAGE_HTML)

        async def page_module(request: Request) -> Response:
            module = helper_page_module("/neatlogs-session.js", "")
            return Response(module, media_type="text/javascript")

        app = Starlette(
            routes=[
                Route("/chat", chat, methods=["POST"]),
                Route("/moved", moved, methods=["POST"]),
                Route("/page/", page),
                Route("/page/chat.js", page_module),
                Route("/neatlogs-session.js", script_endpoint),
            ]
        )
        app.add_middleware(
            NeatlogsSessionMiddleware,
            secret_key=SECRET,
            sources=("conversation", "header"),
            exclude_paths=["/neatlogs-session.js", "/page/*"],
        )
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[page_origin],
            allow_methods=["POST"],
            allow_headers=[SESSION_HEADER],
            expose_headers=[SESSION_HEADER],
        )
        return app


@pytest.fixture
def token_app(site: StaticSite) -> Iterator[TokenApp]:
    third_party = ThirdParty()
    token_app = TokenApp(third_party)
    with (
        run_uvicorn(third_party.app()) as third_party.url,
        run_uvicorn(token_app.app(site.origin)) as token_app.url,
    ):
        yield token_app


def site_page(site: StaticSite, app: TokenApp, name: str) -> str:
    """A page on the static site whose helper allows the app's origin."""
    options = f'{{ storage: "tab", allowedOrigins: ["{app.url}"] }}'
    return site.add_page(name, helper_page_module(f"{app.url}/neatlogs-session.js", options))


def send(tab: Any, url: str, method: str = "POST") -> dict[str, Any]:
    answer = tab.evaluate("args => window.send(args)", [url, method])
    assert isinstance(answer, dict)
    return answer


def open_page(chromium: Browser, url: str) -> tuple[BrowserContext, Any]:
    context = chromium.new_context()
    tab = context.new_page()
    tab.goto(url)
    tab.wait_for_function("typeof window.send === 'function'")
    return context, tab


def assert_third_party_got_no_token(third_party: ThirdParty, requests: int) -> None:
    for headers in third_party.received:
        assert SESSION_HEADER.lower() not in headers
    assert len(third_party.received) == requests


@pytest.mark.parametrize("page", ["site", "app"])
def test_the_helper_sends_the_token_to_allowed_origins_only_and_keeps_only_theirs(
    page: str, chromium: Browser, site: StaticSite, token_app: TokenApp
) -> None:
    """On the site, the page allows the app's origin; on the app, the default
    (the page's own origin) does."""
    url = site_page(site, token_app, page) if page == "site" else f"{token_app.url}/page/"
    third_party = f"{token_app.third_party.url}/record"
    context, tab = open_page(chromium, url)
    try:
        # The third party answers first: its token is not kept.
        assert send(tab, third_party)["status"] == 200
        assert stored_token(tab) is None
        first = send(tab, token_app.chat())["body"]["session_id"]
        assert first not in (None, PLANTED)
        token = stored_token(tab)
        assert token is not None and session_of(token) == first
        # With a token held: the third party is not sent it, and its answer changes nothing.
        assert send(tab, third_party)["status"] == 200
        assert stored_token(tab) == token
        assert send(tab, token_app.chat())["body"]["session_id"] == first
    finally:
        context.close()
    assert_third_party_got_no_token(token_app.third_party, requests=2)


def test_a_request_carrying_the_token_follows_no_redirect(
    chromium: Browser, site: StaticSite, token_app: TokenApp
) -> None:
    context, tab = open_page(chromium, site_page(site, token_app, "redirect"))
    try:
        first = send(tab, token_app.chat())["body"]["session_id"]
        token = stored_token(tab)
        # The app redirects to the third party: fetch would copy the token there.
        moved = send(tab, f"{token_app.url}/moved")
        assert_third_party_got_no_token(token_app.third_party, requests=0)
        assert moved == {"error": "TypeError"}
        assert stored_token(tab) == token
        assert send(tab, token_app.chat())["body"]["session_id"] == first
    finally:
        context.close()


# Inputs to the helper, each a JS function of one URL (ending in "/") that
# returns what the page passes to the helper. ``send_input`` sends it as a POST.
BASE_ELEMENT = """base => {
  const element = document.createElement("base");
  element.href = base;
  document.head.append(element);
  return "chat";
}"""
OTHER_REALM_REQUEST = """base => {
  const frame = document.createElement("iframe");
  document.body.append(frame);
  return new frame.contentWindow.Request(base + "chat", { method: "POST" });
}"""


def send_input(tab: Any, make_input: str, base: str) -> dict[str, Any]:
    answer = tab.evaluate(f"base => window.send([({make_input})(base), 'POST'])", base)
    assert isinstance(answer, dict)
    return answer


# Inputs whose destination a check could read otherwise than fetch does, on a
# page of the app (allowed by default); each names the third party as ``base``
# and goes, per fetch, to "third party" or "app".
MISLEADING_INPUTS = {
    # An injected <base>: fetch resolves "chat" against it, location.href still names the app.
    "relative-url-under-a-base-element": (BASE_ELEMENT, "third party"),
    # An iframe's Request is no instance of the page's Request class.
    "request-from-another-realm": (OTHER_REALM_REQUEST, "third party"),
    "request-subclass-naming-another-url": (
        """base => {
          class Disguised extends Request {
            get url() { return location.origin + "/chat"; }
          }
          return new Disguised(base + "chat", { method: "POST" });
        }""",
        "third party",
    ),
    # A URL that names the app when read once and the third party when read again.
    "url-object-read-twice": (
        """base => {
          const url = new URL("/chat", location.origin);
          let reads = 0;
          url.toString = () => (reads++ ? base + "chat" : url.href);
          return url;
        }""",
        "app",
    ),
}


@pytest.mark.parametrize("case", MISLEADING_INPUTS)
def test_the_token_goes_only_where_fetch_sends_the_request(
    case: str, chromium: Browser, token_app: TokenApp
) -> None:
    make_input, goes_to = MISLEADING_INPUTS[case]
    context, tab = open_page(chromium, f"{token_app.url}/page/")
    try:
        first = send(tab, token_app.chat())["body"]["session_id"]
        token = stored_token(tab)
        answer = send_input(tab, make_input, f"{token_app.third_party.url}/")
        assert stored_token(tab) == token
        assert send(tab, token_app.chat())["body"]["session_id"] == first
    finally:
        context.close()
    if goes_to == "third party":
        assert answer == {"status": 200, "body": {"ok": True}}
    else:
        assert answer == {"status": 200, "body": {"session_id": first}}
    assert_third_party_got_no_token(token_app.third_party, requests=int(goes_to == "third party"))


ALLOWED_INPUTS = {
    "url-object": "base => new URL(base + 'chat')",
    "request-from-another-realm": OTHER_REALM_REQUEST,
    "relative-url-under-a-base-element": BASE_ELEMENT,
}


@pytest.mark.parametrize("case", ALLOWED_INPUTS)
def test_the_token_goes_with_any_input_fetch_sends_to_an_allowed_origin(
    case: str, chromium: Browser, site: StaticSite, token_app: TokenApp
) -> None:
    """On the static site, whose own origin is not allowed, every input names the app."""
    context, tab = open_page(chromium, site_page(site, token_app, f"input-{case}"))
    try:
        first = send(tab, token_app.chat())["body"]["session_id"]
        answer = send_input(tab, ALLOWED_INPUTS[case], f"{token_app.url}/")
    finally:
        context.close()
    assert answer == {"status": 200, "body": {"session_id": first}}


@pytest.mark.parametrize(
    "allowed_origins",
    [
        "http://127.0.0.1:8000",  # one string, not a list
        ["127.0.0.1:8000"],  # no scheme
        ["http://127.0.0.1:8000/api"],  # a path: an origin has none
        [],
    ],
)
def test_an_allow_list_that_is_no_list_of_origins_stops_the_page_naming_the_option(
    allowed_origins: Any, chromium: Browser, token_app: TokenApp
) -> None:
    context, tab = open_page(chromium, f"{token_app.url}/page/")
    try:
        message = tab.evaluate(
            """async (allowedOrigins) => {
              const { createSessionFetch } = await import("/neatlogs-session.js");
              try {
                createSessionFetch({ allowedOrigins });
                return null;
              } catch (error) {
                return `${error.name}: ${error.message}`;
              }
            }""",
            allowed_origins,
        )
    finally:
        context.close()
    assert message is not None and message.startswith("TypeError: allowedOrigins"), message
