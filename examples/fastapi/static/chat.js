// The signed session token travels in a header, not the cookie: the server
// echoes it when it issues or refreshes one, the helper keeps it in
// sessionStorage (one per tab) and sends it back on every request.
import { createSessionFetch } from "/neatlogs-session.js";

// "omit": this app also reads its cookie, which every tab shares; the header is per tab.
// Each reply also names its turn (X-Neatlogs-Feedback-Token): the thumbs under an
// answer send a judgment of that turn, with the response that carried it.
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

// Thumbs up / down under an answer: they judge the turn of `response`, not the latest one.
function addFeedback(reply, response) {
  if (!sessionFetch.feedbackToken(response)) return; // this reply named no turn
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
      const answer = await sessionFetch.feedback({ score }, { response });
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
  for await (const data of events(response)) {
    if (data.startsWith("[DONE]")) {
      addFeedback(reply, response);
      reply.dataset.done = "true";
    } else {
      reply.textContent += (reply.textContent ? " " : "") + data;
    }
  }
});

showSession();
