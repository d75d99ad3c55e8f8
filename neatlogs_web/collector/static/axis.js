// Time axes: a session's, whose idle gaps are compressed, and a trace's, to scale; bars
// on them; and labels that never overlap, however close the turns.

import { h } from "./dom.js";
import { fmtDuration, fmtOffset, parseTime } from "./format.js";

// When an entry's work ends: its own trace, its request's and its background parts'.
export function entryEnd(t) {
  let end = parseTime(t.end);
  if (t.request) end = Math.max(end, parseTime(t.request.end));
  for (const part of t.parts) end = Math.max(end, parseTime(part.end));
  return end;
}

// A time axis over a session whose idle gaps are drawn narrow: busy stretches keep
// their length, a pause longer than a quarter of the busy time (and than a second)
// takes a fixed sliver and is labelled with how long it really was.
export function compressedAxis(entries, sessionStart) {
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
  // A tick where each stretch starts and a band per compressed gap; which labels fit
  // is decided once they are laid out (declutterAxis).
  const timeline = (rows, label) => {
    const marks = [];
    for (const [rs, re, us, ue, gap] of segments) {
      const left = (us / total) * 100;
      if (gap) {
        marks.push(
          h(
            "span",
            { class: "axis-gap", style: { left: `${left}%`, width: `${((ue - us) / total) * 100}%` }, title: `${fmtDuration(re - rs)} idle, not to scale` },
            h("span", { class: "axis-gap-label" }, `${fmtDuration(re - rs)} idle`),
          ),
        );
      } else {
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

// Axis labels stand at their times, so turns close together would print them over
// each other ("+738 ms" on "+891 ms"). Once laid out, a label that would come within
// LABEL_SPACE_PX of one already kept, or leave the axis, is hidden: the first label and
// the idle gaps' are kept first, then the others in time order. Run again on resize.
export const LABEL_SPACE_PX = 8;

export function declutterAxis(ticks) {
  const labels = [...ticks.querySelectorAll(".tick-label, .axis-gap-label")];
  for (const label of labels) label.style.visibility = "";
  const rank = (label, index) => (index === 0 ? 0 : label.classList.contains("axis-gap-label") ? 1 : 2);
  const order = labels.map((label, index) => [rank(label, index), index, label]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const axis = (ticks.closest(".axis") || ticks).getBoundingClientRect();
  const kept = [];
  for (const [, , label] of order) {
    const box = label.getBoundingClientRect();
    const inside = box.left >= axis.left && box.right <= axis.right;
    const clear = kept.every((other) => box.right + LABEL_SPACE_PX <= other.left || box.left >= other.right + LABEL_SPACE_PX);
    if (inside && clear) kept.push(box);
    else label.style.visibility = "hidden";
  }
}

export const axisObserver = new ResizeObserver((entries) => entries.forEach((entry) => declutterAxis(entry.target)));

// The view's axes, decluttered now and whenever their width changes.
export function watchAxes(view) {
  axisObserver.disconnect();
  for (const ticks of view.querySelectorAll(".axis-ticks")) {
    declutterAxis(ticks);
    axisObserver.observe(ticks);
  }
}

// A time axis with "nice" ticks over `total` ms, and the rows laid over it.
export function timeline(total, rows, label) {
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
export const CLOCK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map(
  (s) => s * 1000,
);

export function niceStep(rough) {
  if (!(rough > 0)) return 1;
  if (rough > 1000) return CLOCK_STEPS.find((step) => step >= rough) || 86400000 * Math.ceil(rough / 86400000);
  const power = Math.pow(10, Math.floor(Math.log10(rough)));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough);
}

export function barCell(offset, duration, total, error, variant) {
  const left = Math.min(Math.max((offset / total) * 100, 0), 100);
  const width = Math.min(Math.max((duration / total) * 100, 0.3), 100 - left);
  return h(
    "span",
    { class: "tl-track" },
    h("span", { class: `bar ${variant}` + (error ? " error" : ""), style: { left: `${left}%`, width: `${Math.max(width, 0.3)}%` } }),
  );
}
