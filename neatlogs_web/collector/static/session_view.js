// One session as a conversation: a row per user turn on the session's time axis.

import { compressedAxis, entryEnd } from "./axis.js";
import { h, message, statsLine } from "./dom.js";
import { feedbackCounts, feltLine, judgmentsBlock, waitsLine } from "./felt.js";
import { fmtClock, fmtDuration, fmtOffset, fmtTokens, parseTime, plural } from "./format.js";
import { traceHref } from "./routes.js";

export function requestLabel(trace) {
  return [trace.name, trace.http_status].filter((part) => part !== null && part !== undefined).join(" · ");
}

// `onMore` shows the next page of turns, when there is one.
export function renderSession(session, onMore) {
  const entries = session.traces;
  const start = parseTime(session.first_seen);
  const axis = compressedAxis(entries, start);
  const header = h(
    "header",
    { class: "view-header" },
    h(
      "div",
      { class: "crumbs" },
      h("a", { href: "#/" }, "Sessions"),
      " › ",
      h("span", { class: "workflow", title: "workflow" }, session.workflow || "no workflow"),
      " › session",
    ),
    h("h1", { class: "mono", title: session.session_id }, session.session_id),
    statsLine([
      session.end_user ? h("span", { class: "user", title: "end user" }, session.end_user) : null,
      h("span", { class: "turn-count" }, plural(session.turn_count, "turn")),
      session.trace_count !== session.turn_count ? plural(session.trace_count, "trace") : null,
      plural(session.span_count, "span"),
      session.error_count ? h("span", { class: "badge error" }, plural(session.error_count, "error")) : null,
      `${fmtDuration(session.duration_ms)} from ${fmtClock(start)}`,
      fmtTokens(session.tokens),
      waitsLine(session.time_to_first_chunk_ms),
      feedbackCounts(session.feedback),
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
          onclick: onMore,
        },
        `Show more turns (${turnNumber} of ${session.turn_count} shown)`,
      )
    : null;
  return [header, axis.timeline(rows, "turns"), more].filter(Boolean);
}

export function turnRow(t, number, axis, sessionStart, sessionUser) {
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
      feltLine(t),
      judgmentsBlock(t.judgments, t.feedback.count),
    ),
    h("span", { class: "tl-track" }, bars),
    h("span", { class: "tl-duration" }, fmtDuration(t.duration_ms), h("span", { class: "chevron" }, "›")),
  );
}

export function requestRow(t, axis, sessionStart) {
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
