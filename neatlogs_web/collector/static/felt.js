// What the person felt: how long they waited for an answer, and their thumbs up or
// down on it, as a turn, a session and the sessions list show them.

import { h } from "./dom.js";
import { fmtAgo, fmtDuration, parseTime } from "./format.js";

// A wait as a person reads it: milliseconds under a second, one decimal of seconds
// under a minute.
export function fmtWait(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return fmtDuration(ms);
}

// A turn's "first words after 1.8 s · answer took 6.2 s", or how its answer was cut
// short; null when it measured nothing (not a web request).
export function feltLine(turn) {
  const response = turn.response;
  if (!response) return null;
  const leftAfterMs = requestDuration(turn);
  const parts = [];
  if (response.time_to_first_chunk_ms !== null) parts.push(`first words after ${fmtWait(response.time_to_first_chunk_ms)}`);
  if (response.complete === false) {
    const when = parts.length ? "left before the end" : "left before the first words";
    parts.push(leftAfterMs === null ? when : `left after ${fmtWait(leftAfterMs)}`);
  } else if (response.duration_ms !== null) {
    parts.push(`answer took ${fmtWait(response.duration_ms)}`);
  }
  if (!parts.length) return null;
  const cut = response.complete === false;
  return h(
    "span",
    { class: "felt" + (cut ? " cut-short" : ""), title: cut ? "the person left before the answer ended" : "what the person waited for" },
    parts.join(" · "),
  );
}

// How long the request that carried a turn lasted, when known (a person who left ended
// it): the request trace folded into the turn, or the turn's own trace when its root is
// the framework's request span.
function requestDuration(turn) {
  if (turn.request) return turn.request.duration_ms;
  return turn.http_status !== null ? turn.duration_ms : null;
}

// A session's wait for first words over its turns: "first words: median 1.2 s · worst 4.5 s".
export function waitsLine(waits) {
  if (!waits) return null;
  return h(
    "span",
    { class: "waits", title: "wait for the first words of an answer: median and worst over the turns" },
    `first words: median ${fmtWait(waits.median)} · worst ${fmtWait(waits.worst)}`,
  );
}

// A thumb drawn, not a glyph: the page has no emoji font to count on.
export function thumb(direction) {
  const word = direction === "up" ? "thumbs up" : "thumbs down";
  return h("span", { class: `thumb thumb-${direction}`, role: "img", "aria-label": word, title: word });
}

// Thumbs up and down counted: "👍 2 👎 1", only the ones there are.
export function feedbackCounts(feedback) {
  if (!feedback || (!feedback.up && !feedback.down)) return null;
  const counts = [];
  if (feedback.up) counts.push(h("span", { class: "count-up" }, thumb("up"), String(feedback.up)));
  if (feedback.down) counts.push(h("span", { class: "count-down" }, thumb("down"), String(feedback.down)));
  return h("span", { class: "feedback-counts", title: `${feedback.count} judgment${feedback.count === 1 ? "" : "s"}` }, counts);
}

// A turn's judgments, the latest first; `count` is how many it had in all.
export function judgmentsBlock(judgments, count) {
  if (!judgments.length) return null;
  const items = judgments.map((j) =>
    h(
      "div",
      { class: `judgment judgment-${j.thumb || "none"}`, title: j.score === null ? "no score" : `score ${j.score}` },
      j.thumb ? thumb(j.thumb) : h("span", { class: "thumb-none" }, "feedback"),
      j.label ? h("span", { class: "chip judgment-label" }, j.label) : null,
      j.comment ? h("span", { class: "judgment-comment" }, j.comment) : null,
      h("span", { class: "judgment-time", title: j.time }, fmtAgo(parseTime(j.time))),
    ),
  );
  if (count > judgments.length) items.push(h("div", { class: "judgment-more" }, `and ${count - judgments.length} earlier`));
  return h("div", { class: "judgments" }, items);
}
