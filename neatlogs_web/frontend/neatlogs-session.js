// neatlogs-session.js: keep a neatlogs_web session token in the browser and send
// it with every fetch to your API.
//
// The server echoes a signed token in the X-Neatlogs-Session-Id response header
// when it issues a session (or refreshes one). This module keeps that token,
// per tab (sessionStorage: each tab is its own conversation) or per browser
// (localStorage: every tab shares one), sends it back in the same header, and
// takes whatever new token a response carries. A token the server no longer
// accepts (expired, signed with a retired key) is replaced the same way: the
// server starts a fresh session and echoes its token.
//
// The token is a bearer credential: whoever holds it speaks in that session. It
// goes only to the allowed origins (default: the page's own), and only they may
// set it; a request to any other origin is a plain fetch. A request that carries
// the token follows no redirect, since fetch would copy the header to wherever
// the redirect points without saying where that is.
//
//   import { createSessionFetch } from "./neatlogs-session.js";
//   const sessionFetch = createSessionFetch({
//     storage: "tab",
//     allowedOrigins: ["https://api.example.com"],
//   });
//   const response = await sessionFetch("https://api.example.com/chat", { method: "POST" });
//
// Cross-origin, the API must allow the header (Access-Control-Allow-Headers) and
// expose it (Access-Control-Expose-Headers); the README shows both.
//
// Feedback (the middleware's feedback=True): each response that carried a turn
// names it in X-Neatlogs-Feedback-Token. The helper remembers the latest one from
// the allowed origins, and sends a judgment of that turn in one line:
//
//   await sessionFetch.feedback({ score: 1 });                 // the latest turn
//   await sessionFetch.feedback({ score: 0, comment: "wrong" }, { response }); // an earlier one
//
// The token names the latest turn known when the response started: a turn started
// later, inside a streamed body, is not in its headers. Such an answer sends
// neatlogs_web.feedback_token() in its body (as a WebSocket reply does); pass it on:
//
//   await sessionFetch.feedback({ score: 1 }, { token, response });
//
// Cross-origin, expose the header too.

export const SESSION_HEADER = "X-Neatlogs-Session-Id";
export const FEEDBACK_HEADER = "X-Neatlogs-Feedback-Token";

/**
 * A fetch that carries the session token.
 *
 * @param {object} [options]
 * @param {"tab" | "browser" | Storage} [options.storage="tab"] where the token lives:
 *   "tab" (sessionStorage), "browser" (localStorage), or any object with
 *   getItem/setItem/removeItem.
 * @param {string} [options.header] the session header (the middleware's header_name).
 * @param {string} [options.key="neatlogs-session"] the storage key.
 * @param {RequestCredentials} [options.credentials] sent with every request that
 *   does not set its own, e.g. "include" when the API also reads your login cookie.
 * @param {Iterable<string>} [options.allowedOrigins] the origins that receive the
 *   token and may set it, e.g. ["https://api.example.com"] (default: the page's own).
 * @param {typeof fetch} [options.fetch] the fetch to wrap (default: the global one); it is
 *   called with one Request, the one whose URL was checked.
 * @param {string} [options.feedbackHeader] the feedback token header.
 * @param {string} [options.feedbackPath="/neatlogs/feedback"] the middleware's feedback_path,
 *   on the origin that answered the turn.
 * @returns {((input: RequestInfo | URL, init?: RequestInit) => Promise<Response>) &
 *   { token(): string | null, sessionId(): string | null, reset(): void,
 *     feedbackToken(response?: Response): string | null,
 *     feedback(judgment: { score?: number, label?: string, comment?: string },
 *              turn?: { response?: Response, token?: string }): Promise<Response> }}
 */
export function createSessionFetch({
  storage = "tab",
  header = SESSION_HEADER,
  key = "neatlogs-session",
  credentials,
  allowedOrigins = pageOrigin(),
  fetch: baseFetch = (request) => globalThis.fetch(request),
  feedbackHeader = FEEDBACK_HEADER,
  feedbackPath = "/neatlogs/feedback",
} = {}) {
  const store = openStore(storage, key);
  const allowed = originSet(allowedOrigins);
  // The latest turn an allowed origin named: its feedback token, and who answered.
  let latestTurn = null;

  async function sessionFetch(input, init) {
    // The request is built first and is what goes out, so the URL checked is the
    // one fetch sends to: a relative URL resolved against the document's base
    // URL (a <base> element), a Request of any realm or subclass read for its
    // own URL, a URL-like object converted to a string once.
    let request = new Request(input, withCredentials(init, credentials));
    const target = new URL(request.url).origin;
    const token = allowed.has(target) ? store.get() : null;
    if (token) {
      request.headers.set(header, token);
      // A redirect would carry the header to an origin fetch does not reveal.
      if (request.redirect !== "manual") request = withRedirect(request, "error");
    }
    const response = await baseFetch(request);
    // Where the answer came from: the last hop of a redirect, or (a response
    // made by a wrapped fetch has no URL) where the request went.
    const answered = response.url ? new URL(response.url).origin : target;
    const issued = response.headers.get(header);
    if (issued && allowed.has(answered)) store.set(issued); // a new session, or a refreshed token
    const turn = turnOf(response, answered);
    if (turn) latestTurn = turn;
    return response;
  }

  /** The turn a response named, if an allowed origin answered it. */
  function turnOf(response, answered = response.url ? new URL(response.url).origin : null) {
    const token = response.headers.get(feedbackHeader);
    return token && allowed.has(answered) ? { token, origin: answered } : null;
  }

  /** The allowed origin that answered `response`, if any. */
  function answeredBy(response) {
    const origin = response?.url ? new URL(response.url).origin : null;
    return allowed.has(origin) ? origin : null;
  }

  /** The token this tab or browser sends, or null before the first response. */
  sessionFetch.token = () => store.get();
  /** The session id the token carries ("<id>.<timestamp>.<signature>"), or null. */
  sessionFetch.sessionId = () => {
    const token = store.get();
    return token ? token.split(".").slice(0, -2).join(".") : null;
  };
  /** Forget the token: the next request starts a new session. */
  sessionFetch.reset = () => {
    store.clear();
    latestTurn = null;
  };
  /** The feedback token of `response` (one sessionFetch returned), else of the latest turn. */
  sessionFetch.feedbackToken = (response) =>
    (response ? turnOf(response) : latestTurn)?.token ?? null;
  /**
   * Send a judgment ({ score, label, comment }) of the latest turn, or of the turn of
   * an earlier `response`, or of the turn a `token` names (one an answer sent in its
   * body: the judgment goes to the origin of `response`, else of the latest turn,
   * else the first allowed origin). Resolves to the endpoint's
   * Response: 204 recorded; 403 not this session's turn; 410 too old.
   */
  sessionFetch.feedback = async (judgment, { response, token } = {}) => {
    const turn = token
      ? { token, origin: answeredBy(response) ?? latestTurn?.origin ?? [...allowed][0] }
      : response
        ? turnOf(response)
        : latestTurn;
    if (!turn?.token || !turn.origin) {
      throw new Error("no turn to give feedback on: no response named one yet");
    }
    return sessionFetch(new URL(feedbackPath, turn.origin), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...judgment, token: turn.token }),
    });
  };
  return sessionFetch;
}

/** The default allow-list: the page's own origin (none outside a page, or on file:). */
function pageOrigin() {
  const origin = globalThis.location?.origin;
  return origin && origin !== "null" ? [origin] : [];
}

/** The allowed origins, checked once: a mistake stops the page here, naming the option. */
function originSet(origins) {
  const example = 'e.g. ["https://api.example.com"]';
  if (typeof origins === "string" || typeof origins?.[Symbol.iterator] !== "function") {
    throw new TypeError(`allowedOrigins must be a list of origins, ${example}`);
  }
  const set = new Set();
  for (const entry of origins) {
    let url = null;
    try {
      url = typeof entry === "string" ? new URL(entry) : null;
    } catch {
      // not a URL: reported below
    }
    const bare =
      url && url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password;
    if (!bare || url.origin === "null") {
      throw new TypeError(
        `allowedOrigins: ${JSON.stringify(entry)} is not an origin (scheme, host and port), ${example}`,
      );
    }
    set.add(url.origin);
  }
  if (set.size === 0) {
    throw new TypeError(`allowedOrigins must list the origins that receive the token, ${example}`);
  }
  return set;
}

/** The call's init, with the helper's credentials when the call sets none. */
function withCredentials(init, credentials) {
  if (credentials === undefined || init?.credentials !== undefined) return init;
  return { ...init, credentials };
}

/**
 * The same request with another redirect mode. A Request rebuilt with options
 * forgets its referrer and referrer policy unless they are passed again.
 */
function withRedirect(request, redirect) {
  const { referrer, referrerPolicy } = request;
  return new Request(request, { redirect, referrer, referrerPolicy });
}

function openStore(storage, key) {
  if (storage !== "tab" && storage !== "browser" && typeof storage?.getItem !== "function") {
    throw new TypeError('storage must be "tab", "browser" or an object with getItem/setItem');
  }
  let backing = null;
  try {
    backing =
      storage === "tab"
        ? globalThis.sessionStorage
        : storage === "browser"
          ? globalThis.localStorage
          : storage;
    backing.getItem(key); // storage may be disabled (privacy settings, sandboxed frames)
  } catch {
    backing = null;
  }
  if (backing === null) {
    // Without storage the token lives as long as the page: one session per page load.
    let kept = null;
    return {
      get: () => kept,
      set: (value) => {
        kept = value;
      },
      clear: () => {
        kept = null;
      },
    };
  }
  return {
    get: () => backing.getItem(key),
    set: (value) => backing.setItem(key, value),
    clear: () => backing.removeItem(key),
  };
}
