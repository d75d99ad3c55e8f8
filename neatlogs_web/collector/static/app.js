// The session timeline page: a sessions list, one session's conversation (a row per
// user turn with what the user said and what the app answered, on a time axis whose
// idle gaps are compressed), and one trace's span waterfall. Plain DOM, no build step,
// nothing fetched from elsewhere. This module fetches, routes and refreshes; the views
// and the axes are modules of their own beside it.

import { watchAxes } from "./axis.js";
import { $, h } from "./dom.js";
import { fmtClock } from "./format.js";
import { parseRoute, sessionHref } from "./routes.js";
import { listParams, renderChoices, renderFacets, renderList } from "./session_list.js";
import { renderSession } from "./session_view.js";
import { MAX_SESSIONS, PAGE_SIZE, POLL_MS, state } from "./state.js";
import { renderOrphans, renderTrace } from "./trace_view.js";

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

async function refreshList() {
  const [list, orphans, facets] = await Promise.all([
    getJSON(`api/sessions?${listParams()}`),
    getJSON("api/traces?session=none&limit=1"),
    getJSON("api/facets"),
  ]);
  renderFacets(facets);
  // The "since" parameter moves with the clock: compare answers, not requests.
  const key = JSON.stringify([list, orphans.traces.length, state.route, state.filters]);
  if (key === state.listKey) return;
  state.listKey = key;
  renderList(list, orphans.traces.length > 0);
}

async function refreshView() {
  const route = state.route;
  // A live refresh begun before "Show more turns" must not draw fewer pages
  // over the new ones: an answer for another page count is dropped.
  const pages = state.turnPages;
  let data;
  try {
    if (route.kind === "session") data = await getSession(route, pages);
    else if (route.kind === "trace") data = await getJSON(`api/traces/${encodeURIComponent(route.id)}`);
    else if (route.kind === "no-session") data = await getJSON("api/traces?session=none&limit=200");
    else data = null;
  } catch (error) {
    if (error.status === 300) data = { choices: error.body.sessions };
    else if (error.status === 404) data = { missing: error.message };
    else throw error;
  }
  if (route !== state.route || pages !== state.turnPages) return; // superseded while loading
  if (route.kind === "session" && route.workflow === null && data && !data.missing && !data.choices) {
    canonicalize(data);
    return;
  }
  const key = JSON.stringify([route, data]);
  if (key === state.viewKey) return;
  state.viewKey = key;
  const view = $("view");
  const scroll = view.scrollTop;
  if (data && data.missing) view.replaceChildren(renderMissing(route, data.missing));
  else if (data && data.choices) view.replaceChildren(renderChoices(route, data.choices));
  else if (route.kind === "session") view.replaceChildren(...renderSession(data, showMoreTurns));
  else if (route.kind === "trace") view.replaceChildren(...renderTrace(data, route.span));
  else if (route.kind === "no-session") view.replaceChildren(...renderOrphans(data));
  else view.replaceChildren(renderHome());
  view.scrollTop = scroll;
  watchAxes(view);
}

function showMoreTurns() {
  state.turnPages += 1;
  refreshView().catch(() => {});
}

// A link naming only a session id that found one session: the address becomes that
// session's own, so it is bookmarked and selected as any other.
function canonicalize(session) {
  history.replaceState(null, "", sessionHref(session.workflow, session.session_id));
  onRoute();
}

// A session with its first `pages` pages of turns; the API pages a long session's turns.
// Without a workflow (an old link) the API answers the one session of that id, or 300.
async function getSession(route, pages) {
  const params = new URLSearchParams();
  if (route.workflow !== null) params.set("workflow", route.workflow);
  const url = `api/sessions/${encodeURIComponent(route.id)}?${params}`;
  const session = await getJSON(url);
  for (let page = 1; page < pages && session.next; page++) {
    const more = await getJSON(`${url}&after=${encodeURIComponent(session.next)}`);
    session.traces = session.traces.concat(more.traces);
    session.next = more.next;
  }
  return session;
}

function renderHome() {
  const endpoint = `${location.origin}/v1/traces`;
  return h(
    "section",
    { class: "home" },
    h("h1", {}, "Sessions, one timeline each"),
    h("p", {}, "Pick a session on the left to see its turns on a shared time axis, then a turn to see its spans."),
    h("p", {}, "Send spans here over OTLP/HTTP (protobuf or JSON):"),
    h("pre", { class: "code" }, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=${endpoint}`),
    h("pre", { class: "code" }, `neatlogs_web.init(endpoint="${location.origin}")`),
    h(
      "p",
      { class: "muted" },
      "Spans are grouped by session.id, neatlogs.session.id or langfuse.session.id. A trace of the app's own work is a user turn; a framework's request trace is shown inside the turn that links to it.",
    ),
  );
}

function renderMissing(route, message) {
  return h(
    "section",
    { class: "home" },
    h("h1", {}, route.kind === "trace" ? "Trace not found" : "Session not found"),
    h("p", { class: "muted" }, message),
    h("p", {}, h("a", { href: "#/" }, "Back to all sessions")),
  );
}

async function refresh() {
  try {
    await Promise.all([refreshList(), refreshView()]);
    $("updated").textContent = `updated ${fmtClock(Date.now()).slice(0, 8)}`;
    $("updated").classList.remove("stale");
  } catch (error) {
    $("updated").textContent = `collector unreachable: ${error.message}`;
    $("updated").classList.add("stale");
  }
}

function onRoute() {
  state.route = parseRoute();
  state.turnPages = 1;
  state.viewKey = "";
  state.listKey = "";
  $("view").scrollTop = 0;
  refresh();
}

function schedule() {
  clearInterval(state.polling);
  state.polling = $("live").checked ? setInterval(refresh, POLL_MS) : null;
}

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function start() {
  $("endpoint").textContent = `OTLP: ${location.origin}/v1/traces`;
  $("search").addEventListener(
    "input",
    debounce((event) => {
      state.query = event.target.value.trim();
      state.limit = PAGE_SIZE;
      refreshList().catch(() => {});
    }, 250),
  );
  const filters = [
    ["f-user", "user", "value"],
    ["f-workflow", "workflow", "value"],
    ["f-time", "time", "value"],
    ["f-errors", "errors", "checked"],
    ["f-negative", "negative", "checked"],
    ["sort", "sort", "value"],
    ["f-requests", "requests", "checked"],
  ];
  for (const [id, name, property] of filters) {
    $(id).addEventListener("change", (event) => {
      state.filters[name] = event.target[property];
      state.limit = PAGE_SIZE;
      refreshList().catch(() => {});
    });
  }
  $("more").addEventListener("click", () => {
    state.limit = Math.min(state.limit + PAGE_SIZE, MAX_SESSIONS);
    refreshList().catch(() => {});
  });
  $("live").addEventListener("change", schedule);
  window.addEventListener("hashchange", onRoute);
  onRoute();
  schedule();
}

start();
