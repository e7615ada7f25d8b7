// In-memory model of the signed-in user's world: connection, contacts, requests, conversations.
// Every mutation goes through a method that emits a "change" event naming what changed, so the UI
// re-renders only the parts concerned. No I/O here.

export const Topic = Object.freeze({
  CONNECTION: "connection",
  CONTACTS: "contacts",
  REQUESTS: "requests",
  CONVERSATION: "conversation", // detail.email
  ACTIVE: "active",
  NOTICE: "notice",
  SETTINGS: "settings",
  DEVICE: "device",
});

export class AppState extends EventTarget {
  constructor() {
    super();
    this.me = null; // {id, email}
    this.ownIdentityKey = null;
    this.device = "loading"; // loading | ready | needs-setup | replaced
    this.connection = "connecting";
    this.contacts = new Map(); // email -> {email, since, unread, typing, identity}
    this.requests = { incoming: [], outgoing: [] };
    this.conversations = new Map(); // email -> [message records], oldest first
    this.loaded = new Set(); // conversations read from storage
    this.active = null;
    this.notice = null; // {text, kind: "error"|"info"}
    this.settings = { notifications: false };
  }

  emit(topic, detail = {}) {
    this.dispatchEvent(new CustomEvent("change", { detail: { topic, ...detail } }));
  }

  setMe(me) {
    this.me = me;
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
    if (this.active && !next.has(this.active) && !this.conversations.has(this.active)) this.active = null;
    this.emit(Topic.CONTACTS);
  }

  updateContact(email, fields) {
    const contact = this.contacts.get(email);
    if (!contact) return;
    Object.assign(contact, fields);
    this.emit(Topic.CONTACTS);
    if (email === this.active) this.emit(Topic.CONVERSATION, { email });
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

  setRequests(requests) {
    this.requests = { incoming: requests.incoming || [], outgoing: requests.outgoing || [] };
    this.emit(Topic.REQUESTS);
  }

  // --- conversations ---------------------------------------------------------------------------

  setActive(email) {
    this.active = email;
    this.emit(Topic.ACTIVE);
  }

  setConversation(email, messages) {
    this.conversations.set(email, messages);
    this.loaded.add(email);
    this.touchContact(email, messages);
    this.emit(Topic.CONVERSATION, { email });
  }

  /** Inserts or replaces one message (by id), keeping time order. */
  upsertMessage(message) {
    const list = this.conversations.get(message.contact) || [];
    const index = list.findIndex((m) => m.id === message.id);
    if (index >= 0) list[index] = message;
    else {
      list.push(message);
      list.sort((a, b) => a.ts - b.ts || String(a.id).localeCompare(String(b.id)));
    }
    this.conversations.set(message.contact, list);
    this.touchContact(message.contact, list);
    this.emit(Topic.CONVERSATION, { email: message.contact });
  }

  touchContact(email, list) {
    const contact = this.contacts.get(email);
    if (contact && list.length) {
      const last = list[list.length - 1].ts;
      if (last !== contact.lastAt) {
        contact.lastAt = last;
        this.emit(Topic.CONTACTS);
      }
    }
  }
}
