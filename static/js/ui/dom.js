// DOM helpers. User data only ever reaches the page as text (textContent / text nodes), never as
// HTML: a message like <img src=x onerror=...> is displayed, not parsed.

/**
 * Creates an element. `attributes` are set with setAttribute (or as properties for `hidden`,
 * `disabled`, event handlers `on<event>`); children are nodes or strings (made text nodes).
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "hidden" || name === "disabled") node[name] = Boolean(value);
    else if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces all children of `node`. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/**
 * Makes `nodes` the children of `parent`, in order, moving only what is out of place and removing
 * the rest. Nodes that stay are not re-created: a person may be pressing one of them (a click is
 * lost when the element under the pointer is replaced between the press and the release).
 */
export function placeChildren(parent, nodes) {
  nodes.forEach((node, position) => {
    const current = parent.children[position];
    if (current !== node) parent.insertBefore(node, current || null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}

export const byId = (id) => document.getElementById(id);

export function show(node, visible) {
  node.hidden = !visible;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export const formatTime = (ts) => timeFormat.format(new Date(ts));
export const formatFull = (ts) => fullFormat.format(new Date(ts));
export const formatDateTime = (ts) => dateTimeFormat.format(new Date(ts));

export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function formatDay(ts) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(ts) === dayKey(today.getTime())) return "Today";
  if (dayKey(ts) === dayKey(yesterday.getTime())) return "Yesterday";
  return dayFormat.format(new Date(ts));
}

/** Text for an error shown to the user (ApiError carries the server's reason as userMessage). */
export function errorMessage(error) {
  return (error && (error.userMessage || error.message)) || "Something went wrong.";
}
