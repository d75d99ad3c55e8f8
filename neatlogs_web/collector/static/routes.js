// The page's addresses: a session is its id within its workflow, a trace its id.

// A session is its id within its workflow: two apps' "conv-1" are two pages. A session
// without a workflow has the empty one (#/workflows//sessions/ID).
export function sessionHref(workflow, id) {
  return `#/workflows/${encodeURIComponent(workflow || "")}/sessions/${encodeURIComponent(id)}`;
}

export function sameSession(route, s) {
  return route.kind === "session" && route.id === s.session_id && route.workflow === (s.workflow || "");
}

export function traceHref(id, spanId) {
  return `#/traces/${encodeURIComponent(id)}` + (spanId ? `/${encodeURIComponent(spanId)}` : "");
}

export function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const arg = (i) => (parts[i] ? decodeURIComponent(parts[i]) : null);
  try {
    if (parts[0] === "workflows" && parts[2] === "sessions" && parts[3]) {
      return { kind: "session", workflow: arg(1) || "", id: arg(3) };
    }
    // A link from before sessions were kept per workflow: the id alone.
    if (parts[0] === "sessions" && parts[1]) return { kind: "session", workflow: null, id: arg(1) };
    if (parts[0] === "traces" && parts[1]) return { kind: "trace", id: arg(1), span: arg(2) };
    if (parts[0] === "no-session") return { kind: "no-session" };
  } catch (e) {
    // A hand-edited hash with a broken escape: show the home view.
  }
  return { kind: "home" };
}
