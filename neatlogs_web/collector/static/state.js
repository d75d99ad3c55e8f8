// The page's state: the list's query and filters, the route shown, what was last drawn.

export const POLL_MS = 3000;
export const PAGE_SIZE = 50;
export const MAX_SESSIONS = 500;

export const state = {
  query: "",
  // `sort`: "recent" (last activity) or "wait" (the longest wait for first words).
  filters: { user: "", workflow: "", time: "", errors: false, negative: false, requests: false, sort: "recent" },
  facetsKey: "",
  limit: PAGE_SIZE,
  listKey: "",
  viewKey: "",
  route: null,
  polling: null,
  turnPages: 1, // pages of the open session's turns shown; "Show more turns" adds one
};
