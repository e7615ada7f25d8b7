// Conversations as this tab shows them: which one is open, which are loaded from storage, and each
// contact's unread count and time of the last message. Reads storage, writes state only.
export class Conversations {
  constructor({ state, store }) {
    this.state = state;
    this.store = store;
  }

  async refreshCounters(email) {
    const [unread, last] = await Promise.all([
      this.store.count("messages", { index: "unread", prefix: [email, 1] }),
      this.store.last("messages", "conversation", [email]),
    ]);
    this.state.updateContact(email, { unread, lastAt: last ? last.ts : 0 });
  }

  async reload(email) {
    const messages = await this.store.all("messages", { index: "conversation", prefix: [email] });
    this.state.setConversation(email, messages);
    await this.refreshCounters(email);
  }

  async open(email) {
    this.state.setActive(email);
    if (!this.state.loaded.has(email)) await this.reload(email);
  }

  close() {
    this.state.setActive(null);
  }
}
