// Building the page: elements from data through textContent and attributes only, never
// through HTML parsing, as span names and attributes come from any sender.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function $(id) {
  return document.getElementById(id);
}

export function statsLine(parts) {
  return h("div", { class: "stats" }, parts.filter(Boolean).map((p) => h("span", { class: "stat" }, p)));
}

// One line of conversation: who spoke, and what, clamped to a few lines.
export function message(kind, text) {
  return h(
    "div",
    { class: `msg msg-${kind}` },
    h("span", { class: "msg-role" }, kind === "in" ? "input" : "output"),
    h("span", { class: "msg-text", title: text }, text),
  );
}
