// Times, durations and counts as the page prints them.

import { h } from "./dom.js";

// RFC 3339 with microseconds -> milliseconds since the epoch, keeping the microseconds
// that Date.parse would drop (spans are often shorter than a millisecond).
export function parseTime(text) {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(text || "");
  if (!match) return Date.parse(text);
  const fraction = match[2] ? Number("0." + match[2]) * 1000 : 0;
  return Date.parse(match[1] + "Z") + fraction;
}

export function fmtDuration(ms) {
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

export function fmtOffset(ms) {
  return ms > 0 ? `+${fmtDuration(ms)}` : "+0";
}

export function fmtAgo(ms) {
  const s = (Date.now() - ms) / 1000;
  if (s < 5) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

export function fmtClock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtCount(n) {
  return n >= 100000 ? `${Math.round(n / 1000)}k` : n.toLocaleString("en");
}

export function fmtTokens(tokens) {
  if (!tokens || tokens.total === null) return null;
  return `${fmtCount(tokens.total)} tok`;
}

export function plural(n, word) {
  return `${fmtCount(n)} ${word}${n === 1 ? "" : "s"}`;
}

// Long dotted keys (gen_ai.usage.input_tokens) may wrap after a dot, not mid-word.
export function breakable(key) {
  return key.split(".").flatMap((part, i) => (i ? [".", h("wbr"), part] : [part]));
}

export function fmtValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 1);
}
