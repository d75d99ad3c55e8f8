// One trace's span waterfall and a span's details, and the traces without a session.

import { barCell, timeline } from "./axis.js";
import { h, message, statsLine } from "./dom.js";
import { feedbackCounts, feltLine, judgmentsBlock } from "./felt.js";
import { breakable, fmtClock, fmtDuration, fmtOffset, fmtTokens, fmtValue, parseTime, plural } from "./format.js";
import { sessionHref, traceHref } from "./routes.js";

export function renderOrphans(data) {
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

export function renderTrace(trace, selectedSpan) {
  const start = parseTime(trace.start);
  const total = Math.max(parseTime(trace.end) - start, 0.001);
  const crumbs = [h("a", { href: "#/" }, "Sessions"), " › "];
  if (trace.session_id) {
    crumbs.push(h("a", { href: sessionHref(trace.workflow, trace.session_id), class: "mono" }, trace.session_id), " › ");
  }
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
      feltLine(trace),
      feedbackCounts(trace.feedback),
    ]),
    trace.input !== null || trace.output !== null
      ? h("div", { class: "trace-conv" }, trace.input !== null ? message("in", trace.input) : null, trace.output !== null ? message("out", trace.output) : null)
      : null,
    judgmentsBlock(trace.judgments, trace.feedback.count),
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
export function spanTree(spans) {
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

export function renderDetails(span, trace, traceStart) {
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
export function renderMessages(messages) {
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
