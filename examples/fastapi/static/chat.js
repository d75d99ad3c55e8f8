// The signed session token travels in a header, not the cookie: the server
// echoes it when it issues or refreshes one, the helper keeps it in
// sessionStorage (one per tab) and sends it back on every request.
import { createSessionFetch } from "/neatlogs-session.js";

// "omit": this app also reads its cookie, which every tab shares; the header is per tab.
// Each answer also names its turn, in a "feedback" event: the thumbs under an
// answer send a judgment of that turn, with the token that event carried.
const sessionFetch = createSessionFetch({ storage: "tab", credentials: "omit" });

// Server-sent events over POST: read the body stream, one { event, data } per event.
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const fields = { event: "message", data: "" };
      for (const line of buffer.slice(0, end).split("\n")) {
        const colon = line.indexOf(": ");
        if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
      }
      buffer = buffer.slice(end + 2);
      yield fields;
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

// Thumbs up / down under an answer: they judge the turn `token` names, not the latest one.
function addFeedback(reply, token, response) {
  const bar = document.createElement("p");
  bar.className = "feedback";
  const status = document.createElement("span");
  status.className = "status";
  status.setAttribute("role", "status");
  const buttons = [
    ["👍", "Good answer", 1],
    ["👎", "Bad answer", 0],
  ].map(([text, label, score]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.title = label;
    button.setAttribute("aria-label", label);
    button.addEventListener("click", () => vote(score, button));
    return button;
  });

  async function vote(score, chosen) {
    buttons.forEach((button) => (button.disabled = true));
    status.textContent = "Sending…";
    try {
      const answer = await sessionFetch.feedback({ score }, { token, response });
      if (answer.ok) {
        chosen.setAttribute("aria-pressed", "true");
        status.textContent = "Thanks for your feedback!";
        bar.dataset.recorded = String(score);
        return;
      }
      const { detail } = await answer.json().catch(() => ({}));
      status.textContent = `Sorry, your vote was not recorded${detail ? `: ${detail}` : ""}.`;
    } catch {
      status.textContent = "Sorry, your vote could not be sent. Please try again.";
    }
    bar.dataset.refused = "true";
    buttons.forEach((button) => (button.disabled = false));
  }

  bar.append(...buttons, status);
  reply.after(bar);
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
  let token = null; // the answer names its turn before it is done, unless feedback is off
  for await (const { event: kind, data } of events(response)) {
    if (kind === "feedback") {
      token = data;
    } else if (data.startsWith("[DONE]")) {
      if (token) addFeedback(reply, token, response);
      reply.dataset.done = "true";
    } else {
      reply.textContent += (reply.textContent ? " " : "") + data;
    }
  }
});

showSession();
