// Inbox: incoming `message` frames. An envelope is acknowledged only after its decrypted result and
// the new session state are stored (../session.js decryptFrom commits both in one transaction); a
// redelivered one is recognised by its server id, acknowledged again and not shown twice. A new
// message ends the sender's typing indicator, is shown, counted, told to the other tabs, notified
// when the tab is hidden, and marked read when its conversation is open and visible.
import { decryptFrom } from "../session.js";

export class Inbox {
  constructor({ state, store, tabs, conversations, keys, typing, receipts, notifications, report }) {
    this.state = state;
    this.store = store;
    this.tabs = tabs;
    this.conversations = conversations;
    this.keys = keys;
    this.typing = typing;
    this.receipts = receipts;
    this.notifications = notifications;
    this.report = report;
  }

  async onEnvelope(frame) {
    if (!frame || typeof frame.id !== "number" || typeof frame.from !== "string") return;
    let result;
    try {
      result = await decryptFrom(this.store, frame, ({ text, failed }) => {
        const record = {
          id: `in:${frame.id}`,
          serverId: frame.id,
          contact: frame.from,
          direction: "in",
          text: text === null ? "" : text,
          ts: Date.parse(frame.sent_at) || Date.now(),
          status: "received",
          unread: 1,
        };
        if (failed) record.failed = failed;
        return record;
      });
    } catch (error) {
      // Storage failure or no keys: not acknowledged, so the server keeps it for later.
      this.report(error, "A message could not be stored: ");
      return;
    }
    this.receipts.ack(frame.id);
    if (result.status === "duplicate") return;
    const contact = this.state.contacts.get(frame.from);
    if (contact && contact.typing) this.typing.show(frame.from, false);
    if (this.state.loaded.has(frame.from)) this.state.upsertMessage(result.message);
    await this.conversations.refreshCounters(frame.from);
    if (result.identityChanged) await this.keys.refreshIdentity(frame.from);
    this.tabs.broadcast({ type: "conversation", email: frame.from });
    this.notifications.notify(frame.from);
    this.receipts.markActiveRead();
  }
}
