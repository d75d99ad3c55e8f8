// The session timeline page: a sessions list, one session's conversation (a row per
// user turn with what the user said and what the app answered, on a time axis whose
// idle gaps are compressed), and one trace's span waterfall. Plain DOM, no build step,
// nothing fetched from elsewhere. Every piece of data reaches the page through
// textContent or an attribute, never through HTML parsing, because span names and
// attributes come from any sender.

const POLL_MS = 3000;
const PAGE_SIZE = 50;
const MAX_SESSIONS = 500;

const state = {
  query: "",
  filters: { user: "", workflow: "", time: "", errors: false, requests: false },
  facetsKey: "",
  limit: PAGE_SIZE,
  listKey: "",
  viewKey: "",
  route: null,
  polling: null,
  turnPages: 1, // pages of the open session's turns shown; "Show more turns" adds one
};

// ---------------------------------------------------------------- DOM helpers

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function $(id) {
  return document.getElementById(id);
}

// ---------------------------------------------------------------- formatting

// RFC 3339 with microseconds -> milliseconds since the epoch, keeping the microseconds
// that Date.parse would drop (spans are often shorter than a millisecond).
function parseTime(text) {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(text || "");
  if (!match) return Date.parse(text);
  const fraction = match[2] ? Number("0." + match[2]) * 1000 : 0;
  return Date.parse(match[1] + "Z") + fraction;
}

function fmtDuration(ms) {
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

function fmtOffset(ms) {
  return ms > 0 ? `+${fmtDuration(ms)}` : "+0";
}

function fmtAgo(ms) {
  const s = (Date.now() - ms) / 1000;
  if (s < 5) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

function fmtClock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function fmtCount(n) {
  return n >= 100000 ? `${Math.round(n / 1000)}k` : n.toLocaleString("en");
}

function fmtTokens(tokens) {
  if (!tokens || tokens.total === null) return null;
  return `${fmtCount(tokens.total)} tok`;
}

function plural(n, word) {
  return `${fmtCount(n)} ${word}${n === 1 ? "" : "s"}`;
}

// Long dotted keys (gen_ai.usage.input_tokens) may wrap after a dot, not mid-word.
function breakable(key) {
  return key.split(".").flatMap((part, i) => (i ? [".", h("wbr"), part] : [part]));
}

function fmtValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 1);
}

// ---------------------------------------------------------------- data

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function sessionHref(id) {
  return `#/sessions/${encodeURIComponent(id)}`;
}

function traceHref(id, spanId) {
  return `#/traces/${encodeURIComponent(id)}` + (spanId ? `/${encodeURIComponent(spanId)}` : "");
}

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const arg = (i) => (parts[i] ? decodeURIComponent(parts[i]) : null);
  try {
    if (parts[0] === "sessions" && parts[1]) return { kind: "session", id: arg(1) };
    if (parts[0] === "traces" && parts[1]) return { kind: "trace", id: arg(1), span: arg(2) };
    if (parts[0] === "no-session") return { kind: "no-session" };
  } catch (e) {
    // A hand-edited hash with a broken escape: show the home view.
  }
  return { kind: "home" };
}

// ---------------------------------------------------------------- sessions list

function listParams() {
  const params = new URLSearchParams({ limit: String(state.limit) });
  const f = state.filters;
  if (state.query) params.set("q", state.query);
  if (f.user) params.set("user", f.user);
  if (f.workflow) params.set("workflow", f.workflow);
  if (f.time) params.set("since", new Date(Date.now() - Number(f.time) * 1000).toISOString());
  if (f.errors) params.set("errors", "1");
  // Sessions holding only requests (a health check, a page load) are left out unless asked.
  if (!f.requests) params.set("turns", "1");
  return params;
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

function renderFacets(facets) {
  const key = JSON.stringify(facets);
  if (key === state.facetsKey) return;
  state.facetsKey = key;
  const fill = (select, values, all) => {
    const current = select.value;
    const options = [h("option", { value: "" }, all)];
    for (const value of values) options.push(h("option", { value }, value));
    if (current && !values.includes(current)) options.push(h("option", { value: current }, current));
    select.replaceChildren(...options);
    select.value = current;
  };
  fill($("f-user"), facets.users, "All users");
  fill($("f-workflow"), facets.workflows, "All workflows");
}

function sessionItem(s, selected) {
  const noTurns = s.turn_count === 0;
  const title = s.first_input
    ? h("span", { class: "session-title", title: s.first_input }, s.first_input)
    : h("span", { class: "session-title mono", title: s.session_id }, s.session_id);
  const stats = [
    s.end_user ? h("span", { class: "user", title: "end user" }, s.end_user) : null,
    h("span", { class: "turns" }, noTurns ? `no turns · ${plural(s.trace_count, "request")}` : plural(s.turn_count, "turn")),
    fmtTokens(s.tokens),
    s.error_count ? h("span", { class: "badge error" }, plural(s.error_count, "error")) : null,
  ].filter(Boolean);
  return h(
    "a",
    {
      class: "session-item" + (selected ? " selected" : "") + (noTurns ? " no-turns" : ""),
      href: sessionHref(s.session_id),
      "aria-current": selected ? "page" : null,
      "data-session-id": s.session_id,
    },
    h("div", { class: "session-line" }, title, h("span", { class: "ago", title: s.last_seen }, fmtAgo(parseTime(s.last_seen)))),
    h("div", { class: "session-stats" }, stats),
    s.first_input || s.workflow
      ? h("div", { class: "session-sub" }, [s.first_input ? s.session_id : null, s.workflow].filter(Boolean).join(" · "))
      : null,
  );
}

function renderList(list, hasOrphans) {
  const nav = $("sessions");
  const route = state.route || {};
  const items = list.sessions.map((s) => sessionItem(s, route.kind === "session" && route.id === s.session_id));
  const f = state.filters;
  const filtered = Boolean(state.query || f.user || f.workflow || f.time || f.errors);
  if (hasOrphans && !filtered) {
    const selected = route.kind === "no-session";
    items.unshift(
      h(
        "a",
        { class: "session-item orphans" + (selected ? " selected" : ""), href: "#/no-session" },
        h("div", { class: "session-line" }, h("span", { class: "session-title" }, "Traces without a session")),
        h("div", { class: "session-stats" }, "spans that carried no session id"),
      ),
    );
  }
  if (!items.length) {
    items.push(
      h("p", { class: "empty" }, state.query ? `No session matches “${state.query}”.` : filtered ? "No session matches these filters." : "No sessions yet."),
    );
  }
  nav.replaceChildren(...items);
  $("more").hidden = !list.next || state.limit >= MAX_SESSIONS;
  const hidden = list.without_turns || 0;
  $("requests-toggle").hidden = !state.filters.requests && hidden === 0;
  $("requests-label").textContent = state.filters.requests
    ? "Show sessions without turns"
    : `Show ${plural(hidden, "session")} without turns`;
}

// ---------------------------------------------------------------- views

async function refreshView() {
  const route = state.route;
  // A live refresh begun before "Show more turns" must not draw fewer pages
  // over the new ones: an answer for another page count is dropped.
  const pages = state.turnPages;
  let data;
  try {
    if (route.kind === "session") data = await getSession(route.id, pages);
    else if (route.kind === "trace") data = await getJSON(`api/traces/${encodeURIComponent(route.id)}`);
    else if (route.kind === "no-session") data = await getJSON("api/traces?session=none&limit=200");
    else data = null;
  } catch (error) {
    if (error.status !== 404) throw error;
    data = { missing: error.message };
  }
  if (route !== state.route || pages !== state.turnPages) return; // superseded while loading
  const key = JSON.stringify([route, data]);
  if (key === state.viewKey) return;
  state.viewKey = key;
  const view = $("view");
  const scroll = view.scrollTop;
  if (data && data.missing) view.replaceChildren(renderMissing(route, data.missing));
  else if (route.kind === "session") view.replaceChildren(...renderSession(data));
  else if (route.kind === "trace") view.replaceChildren(...renderTrace(data, route.span));
  else if (route.kind === "no-session") view.replaceChildren(...renderOrphans(data));
  else view.replaceChildren(renderHome());
  view.scrollTop = scroll;
}

// A session with its first `pages` pages of turns; the API pages a long session's turns.
async function getSession(id, pages) {
  const url = `api/sessions/${encodeURIComponent(id)}`;
  const session = await getJSON(url);
  for (let page = 1; page < pages && session.next; page++) {
    const more = await getJSON(`${url}?after=${encodeURIComponent(session.next)}`);
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

function statsLine(parts) {
  return h("div", { class: "stats" }, parts.filter(Boolean).map((p) => h("span", { class: "stat" }, p)));
}

// One line of conversation: who spoke, and what, clamped to a few lines.
function message(kind, text) {
  return h(
    "div",
    { class: `msg msg-${kind}` },
    h("span", { class: "msg-role" }, kind === "in" ? "input" : "output"),
    h("span", { class: "msg-text", title: text }, text),
  );
}

function requestLabel(trace) {
  return [trace.name, trace.http_status].filter((part) => part !== null && part !== undefined).join(" · ");
}

function renderSession(session) {
  const entries = session.traces;
  const start = parseTime(session.first_seen);
  const axis = compressedAxis(entries, start);
  const header = h(
    "header",
    { class: "view-header" },
    h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Sessions"), " › session"),
    h("h1", { class: "mono", title: session.session_id }, session.session_id),
    statsLine([
      session.end_user ? h("span", { class: "user", title: "end user" }, session.end_user) : null,
      session.workflow,
      h("span", { class: "turn-count" }, plural(session.turn_count, "turn")),
      session.trace_count !== session.turn_count ? plural(session.trace_count, "trace") : null,
      plural(session.span_count, "span"),
      session.error_count ? h("span", { class: "badge error" }, plural(session.error_count, "error")) : null,
      `${fmtDuration(session.duration_ms)} from ${fmtClock(start)}`,
      fmtTokens(session.tokens),
    ]),
  );
  const rows = [];
  let previousEnd = null;
  let turnNumber = 0;
  entries.forEach((t) => {
    const tStart = parseTime(t.start);
    const tEnd = entryEnd(t);
    const gap = previousEnd === null ? 0 : tStart - previousEnd;
    if (gap > 0 && axis.isGap(previousEnd, tStart)) {
      rows.push(h("div", { class: "gap-row" }, h("span", { class: "gap-label" }, `${fmtDuration(gap)} idle`)));
    }
    previousEnd = previousEnd === null ? tEnd : Math.max(previousEnd, tEnd);
    rows.push(t.turn ? turnRow(t, ++turnNumber, axis, start, session.end_user) : requestRow(t, axis, start));
  });
  const more = session.next
    ? h(
        "button",
        {
          type: "button",
          class: "more",
          id: "more-turns",
          onclick: () => {
            state.turnPages += 1;
            refreshView().catch(() => {});
          },
        },
        `Show more turns (${turnNumber} of ${session.turn_count} shown)`,
      )
    : null;
  return [header, axis.timeline(rows, "turns"), more].filter(Boolean);
}

// When an entry's work ends: its own trace, its request's and its background parts'.
function entryEnd(t) {
  let end = parseTime(t.end);
  if (t.request) end = Math.max(end, parseTime(t.request.end));
  for (const part of t.parts) end = Math.max(end, parseTime(part.end));
  return end;
}

function turnRow(t, number, axis, sessionStart, sessionUser) {
  const tStart = parseTime(t.start);
  const error = t.status === "ERROR" || (t.request && t.request.status === "ERROR");
  const meta = [
    fmtOffset(tStart - sessionStart),
    plural(t.span_count, "span"),
    fmtTokens(t.tokens),
    t.parts.length ? `+${plural(t.parts.length + t.parts_omitted, "background trace")}` : null,
  ].filter(Boolean);
  const bars = [axis.bar(tStart, parseTime(t.end), error, "turn-bar")];
  if (t.request) bars.unshift(axis.bar(parseTime(t.request.start), parseTime(t.request.end), false, "request-bar"));
  for (const part of t.parts) bars.push(axis.bar(parseTime(part.start), parseTime(part.end), part.status === "ERROR", "part-bar"));
  return h(
    "a",
    {
      class: "tl-row turn" + (error ? " is-error" : ""),
      href: traceHref(t.trace_id),
      "data-trace-id": t.trace_id,
      title: "Open this turn's spans",
    },
    h("span", { class: "tl-index" }, String(number)),
    h(
      "span",
      { class: "tl-conv" },
      h(
        "span",
        { class: "tl-head" },
        error ? h("span", { class: "error-mark", title: "error" }, "!") : null,
        h("span", { class: "tl-name", title: t.name || t.trace_id }, t.name || "(no root span yet)"),
        t.request ? h("span", { class: "chip request-chip", title: "the request that carried this turn" }, requestLabel(t.request)) : null,
        t.end_user && t.end_user !== sessionUser ? h("span", { class: "user" }, t.end_user) : null,
        h("span", { class: "tl-meta" }, meta.join(" · ")),
      ),
      t.input !== null ? message("in", t.input) : null,
      t.output !== null ? message("out", t.output) : null,
      t.input === null && t.output === null ? h("span", { class: "msg-none" }, "no input or output recorded") : null,
    ),
    h("span", { class: "tl-track" }, bars),
    h("span", { class: "tl-duration" }, fmtDuration(t.duration_ms), h("span", { class: "chevron" }, "›")),
  );
}

function requestRow(t, axis, sessionStart) {
  const tStart = parseTime(t.start);
  const error = t.status === "ERROR";
  return h(
    "a",
    { class: "tl-row request" + (error ? " is-error" : ""), href: traceHref(t.trace_id), "data-trace-id": t.trace_id },
    h("span", { class: "tl-index" }, "·"),
    h(
      "span",
      { class: "tl-conv" },
      h(
        "span",
        { class: "tl-head" },
        h("span", { class: "chip request-chip" }, "request"),
        h("span", { class: "tl-name", title: t.name || t.trace_id }, requestLabel(t)),
        h("span", { class: "tl-meta" }, `${fmtOffset(tStart - sessionStart)} · no turn`),
      ),
    ),
    h("span", { class: "tl-track" }, axis.bar(tStart, parseTime(t.end), error, "request-bar")),
    h("span", { class: "tl-duration" }, fmtDuration(t.duration_ms)),
  );
}

// A time axis over a session whose idle gaps are drawn narrow: busy stretches keep
// their length, a pause longer than a quarter of the busy time (and than a second)
// takes a fixed sliver and is labelled with how long it really was.
function compressedAxis(entries, sessionStart) {
  const spans = [];
  for (const t of entries) {
    spans.push([parseTime(t.start), entryEnd(t)]);
    if (t.request) spans.push([parseTime(t.request.start), parseTime(t.request.end)]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  const blocks = [];
  for (const [s, e] of spans) {
    const last = blocks[blocks.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else blocks.push([s, Math.max(e, s)]);
  }
  if (!blocks.length) blocks.push([sessionStart, sessionStart + 1]);
  const busy = blocks.reduce((sum, [s, e]) => sum + (e - s), 0) || 1;
  const threshold = Math.max(busy / 4, 1000);
  const gapWidth = Math.max(busy * 0.06, 1);
  // Segments in screen units: [realStart, realEnd, unitStart, unitEnd, isGap].
  const segments = [];
  let units = 0;
  blocks.forEach(([s, e], i) => {
    if (i > 0) {
      const prev = blocks[i - 1][1];
      const gap = s - prev;
      const width = gap > threshold ? gapWidth : gap;
      segments.push([prev, s, units, units + width, gap > threshold]);
      units += width;
    }
    segments.push([s, e, units, units + (e - s), false]);
    units += e - s;
  });
  const first = blocks[0][0];
  const total = Math.max(units, 0.001);
  const x = (t) => {
    if (t <= first) return 0;
    for (const [rs, re, us, ue] of segments) {
      if (t <= re) return re > rs ? us + ((t - rs) / (re - rs)) * (ue - us) : ue;
    }
    return total;
  };
  const pct = (t) => (x(t) / total) * 100;
  const bar = (s, e, error, variant) => {
    const left = Math.min(Math.max(pct(s), 0), 100);
    const width = Math.min(Math.max(pct(e) - left, 0.4), 100 - left);
    return h("span", { class: `bar ${variant}` + (error ? " error" : ""), style: { left: `${left}%`, width: `${width}%` } });
  };
  const isGap = (from, to) => segments.some(([rs, re, , , gap]) => gap && rs < to && re > from);
  const timeline = (rows, label) => {
    const marks = [];
    let lastLabelAt = -100;
    let afterGap = false;
    for (const [rs, re, us, ue, gap] of segments) {
      const left = (us / total) * 100;
      if (gap) {
        afterGap = true;
        lastLabelAt = left;
        marks.push(
          h(
            "span",
            { class: "axis-gap", style: { left: `${left}%`, width: `${((ue - us) / total) * 100}%` }, title: `${fmtDuration(re - rs)} idle, not to scale` },
            h("span", { class: "axis-gap-label" }, `${fmtDuration(re - rs)} idle`),
          ),
        );
      } else if (afterGap) {
        afterGap = false; // the gap's own label stands where this tick's would
      } else if (left - lastLabelAt > 12) {
        lastLabelAt = left;
        marks.push(h("span", { class: "tick", style: { left: `${left}%` } }, h("span", { class: "tick-label" }, rs === first ? "0" : fmtOffset(rs - first))));
      }
    }
    return h(
      "div",
      { class: "timeline", role: "list", "aria-label": label },
      h("div", { class: "axis" }, h("span", { class: "axis-spacer" }), h("span", { class: "axis-ticks" }, marks), h("span", { class: "axis-end" })),
      h("div", { class: "rows" }, rows),
    );
  };
  return { bar, isGap, timeline, compressed: segments.some((seg) => seg[4]) };
}

function renderOrphans(data) {
  const header = h(
    "header",
    { class: "view-header" },
    h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Sessions"), " › no session"),
    h("h1", {}, "Traces without a session"),
    h("p", { class: "muted" }, "Newest first. Their spans carried none of the session keys."),
  );
  const rows = data.traces.map((t) =>
    h(
      "a",
      { class: "orphan-row" + (t.status === "ERROR" ? " is-error" : ""), href: traceHref(t.trace_id) },
      h("span", { class: "mono" }, fmtClock(parseTime(t.start))),
      h("span", { class: "tl-name" }, t.name || "(no root span yet)"),
      h("span", { class: "muted" }, [t.workflow, plural(t.span_count, "span")].filter(Boolean).join(" · ")),
      h("span", { class: "tl-duration" }, fmtDuration(t.duration_ms)),
    ),
  );
  return [header, h("div", { class: "orphans-list" }, rows)];
}

function renderTrace(trace, selectedSpan) {
  const start = parseTime(trace.start);
  const total = Math.max(parseTime(trace.end) - start, 0.001);
  const crumbs = [h("a", { href: "#/" }, "Sessions"), " › "];
  if (trace.session_id) crumbs.push(h("a", { href: sessionHref(trace.session_id), class: "mono" }, trace.session_id), " › ");
  crumbs.push("trace");
  const header = h(
    "header",
    { class: "view-header" },
    h("div", { class: "crumbs" }, crumbs),
    h("h1", {}, trace.name || "(no root span yet)"),
    statsLine([
      h("span", { class: "mono", title: "trace id" }, trace.trace_id),
      plural(trace.span_count, "span"),
      trace.spans_omitted ? `${plural(trace.spans_omitted, "span")} not shown: the answer is full` : null,
      trace.error_count ? h("span", { class: "badge error" }, plural(trace.error_count, "error")) : null,
      `${fmtDuration(trace.duration_ms)} at ${fmtClock(start)}`,
      fmtTokens(trace.tokens),
      trace.complete ? "complete" : null,
    ]),
    trace.input !== null || trace.output !== null
      ? h("div", { class: "trace-conv" }, trace.input !== null ? message("in", trace.input) : null, trace.output !== null ? message("out", trace.output) : null)
      : null,
  );
  const ordered = spanTree(trace.spans);
  const services = [];
  const rows = ordered.map(({ span, depth }) => {
    const s = parseTime(span.start);
    const error = span.status.code === "ERROR";
    const service = span.resource["service.name"] || "";
    if (!services.includes(service)) services.push(service);
    const selected = span.span_id === selectedSpan;
    return h(
      "a",
      {
        class: "tl-row span-row" + (error ? " is-error" : "") + (selected ? " selected" : ""),
        href: traceHref(trace.trace_id, selected ? null : span.span_id),
        "data-span-id": span.span_id,
        "aria-current": selected ? "true" : null,
      },
      h(
        "span",
        { class: "tl-label", style: { paddingLeft: `${8 + Math.min(depth, 12) * 14}px` } },
        error ? h("span", { class: "error-mark", title: "error" }, "!") : null,
        span.ai_kind ? h("span", { class: `kind-badge kind-${span.ai_kind.toLowerCase()}`, title: "span kind" }, span.ai_kind) : null,
        h("span", { class: "tl-name", title: span.name }, span.name),
        h("span", { class: "tl-meta" }, span.kind === "INTERNAL" ? "" : span.kind.toLowerCase()),
      ),
      barCell(
        s - start,
        span.duration_ms,
        total,
        error,
        span.ai_kind ? `kind-${span.ai_kind.toLowerCase()}` : `svc-${services.indexOf(service) % 6}`,
      ),
      h("span", { class: "tl-duration" }, fmtDuration(span.duration_ms)),
    );
  });
  const chosen = trace.spans.find((span) => span.span_id === selectedSpan);
  const waterfall = h("div", { class: "waterfall" }, timeline(total, rows, "spans"));
  const body = h(
    "div",
    { class: "trace-body" + (chosen ? " with-details" : "") },
    waterfall,
    chosen ? renderDetails(chosen, trace, start) : null,
  );
  return [header, body];
}

// Depth-first order, children by start time; spans whose parent never arrived are
// shown as roots so nothing is hidden.
function spanTree(spans) {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    if (span.parent_span_id && ids.has(span.parent_span_id)) {
      if (!children.has(span.parent_span_id)) children.set(span.parent_span_id, []);
      children.get(span.parent_span_id).push(span);
    } else {
      roots.push(span);
    }
  }
  const out = [];
  const seen = new Set();
  const visit = (span, depth) => {
    if (seen.has(span.span_id)) return;
    seen.add(span.span_id);
    out.push({ span, depth });
    for (const child of children.get(span.span_id) || []) visit(child, depth + 1);
  };
  roots.forEach((span) => visit(span, 0));
  return out;
}

function renderDetails(span, trace, traceStart) {
  const section = (title, content) => (content ? h("section", { class: "details-section" }, h("h3", {}, title), content) : null);
  const table = (object) => {
    const keys = Object.keys(object || {}).sort();
    if (!keys.length) return null;
    return h(
      "table",
      { class: "kv" },
      h("tbody", {}, keys.map((key) => h("tr", {}, h("th", { title: key }, breakable(key)), h("td", {}, fmtValue(object[key]))))),
    );
  };
  const events = span.events.length
    ? h(
        "ol",
        { class: "events" },
        span.events.map((e) =>
          h(
            "li",
            {},
            h("div", { class: "event-head" }, h("strong", {}, e.name), ` ${fmtOffset(parseTime(e.time) - traceStart)}`),
            table(e.attributes),
          ),
        ),
      )
    : null;
  const links = span.links.length
    ? h(
        "ul",
        { class: "links" },
        span.links.map((l) => h("li", {}, h("a", { href: traceHref(l.trace_id, l.span_id), class: "mono" }, `${l.trace_id} / ${l.span_id}`))),
      )
    : null;
  return h(
    "aside",
    { class: "details", "aria-label": "Span details" },
    h(
      "div",
      { class: "details-head" },
      h("h2", {}, span.name),
      h("a", { class: "close", href: traceHref(trace.trace_id), title: "Close", "aria-label": "Close details" }, "×"),
    ),
    table({
      "span id": span.span_id,
      parent: span.parent_span_id || "(root)",
      kind: span.kind,
      status: span.status.message ? `${span.status.code}: ${span.status.message}` : span.status.code,
      start: `${span.start} (${fmtOffset(parseTime(span.start) - traceStart)})`,
      duration: fmtDuration(span.duration_ms),
    }),
    span.messages ? section("Messages", renderMessages(span.messages)) : null,
    span.input !== null && !span.messages ? section("Input", h("div", { class: "io-text" }, span.input)) : null,
    span.output !== null && !span.messages ? section("Output", h("div", { class: "io-text" }, span.output)) : null,
    section("Attributes", table(span.attributes) || h("p", { class: "muted" }, "none")),
    section("Events", events),
    section("Links", links),
    section("Resource", table(span.resource)),
    section("Scope", table({ name: span.scope.name, version: span.scope.version, ...span.scope.attributes })),
  );
}

// An LLM call's prompt and completion as a chat: one bubble per message, by role.
function renderMessages(messages) {
  const bubble = (m, direction) =>
    h(
      "div",
      { class: `bubble role-${(m.role || "unknown").replace(/[^a-z_]/gi, "")} ${direction}` },
      h("div", { class: "bubble-role" }, m.role || "message"),
      h("div", { class: "bubble-text" }, m.content),
    );
  return h(
    "div",
    { class: "messages" },
    messages.input.map((m) => bubble(m, "prompt")),
    messages.output.length ? h("div", { class: "messages-divider" }, "completion") : null,
    messages.output.map((m) => bubble(m, "completion")),
  );
}

// A time axis with "nice" ticks over `total` ms, and the rows laid over it.
function timeline(total, rows, label) {
  const step = niceStep(total / 6);
  const ticks = [];
  for (let t = 0; t <= total + step * 0.001; t += step) {
    const left = `${(t / total) * 100}%`;
    ticks.push(h("span", { class: "tick", style: { left } }, h("span", { class: "tick-label" }, t === 0 ? "0" : fmtDuration(t).replace(/\.0+ /, " ").replace(/ 00[sm]$/, ""))));
  }
  return h(
    "div",
    { class: "timeline", role: "list", "aria-label": label },
    h("div", { class: "axis" }, h("span", { class: "axis-spacer" }), h("span", { class: "axis-ticks" }, ticks), h("span", { class: "axis-end" })),
    h("div", { class: "grid" }, ticks.map((tick) => h("span", { class: "grid-line", style: { left: tick.style.left } }))),
    h("div", { class: "rows" }, rows),
  );
}

// Tick steps a person reads as round: 1-2-5 below a second, then clock-like steps.
const CLOCK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map(
  (s) => s * 1000,
);

function niceStep(rough) {
  if (!(rough > 0)) return 1;
  if (rough > 1000) return CLOCK_STEPS.find((step) => step >= rough) || 86400000 * Math.ceil(rough / 86400000);
  const power = Math.pow(10, Math.floor(Math.log10(rough)));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough);
}

function barCell(offset, duration, total, error, variant) {
  const left = Math.min(Math.max((offset / total) * 100, 0), 100);
  const width = Math.min(Math.max((duration / total) * 100, 0.3), 100 - left);
  return h(
    "span",
    { class: "tl-track" },
    h("span", { class: `bar ${variant}` + (error ? " error" : ""), style: { left: `${left}%`, width: `${Math.max(width, 0.3)}%` } }),
  );
}

// ---------------------------------------------------------------- wiring

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
