// Conversations as this tab shows them: which one is open, which are loaded from storage, and each
// contact's unread count and time of the last message. Reads storage, writes state only.
//
// A loaded conversation is a window of it (../state.js): its latest LATEST_PAGE messages when it
// is opened, then pages of PAGE at either end as the user scrolls, read through the IndexedDB index
// `history` (../storage.js AccountStore.page). Nothing here reads a whole conversation: opening one
// of 10,000 messages reads 61 records.
const LATEST_PAGE = 60;
const PAGE = 100;

export class Conversations {
  constructor({ state, store }) {
    this.state = state;
    this.store = store;
    this.reading = new Set(); // "<email> <edge>": pages being read
  }

  async refreshCounters(email) {
    const [unread, last] = await Promise.all([
      this.store.count("messages", { index: "unread", prefix: [email, 1] }),
      this.store.last("messages", "conversation", [email]),
    ]);
    this.state.updateContact(email, { unread, lastAt: last ? last.ts : 0 });
  }

  /** Reads `limit` messages next to `before`/`after` (or the latest); one more tells whether there are more. */
  async read(email, { before = null, after = null, limit }) {
    const page = await this.store.page("messages", "history", [email], { before, after, limit: limit + 1 });
    const more = page.length > limit;
    if (!more) return { page, more };
    return { page: after ? page.slice(0, limit) : page.slice(1), more };
  }

  /** The latest messages of the conversation become its window (opening it, "Jump to latest"). */
  async reload(email) {
    const { page, more } = await this.read(email, { limit: LATEST_PAGE });
    this.state.setConversation(email, page, { hasOlder: more });
    await this.refreshCounters(email);
  }

  /**
   * The window read again after another tab changed the conversation: as many of the latest
   * messages as it holds. A window away from the latest (the user reads older messages) stays.
   */
  async refresh(email) {
    const view = this.state.windowOf(email);
    if (view && view.hasNewer) return;
    const { page, more } = await this.read(email, { limit: Math.max(LATEST_PAGE, view ? view.messages.length : 0) });
    this.state.setConversation(email, page, { hasOlder: more });
  }

  loadOlder(email) {
    return this.extend(email, "older");
  }

  loadNewer(email) {
    return this.extend(email, "newer");
  }

  /** A page next to an end of the window, if there is more beyond it and none is being read. */
  async extend(email, edge) {
    const view = this.state.windowOf(email);
    const key = `${email} ${edge}`;
    if (!view || !view.messages.length || this.reading.has(key)) return;
    if (!(edge === "older" ? view.hasOlder : view.hasNewer)) return;
    const end = edge === "older" ? view.messages[0] : view.messages[view.messages.length - 1];
    this.reading.add(key);
    try {
      const at = [end.ts, end.id];
      const { page, more } = await this.read(email, edge === "older" ? { before: at, limit: PAGE } : { after: at, limit: PAGE });
      // The window may have been read afresh or moved meanwhile: the page joins only the end it was read for.
      const now = this.state.windowOf(email);
      const current = now && (edge === "older" ? now.messages[0] : now.messages[now.messages.length - 1]);
      if (!current || current.id !== end.id) return;
      this.state.extendConversation(email, edge, page, more);
    } finally {
      this.reading.delete(key);
    }
  }

  async open(email) {
    this.state.setActive(email);
    if (!this.state.loaded.has(email)) await this.reload(email);
  }

  close() {
    this.state.setActive(null);
  }
}
