// The signed session token travels in a header, not the cookie: the server
// echoes it when it issues or refreshes one, the page keeps it in
// sessionStorage (one per tab), and sends it back on every request.
"use strict";

const SESSION_HEADER = "X-Neatlogs-Session-Id";
const STORAGE_KEY = "neatlogs-session-token";

async function sessionFetch(url, options = {}) {
  const headers = new Headers(options.headers);
  const token = sessionStorage.getItem(STORAGE_KEY);
  if (token) headers.set(SESSION_HEADER, token);
  // "omit": the cookie is shared by every tab; the header is per tab.
  const response = await fetch(url, { ...options, headers, credentials: "omit" });
  const issued = response.headers.get(SESSION_HEADER);
  if (issued) sessionStorage.setItem(STORAGE_KEY, issued);
  return response;
}

// Server-sent events over POST: read the body stream, one "data:" line per event.
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data: ")) yield line.slice(6);
      }
    }
  }
}

function showSession() {
  const token = sessionStorage.getItem(STORAGE_KEY);
  // A token is "<session id>.<timestamp>.<signature>".
  document.getElementById("session").textContent = token
    ? token.split(".").slice(0, -2).join(".")
    : "(new)";
}

function addLine(className, text) {
  const line = document.createElement("p");
  line.className = className;
  line.textContent = text;
  document.getElementById("transcript").append(line);
  return line;
}

document.getElementById("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("message");
  const message = input.value;
  input.value = "";
  addLine("turn you", message);
  const reply = addLine("turn reply", "");
  const response = await sessionFetch("/chat", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message }),
  });
  showSession();
  for await (const data of events(response)) {
    if (data.startsWith("[DONE]")) {
      reply.dataset.done = "true";
    } else {
      reply.textContent += (reply.textContent ? " " : "") + data;
    }
  }
});

showSession();
