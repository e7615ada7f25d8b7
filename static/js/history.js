// A conversation's window (state.js) filled from IndexedDB a page at a time, through the `history`
// index (storage.js): opening a conversation of 10,000 messages reads its latest LATEST_PAGE, and
// scrolling reads PAGE more at either end. Nothing here reads a whole conversation.
import { WINDOW_MAX } from "./state.js";

const LATEST_PAGE = 60;
const PAGE = 100;

export class ConversationHistory {
  constructor({ state, store }) {
    this.state = state;
    this.store = store;
    this.reading = new Set(); // "<email> <edge>" pages being read
  }

  /** Reads `limit` messages next to `from`; one more tells whether there are more behind them. */
  async read(email, { before = null, after = null, limit }) {
    const page = await this.store.page("messages", "history", [email], { before, after, limit: limit + 1 });
    const more = page.length > limit;
    if (more) return { page: after ? page.slice(0, limit) : page.slice(1), more };
    return { page, more };
  }

  /** The latest messages of a conversation become its window. */
  async loadLatest(email) {
    const { page, more } = await this.read(email, { limit: LATEST_PAGE });
    this.state.setConversation(email, page, { hasOlder: more });
  }

  /**
   * The window read again after another tab changed the conversation: as many of the latest
   * messages as it holds. A window away from the latest (the user reads older messages) stays.
   */
  async refresh(email) {
    const view = this.state.conversations.get(email);
    if (view && view.hasNewer) return;
    const size = Math.min(WINDOW_MAX, Math.max(LATEST_PAGE, view ? view.messages.length : 0));
    const { page, more } = await this.read(email, { limit: size });
    this.state.setConversation(email, page, { hasOlder: more });
  }

  loadOlder(email) {
    return this.extend(email, "older");
  }

  loadNewer(email) {
    return this.extend(email, "newer");
  }

  async extend(email, edge) {
    const view = this.state.conversations.get(email);
    const key = `${email} ${edge}`;
    if (!view || !view.messages.length || this.reading.has(key)) return;
    if (!(edge === "older" ? view.hasOlder : view.hasNewer)) return;
    const end = edge === "older" ? view.messages[0] : view.messages[view.messages.length - 1];
    this.reading.add(key);
    try {
      const at = [end.ts, end.id];
      const { page, more } = await this.read(email, edge === "older" ? { before: at, limit: PAGE } : { after: at, limit: PAGE });
      // The window may have been read afresh or moved meanwhile: the page joins only the end it was read for.
      const now = this.state.conversations.get(email);
      const current = now && (edge === "older" ? now.messages[0] : now.messages[now.messages.length - 1]);
      if (now !== view || !current || current.id !== end.id) return;
      this.state.extendConversation(email, edge, page, more);
    } finally {
      this.reading.delete(key);
    }
  }
}
