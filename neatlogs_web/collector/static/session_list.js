// The sessions list and its filters, and the choice an id shared by workflows offers.

import { $, h } from "./dom.js";
import { feedbackCounts, waitsLine } from "./felt.js";
import { fmtAgo, fmtTokens, parseTime, plural } from "./format.js";
import { sameSession, sessionHref } from "./routes.js";
import { MAX_SESSIONS, state } from "./state.js";

export function listParams() {
  const params = new URLSearchParams({ limit: String(state.limit) });
  const f = state.filters;
  if (state.query) params.set("q", state.query);
  if (f.user) params.set("user", f.user);
  if (f.workflow) params.set("workflow", f.workflow);
  if (f.time) params.set("since", new Date(Date.now() - Number(f.time) * 1000).toISOString());
  if (f.errors) params.set("errors", "1");
  if (f.negative) params.set("feedback", "negative");
  if (f.sort !== "recent") params.set("sort", f.sort);
  // Sessions holding only requests (a health check, a page load) are left out unless asked.
  if (!f.requests) params.set("turns", "1");
  return params;
}

export function renderFacets(facets) {
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

export function sessionItem(s, selected) {
  const noTurns = s.turn_count === 0;
  const title = s.first_input
    ? h("span", { class: "session-title", title: s.first_input }, s.first_input)
    : h("span", { class: "session-title mono", title: s.session_id }, s.session_id);
  const stats = [
    s.end_user ? h("span", { class: "user", title: "end user" }, s.end_user) : null,
    h("span", { class: "turns" }, noTurns ? `no turns · ${plural(s.trace_count, "request")}` : plural(s.turn_count, "turn")),
    fmtTokens(s.tokens),
    s.error_count ? h("span", { class: "badge error" }, plural(s.error_count, "error")) : null,
    waitsLine(s.time_to_first_chunk_ms),
    feedbackCounts(s.feedback),
  ].filter(Boolean);
  return h(
    "a",
    {
      class: "session-item" + (selected ? " selected" : "") + (noTurns ? " no-turns" : ""),
      href: sessionHref(s.workflow, s.session_id),
      "aria-current": selected ? "page" : null,
      "data-session-id": s.session_id,
      "data-workflow": s.workflow || "",
    },
    h("div", { class: "session-line" }, title, h("span", { class: "ago", title: s.last_seen }, fmtAgo(parseTime(s.last_seen)))),
    h("div", { class: "session-stats" }, stats),
    s.first_input || s.workflow
      ? h("div", { class: "session-sub" }, [s.first_input ? s.session_id : null, s.workflow].filter(Boolean).join(" · "))
      : null,
  );
}

export function renderList(list, hasOrphans) {
  const nav = $("sessions");
  const route = state.route || {};
  const items = list.sessions.map((s) => sessionItem(s, sameSession(route, s)));
  const f = state.filters;
  const filtered = Boolean(state.query || f.user || f.workflow || f.time || f.errors || f.negative);
  // The traces without a session head the plain list only: they have no wait to sort by.
  if (hasOrphans && !filtered && f.sort === "recent") {
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
  if (!items.length) items.push(h("p", { class: "empty" }, emptyListMessage(filtered)));
  nav.replaceChildren(...items);
  $("more").hidden = !list.next || state.limit >= MAX_SESSIONS;
  const hidden = list.without_turns || 0;
  $("requests-toggle").hidden = !state.filters.requests && hidden === 0;
  $("requests-label").textContent = state.filters.requests
    ? "Show sessions without turns"
    : `Show ${plural(hidden, "session")} without turns`;
}

function emptyListMessage(filtered) {
  if (state.query) return `No session matches “${state.query}”.`;
  if (filtered) return "No session matches these filters.";
  return state.filters.sort === "wait" ? "No session measured a wait for an answer yet." : "No sessions yet.";
}

// An id that names sessions of several workflows: one link each.
export function renderChoices(route, sessions) {
  return h(
    "section",
    { class: "home choices" },
    h("h1", {}, "Which session?"),
    h("p", { class: "muted" }, `Session “${route.id}” is in ${sessions.length} workflows, one session each.`),
    h("nav", { class: "session-list", "aria-label": "Sessions with this id" }, sessions.map((s) => sessionItem(s, false))),
  );
}
