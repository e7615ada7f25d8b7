// In-memory model of the signed-in user's world: connection, contacts, requests, conversations.
// Every mutation goes through a method that emits a "change" event naming what changed, so the UI
// re-renders only the parts concerned. No I/O here.
//
// A group (docs/PROTOCOL.md part III) is a conversation too: its key is groupKey(id), and its
// messages have `contact` set to that key, so windows, counters and the storage indexes serve
// contacts and groups alike (client/groupkey.js).
import { groupKey, isGroupKey } from "./client/groupkey.js";

export const Topic = Object.freeze({
  CONNECTION: "connection",
  CONTACTS: "contacts", // the list: contacts added or removed, or their order changed
  CONTACT: "contact", // detail.email: one contact's row (unread, typing, identity)
  REQUESTS: "requests",
  CONVERSATION: "conversation", // detail.email: a conversation's window was (re)loaded
  MESSAGES: "messages", // detail {email, messages, dropped}: messages of a window added or changed
  WINDOW: "window", // detail {email, edge: "older"|"newer", count, dropped}: a page joined the window
  ACTIVE: "active",
  NOTICE: "notice",
  SETTINGS: "settings",
  DEVICE: "device",
  DEVICES: "devices", // the account's devices (the Devices panel)
  GROUPS: "groups", // the list of groups: groups added, left, or their order changed
  GROUP: "group", // detail.email: one group's row (its key: name, members, unread, typing, held)
});

export { GROUP_PREFIX, groupIdOf, groupKey, isGroupKey } from "./client/groupkey.js";

// A conversation in memory is a window of it: at most WINDOW_MAX messages in a row, the latest ones
// unless the user scrolled up (then `hasNewer`). Older and newer pages come from IndexedDB
// (client/conversations.js), so the page holds a few hundred messages whatever the length of the conversation.
export const WINDOW_MAX = 300;

/** Display order: time, then id (code unit order, the order of IndexedDB's `history` index). */
export function compareMessages(a, b) {
  if (a.ts !== b.ts) return a.ts - b.ts;
  if (a.id === b.id) return 0;
  return String(a.id) < String(b.id) ? -1 : 1;
}

/** The position of `message` in the sorted `list`: [index, whether it is there]. */
export function locate(list, message) {
  const last = list.length - 1;
  // Most messages are new and the latest: no search then.
  if (last < 0 || compareMessages(list[last], message) < 0) return [list.length, false];
  let low = 0;
  let high = last;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const order = compareMessages(list[middle], message);
    if (order === 0) return [middle, true];
    if (order < 0) low = middle + 1;
    else high = middle - 1;
  }
  return [low, false];
}

export class AppState extends EventTarget {
  constructor() {
    super();
    this.me = null; // {id, email, device: {id, name} | null} (auth/me; device: this browser's)
    this.ownIdentityKey = null;
    this.device = "loading"; // loading | ready | needs-setup | replaced
    this.connection = "connecting";
    this.contacts = new Map(); // email -> {email, since, unread, typing, identity}
    this.requests = { incoming: [], outgoing: [] };
    this.conversations = new Map(); // email -> [message records of its window], oldest first
    this.edges = new Map(); // email -> {hasOlder, hasNewer}: what lies beyond the window in storage
    this.loaded = new Set(); // conversations whose window was read from storage
    this.active = null;
    this.notice = null; // {text, kind: "error"|"info"}
    this.settings = { notifications: false };
    this.devices = null; // {list: [{id, name, created_at, last_seen_at, current}], max}, once read
    // key -> {key, id, name, epoch, role, members: [{email, role, devices}], unread, typing: [emails],
    // lastAt, held: [emails whose safety number changed, not accepted], left}
    this.groups = new Map();
  }

  emit(topic, detail = {}) {
    this.dispatchEvent(new CustomEvent("change", { detail: { topic, ...detail } }));
  }

  setMe(me) {
    this.me = me;
  }

  /** This browser's device number for the signed-in account (null: none yet). */
  get deviceId() {
    return (this.me && this.me.device && this.me.device.id) || null;
  }

  setDevices(list, max) {
    this.devices = { list, max };
    this.emit(Topic.DEVICES);
  }

  setDevice(device) {
    this.device = device;
    this.emit(Topic.DEVICE);
  }

  setConnection(status) {
    this.connection = status;
    this.emit(Topic.CONNECTION);
  }

  setNotice(text, kind = "error") {
    this.notice = text ? { text, kind, at: Date.now() } : null;
    this.emit(Topic.NOTICE);
  }

  setSettings(settings) {
    this.settings = { ...this.settings, ...settings };
    this.emit(Topic.SETTINGS);
  }

  // --- contacts -----------------------------------------------------------------------------

  setContacts(list) {
    const next = new Map();
    for (const item of list) {
      const old = this.contacts.get(item.email);
      next.set(item.email, {
        email: item.email,
        since: item.since,
        unread: old ? old.unread : 0,
        typing: old ? old.typing : false,
        identity: old ? old.identity : null,
        lastAt: old ? old.lastAt : 0,
      });
    }
    this.contacts = next;
    if (this.active && !isGroupKey(this.active) && !next.has(this.active) && !this.conversations.has(this.active)) {
      this.active = null;
    }
    this.emit(Topic.CONTACTS);
  }

  /**
   * Changes one contact's fields: its row is updated; the list is re-ordered only when it moved.
   * A group key changes the group instead (conversations.js and receipts.js count for both).
   */
  updateContact(email, fields) {
    if (isGroupKey(email)) {
      this.updateGroup(email, fields);
      return;
    }
    const contact = this.contacts.get(email);
    if (!contact) return;
    const lastAt = contact.lastAt;
    Object.assign(contact, fields);
    this.emit(Topic.CONTACT, { email });
    if (contact.lastAt !== lastAt) this.emit(Topic.CONTACTS);
  }

  removeContact(email) {
    this.contacts.delete(email);
    if (this.active === email) {
      this.active = null;
      this.emit(Topic.ACTIVE);
    }
    this.emit(Topic.CONTACTS);
  }

  /** Contacts, most recent conversation first, then alphabetically. */
  sortedContacts() {
    return [...this.contacts.values()].sort((a, b) => b.lastAt - a.lastAt || a.email.localeCompare(b.email));
  }

  // --- groups ---------------------------------------------------------------------------------

  /**
   * The groups as stored (client/groups.js): each keeps its counters, typing and held members
   * from before. A group left stays listed (its history is kept), and stays open if it is.
   */
  setGroups(list) {
    const next = new Map();
    for (const item of list) {
      const key = groupKey(item.id);
      const old = this.groups.get(key);
      next.set(key, {
        key,
        id: item.id,
        name: item.name ?? null,
        epoch: item.epoch,
        role: item.role,
        members: item.members || [],
        left: Boolean(item.left),
        unread: old ? old.unread : 0,
        typing: old ? old.typing : [],
        lastAt: old ? old.lastAt : 0,
        held: old ? old.held : [],
      });
    }
    this.groups = next;
    this.emit(Topic.GROUPS);
  }

  /** Changes one group's fields: its row is updated; the list is re-ordered only when it moved. */
  updateGroup(key, fields) {
    const group = this.groups.get(key);
    if (!group) return;
    const lastAt = group.lastAt;
    Object.assign(group, fields);
    this.emit(Topic.GROUP, { email: key });
    if (group.lastAt !== lastAt) this.emit(Topic.GROUPS);
  }

  /** Groups, most recent conversation first, then by name. */
  sortedGroups() {
    const label = (g) => g.name || g.id;
    return [...this.groups.values()].sort((a, b) => b.lastAt - a.lastAt || label(a).localeCompare(label(b)));
  }

  setRequests(requests) {
    this.requests = { incoming: requests.incoming || [], outgoing: requests.outgoing || [] };
    this.emit(Topic.REQUESTS);
  }

  // --- conversations ---------------------------------------------------------------------------

  setActive(email) {
    this.active = email;
    this.emit(Topic.ACTIVE);
  }

  /** The messages of a conversation's window (empty if it was not loaded). */
  messagesOf(email) {
    return this.conversations.get(email) || [];
  }

  /** A conversation's window: {messages, hasOlder, hasNewer}, or null. */
  windowOf(email) {
    const messages = this.conversations.get(email);
    if (!messages) return null;
    return { messages, ...(this.edges.get(email) || { hasOlder: false, hasNewer: false }) };
  }

  /** A fresh window of a conversation: `messages` in display order. */
  setConversation(email, messages, { hasOlder = false, hasNewer = false } = {}) {
    this.conversations.set(email, messages);
    this.edges.set(email, { hasOlder, hasNewer });
    this.loaded.add(email);
    if (!hasNewer) this.touchContact(email, messages);
    this.emit(Topic.CONVERSATION, { email });
  }

  /** Inserts or replaces one message (by id), keeping display order. */
  upsertMessage(message) {
    this.upsertMessages([message]);
  }

  /**
   * Inserts or replaces messages (by id) in their conversations' windows, with one event per
   * conversation. A message beyond an end of a window that does not reach it stays out (it is read
   * when the user scrolls there). A window at the latest keeps its last WINDOW_MAX messages: the
   * oldest leave it (`dropped`), to be read again on the way up.
   */
  upsertMessages(messages) {
    const byContact = new Map();
    for (const message of messages) {
      if (!byContact.has(message.contact)) byContact.set(message.contact, []);
      byContact.get(message.contact).push(message);
    }
    for (const [email, changed] of byContact) {
      if (!this.conversations.has(email)) this.conversations.set(email, []);
      if (!this.edges.has(email)) this.edges.set(email, { hasOlder: false, hasNewer: false });
      const list = this.conversations.get(email);
      const edges = this.edges.get(email);
      const shown = [];
      for (const message of changed) {
        const [index, found] = locate(list, message);
        if (found) list[index] = message;
        else if (index === list.length && edges.hasNewer) continue;
        else if (index === 0 && edges.hasOlder) continue;
        else list.splice(index, 0, message);
        shown.push(message);
      }
      let dropped = [];
      if (!edges.hasNewer && list.length > WINDOW_MAX) {
        dropped = list.splice(0, list.length - WINDOW_MAX);
        edges.hasOlder = true;
      }
      if (!edges.hasNewer) this.touchContact(email, list);
      const gone = new Set(dropped.map((message) => message.id));
      const kept = shown.filter((message) => !gone.has(message.id));
      if (kept.length || dropped.length) this.emit(Topic.MESSAGES, { email, messages: kept, dropped });
    }
  }

  /**
   * A page read next to the window: `older` (before its first message) or `newer` (after its
   * last). The window keeps WINDOW_MAX messages: the far end gives way (`dropped`).
   */
  extendConversation(email, edge, page, more) {
    const list = this.conversations.get(email);
    const edges = this.edges.get(email);
    if (!list || !edges) return;
    let next;
    let dropped = [];
    if (edge === "older") {
      next = page.concat(list);
      edges.hasOlder = more;
      if (next.length > WINDOW_MAX) {
        dropped = next.splice(WINDOW_MAX);
        edges.hasNewer = true;
      }
    } else {
      next = list.concat(page);
      edges.hasNewer = more;
      if (next.length > WINDOW_MAX) {
        dropped = next.splice(0, next.length - WINDOW_MAX);
        edges.hasOlder = true;
      }
    }
    this.conversations.set(email, next);
    this.emit(Topic.WINDOW, { email, edge, count: page.length, dropped });
  }

  touchContact(email, list) {
    const contact = isGroupKey(email) ? this.groups.get(email) : this.contacts.get(email);
    if (contact && list.length) {
      const last = list[list.length - 1].ts;
      if (last > contact.lastAt) this.updateContact(email, { lastAt: last });
    }
  }
}
