// The signed session token travels in a header, not the cookie: the server
// echoes it when it issues or refreshes one, the helper keeps it in
// sessionStorage (one per tab) and sends it back on every request.
import { createSessionFetch } from "/neatlogs-session.js";

// "omit": this app also reads its cookie, which every tab shares; the header is per tab.
const sessionFetch = createSessionFetch({ storage: "tab", credentials: "omit" });

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
  document.getElementById("session").textContent = sessionFetch.sessionId() ?? "(new)";
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
