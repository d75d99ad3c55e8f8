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
//   import { createSessionFetch } from "./neatlogs-session.js";
//   const sessionFetch = createSessionFetch({ storage: "tab" });
//   const response = await sessionFetch("https://api.example.com/chat", { method: "POST" });
//
// Cross-origin, the API must allow the header (Access-Control-Allow-Headers) and
// expose it (Access-Control-Expose-Headers); the README shows both.

export const SESSION_HEADER = "X-Neatlogs-Session-Id";

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
 * @param {typeof fetch} [options.fetch] the fetch to wrap (default: the global one).
 * @returns {((input: RequestInfo | URL, init?: RequestInit) => Promise<Response>) &
 *   { token(): string | null, sessionId(): string | null, reset(): void }}
 */
export function createSessionFetch({
  storage = "tab",
  header = SESSION_HEADER,
  key = "neatlogs-session",
  credentials,
  fetch: baseFetch = (input, init) => globalThis.fetch(input, init),
} = {}) {
  const store = openStore(storage, key);

  async function sessionFetch(input, init = {}) {
    const headers = new Headers(
      init.headers ?? (input instanceof Request ? input.headers : undefined),
    );
    const token = store.get();
    if (token) headers.set(header, token);
    const request = { ...init, headers };
    if (credentials !== undefined && init.credentials === undefined) {
      request.credentials = credentials;
    }
    const response = await baseFetch(input, request);
    const issued = response.headers.get(header);
    if (issued) store.set(issued); // a new session, or a refreshed token
    return response;
  }

  /** The token this tab or browser sends, or null before the first response. */
  sessionFetch.token = () => store.get();
  /** The session id the token carries ("<id>.<timestamp>.<signature>"), or null. */
  sessionFetch.sessionId = () => {
    const token = store.get();
    return token ? token.split(".").slice(0, -2).join(".") : null;
  };
  /** Forget the token: the next request starts a new session. */
  sessionFetch.reset = () => store.clear();
  return sessionFetch;
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
