// The open conversation's messages: one <li> per message of the state's window (state.js), made once
// and then updated in place. A new message is inserted where it belongs, a status change rewrites
// its own status line, a page from storage joins at one end: no event rebuilds the list, so the
// cost of an event is that of what changed, not of the conversation (issue #14).
//
// Day separators: the separator of a day sits right before the first message of that day in the
// window (`days`); inserting and removing keep that true locally.
//
// Scrolling: near the top (or the bottom, when the window does not reach the latest) the next page is
// asked for; what the user is reading stays where it is while pages join or leave (the element at the
// top of the view is the anchor; the browser's own scroll anchoring is off for the list in app.css).
import { compareMessages, isGroupKey, locate, Topic } from "../state.js";
import { dayKey, el, formatDay, formatFull, formatTime } from "./dom.js";

const STATUS_TEXT = {
  sending: "Sending…",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  held: "Not sent: safety number changed",
  failed: "Not sent",
};

/**
 * The status of a message we sent to a group, once the server stored it: how many of the members
 * it went to read it, or received it (docs/PROTOCOL.md section 23); null for anything else.
 */
export function groupStatusText(message) {
  const counts = message.counts;
  if (!counts || !["sent", "delivered", "read"].includes(message.status) || !(counts.of > 0)) return null;
  if (counts.read > 0) return `Read by ${counts.read} of ${counts.of}`;
  if (counts.delivered > 0) return `Delivered to ${counts.delivered} of ${counts.of}`;
  return STATUS_TEXT.sent;
}

function sameCounts(a, b) {
  const x = a.counts || {};
  const y = b.counts || {};
  return x.delivered === y.delivered && x.read === y.read && x.of === y.of;
}

// A page is asked for when fewer than this many pixels are left above (or below) the view.
const LOAD_MARGIN_PX = 800;
// "Jump to latest" shows when the latest message is more than this many views below.
const JUMP_AFTER_VIEWS = 2;
// Near the bottom: a new message keeps the view at the bottom.
const BOTTOM_SLACK_PX = 80;

export function mountMessageList({ state, actions, list, jump, onError }) {
  const items = new Map(); // message id -> {li, message}
  const days = new Map(); // day key -> separator <li>
  let email = null; // whose messages the list shows
  let placeholder = null;

  // --- elements ---------------------------------------------------------------------------------

  function statusLine(message) {
    if (message.direction === "in") return [];
    const text = groupStatusText(message) || STATUS_TEXT[message.status] || message.status;
    const full = message.status === "failed" && message.error ? `${text}: ${message.error}` : text;
    const status = el("span", { class: `status status-${message.status}`, "data-status": message.status, text: full });
    if (message.status !== "failed") return [status];
    const retry = el("button", {
      type: "button",
      class: "secondary small retry",
      "aria-label": "Retry sending",
      text: "Retry",
      onclick: () => actions.retryMessage(message.id).catch(onError),
    });
    return [status, retry];
  }

  function messageItem(message) {
    if (message.notice) {
      // A line of the group's history: who joined, left, renamed it.
      return el("li", { class: "message notice", "data-id": message.id, "data-direction": "notice", text: message.text });
    }
    const classes = ["message", message.direction === "in" ? "incoming" : "outgoing"];
    if (message.failed) classes.push("undecryptable");
    const body = message.failed
      ? el("p", { class: "text notice-text", text: "This message could not be decrypted." })
      : el("p", { class: "text", text: message.text });
    // In a group, who wrote each received message.
    const sender = message.direction === "in" && isGroupKey(message.contact) && message.sender;
    return el(
      "li",
      {
        class: classes.join(" "),
        "data-id": message.id,
        "data-direction": message.direction,
        "data-status": message.status || "",
      },
      sender ? el("span", { class: "sender", text: message.sender }) : null,
      body,
      el(
        "span",
        { class: "meta" },
        el("time", { datetime: new Date(message.ts).toISOString(), title: formatFull(message.ts), text: formatTime(message.ts) }),
        statusLine(message),
      ),
    );
  }

  /** Brings an element up to date with `message`: only its status line when only that changed. */
  function update(entry, message) {
    const before = entry.message;
    entry.message = message;
    const rebuild = before.notice !== message.notice || before.direction !== message.direction;
    if (rebuild || before.text !== message.text || before.failed !== message.failed) {
      const li = messageItem(message);
      entry.li.replaceWith(li);
      entry.li = li;
      return;
    }
    if (message.notice) return; // a line has no status
    if (before.status === message.status && before.error === message.error && sameCounts(before, message)) return;
    entry.li.dataset.status = message.status || "";
    const meta = entry.li.querySelector(".meta");
    for (const node of meta.querySelectorAll(".status, .retry")) node.remove();
    meta.append(...statusLine(message));
  }

  function after(node, added) {
    list.insertBefore(added, node ? node.nextSibling : list.firstChild);
  }

  /** Inserts the element of `message`, at `index` in the window `messages` (its neighbours are shown). */
  function insert(message, index, messages) {
    if (placeholder) {
      placeholder.remove();
      placeholder = null;
    }
    const li = messageItem(message);
    items.set(message.id, { li, message });
    const day = dayKey(message.ts);
    const previous = index > 0 ? items.get(messages[index - 1].id) : null;
    if (previous && dayKey(previous.message.ts) === day) {
      after(previous.li, li);
      return;
    }
    // The first of its day in the window: right after the day's separator (which precedes the
    // next message, of the same day) or after a new one.
    let separator = days.get(day);
    if (!separator) {
      separator = el("li", { class: "day", role: "separator" }, el("span", { text: formatDay(message.ts) }));
      days.set(day, separator);
      after(previous ? previous.li : null, separator);
    }
    after(separator, li);
  }

  function remove(message) {
    const entry = items.get(message.id);
    if (!entry) return;
    entry.li.remove();
    items.delete(message.id);
    const day = dayKey(message.ts);
    const separator = days.get(day);
    const next = separator && separator.nextElementSibling;
    if (separator && (!next || next.classList.contains("day"))) {
      separator.remove();
      days.delete(day);
    }
  }

  function showPlaceholder() {
    placeholder = el("li", { class: "day muted", text: "No messages yet. Say hello!" });
    list.append(placeholder);
  }

  // --- scrolling --------------------------------------------------------------------------------

  const fromBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight;

  function scrollToBottom() {
    list.scrollTop = list.scrollHeight;
  }

  /**
   * The message at the top of the view, and where it is: to put it back there after a change. Not a
   * day separator: a separator moves up with its day when older messages of that day join.
   */
  function anchor() {
    const top = list.getBoundingClientRect().top;
    for (const node of visibleCandidates()) {
      const rect = node.getBoundingClientRect();
      if (rect.bottom > top && node.classList.contains("message")) return { node, top: rect.top };
    }
    return null;
  }

  // The list's children from about the view's top (found by bisection, the list is in page order).
  function* visibleCandidates() {
    const children = list.children;
    const top = list.getBoundingClientRect().top;
    let low = 0;
    let high = children.length - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (children[middle].getBoundingClientRect().bottom > top) high = middle;
      else low = middle + 1;
    }
    for (let i = low; i < children.length; i += 1) yield children[i];
  }

  /** Applies `change` to the list keeping the view: at the bottom, or on what the user was reading. */
  function steady(change) {
    const atBottom = fromBottom() < BOTTOM_SLACK_PX;
    const mark = atBottom ? null : anchor();
    change();
    const view = state.windowOf(email);
    if (atBottom && !(view && view.hasNewer)) scrollToBottom();
    else if (mark && mark.node.isConnected) list.scrollTop += mark.node.getBoundingClientRect().top - mark.top;
  }

  function showJump() {
    const view = state.windowOf(email);
    jump.hidden = !(view && (view.hasNewer || fromBottom() > JUMP_AFTER_VIEWS * list.clientHeight));
  }

  /** Asks for the next page when the view is near an end of the window that has more behind it. */
  function maybeLoad() {
    const view = state.windowOf(email);
    if (!view) return;
    if (view.hasOlder && list.scrollTop < LOAD_MARGIN_PX) actions.loadOlder(email).catch(onError);
    else if (view.hasNewer && fromBottom() < LOAD_MARGIN_PX) actions.loadNewer(email).catch(onError);
  }

  list.addEventListener("scroll", () => {
    maybeLoad();
    showJump();
  }, { passive: true });

  jump.addEventListener("click", async () => {
    const view = state.windowOf(email);
    try {
      if (view && view.hasNewer) await actions.jumpToLatest(email);
    } catch (error) {
      onError(error);
    }
    scrollToBottom();
    showJump();
  });

  // --- state events -----------------------------------------------------------------------------

  /** The whole window: built when a conversation is opened, brought up to date when it was read afresh. */
  function render({ opened = false } = {}) {
    email = state.active;
    list.dataset.contact = email || "";
    const view = state.windowOf(email);
    const messages = view ? view.messages : [];
    if (opened) {
      items.clear();
      days.clear();
      placeholder = null;
      list.replaceChildren();
      messages.forEach((message, index) => insert(message, index, messages));
      if (!messages.length) showPlaceholder();
      scrollToBottom();
    } else {
      // The same conversation read afresh: only what differs changes.
      steady(() => {
        const kept = new Set(messages.map((message) => message.id));
        for (const entry of [...items.values()]) if (!kept.has(entry.message.id)) remove(entry.message);
        messages.forEach((message, index) => {
          const entry = items.get(message.id);
          if (entry) update(entry, message);
          else insert(message, index, messages);
        });
        if (!messages.length && !placeholder) showPlaceholder();
      });
    }
    showJump();
    maybeLoad();
  }

  function applyMessages({ messages, dropped }) {
    const view = state.windowOf(email);
    if (!view) return;
    steady(() => {
      for (const message of dropped) remove(message);
      const added = [];
      for (const message of messages) {
        const entry = items.get(message.id);
        if (entry) update(entry, message);
        else added.push(message);
      }
      added.sort(compareMessages);
      for (const message of added) {
        const [index, found] = locate(view.messages, message);
        if (found) insert(message, index, view.messages);
      }
      if (!view.messages.length && !placeholder) showPlaceholder();
    });
    showJump();
  }

  function applyPage({ edge, count, dropped }) {
    const view = state.windowOf(email);
    if (!view) return;
    steady(() => {
      for (const message of dropped) remove(message);
      const start = edge === "older" ? 0 : view.messages.length - count;
      for (let i = start; i < start + count; i += 1) insert(view.messages[i], i, view.messages);
    });
    showJump();
    // Dragged to an end at once: the next page too.
    requestAnimationFrame(maybeLoad);
  }

  state.addEventListener("change", (event) => {
    const { topic } = event.detail;
    if (!email || event.detail.email !== email || email !== state.active) return;
    if (topic === Topic.CONVERSATION) render();
    else if (topic === Topic.MESSAGES) applyMessages(event.detail);
    else if (topic === Topic.WINDOW) applyPage(event.detail);
  });

  return { render };
}
