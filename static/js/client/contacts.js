// Contacts and contact requests: the server's lists mirrored into storage and state, re-read on
// every connect and on every contact push (pushes are at-most-once), and the user's requests,
// answers and removals (../api.js contactsApi).
import { contactsApi } from "../api.js";

export class Contacts {
  constructor({ state, store, tabs, conversations, keys, report }) {
    this.state = state;
    this.store = store;
    this.tabs = tabs;
    this.conversations = conversations;
    this.keys = keys;
    this.report = report;
  }

  /** Re-reads contacts and requests (events missed while offline are not replayed). */
  async sync() {
    try {
      await Promise.all([this.syncContacts(), this.syncRequests()]);
    } catch (error) {
      this.report(error);
      return;
    }
    // A contact may have set up a new browser while we were away.
    for (const email of this.state.contacts.keys()) this.keys.checkIdentity(email);
  }

  async syncContacts() {
    const list = await contactsApi.list();
    const stored = await this.store.all("contacts");
    const current = new Set(list.map((c) => c.email));
    await this.store.write([
      ...stored.filter((c) => !current.has(c.email)).map((c) => ({ delete: "contacts", key: [c.email] })),
      ...list.map((c) => ({ put: "contacts", value: { email: c.email, since: c.since } })),
    ]);
    const known = new Set(this.state.contacts.keys());
    this.state.setContacts(list);
    for (const email of current) {
      if (!known.has(email)) {
        this.conversations.refreshCounters(email);
        this.keys.refreshIdentity(email);
      }
    }
    this.tabs.broadcast({ type: "contacts" });
  }

  async syncRequests() {
    const requests = await contactsApi.requests();
    const stored = await this.store.all("contactRequests");
    await this.store.write([
      ...stored.map((r) => ({ delete: "contactRequests", key: [r.id] })),
      ...requests.incoming.map((r) => ({ put: "contactRequests", value: { ...r, direction: "in" } })),
      ...requests.outgoing.map((r) => ({ put: "contactRequests", value: { ...r, direction: "out" } })),
    ]);
    this.state.setRequests(requests);
  }

  /** Another tab changed the contacts: re-read them from storage. */
  async reloadLocal() {
    const contacts = await this.store.all("contacts");
    this.state.setContacts(contacts);
    for (const c of contacts) this.conversations.refreshCounters(c.email);
  }

  async onRemoved() {
    await this.syncContacts().catch((e) => this.report(e));
  }

  async request(email) {
    const result = await contactsApi.request(email);
    await this.sync();
    return result;
  }

  async answer(id, action) {
    await contactsApi.answer(id, action);
    await this.sync();
  }

  async remove(email) {
    await contactsApi.remove(email);
    await this.syncContacts();
  }
}
