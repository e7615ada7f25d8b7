// Receipts both ways. Ours: the `ack` of each stored envelope (a batch at once, after ACK_DELAY_MS)
// and the `read` of the open conversation's messages while the tab is visible, every frame within
// the server's MAX_IDS_PER_FRAME; one the server could not apply is sent again (../receipts.js
// ReceiptRetry). Both name copy ids (docs/PROTOCOL.md section 17.2). Theirs: the `delivered`/`read`
// pushes about our sent messages (message ids, section 17.3; also about those our other devices
// sent), and, since pushes are at-most-once, the `receipts` question asked on every connect about
// the messages still waiting for a read receipt and the received ones still unread here. Messages
// read on another of our devices (`read_elsewhere`, or `read` in that answer) are marked read here
// without a frame. Also keeps the receipts that overtook our `sent` (outbox.js takes them).
import { MAX_IDS_PER_FRAME, ReceiptRetry } from "../receipts.js";
import { laterStatus, withStatus } from "./status.js";

const ACK_DELAY_MS = 30;
// Unread messages marked read per frame and transaction: the server takes up to MAX_IDS_PER_FRAME,
// but writing that many records at once is one task of a few hundred milliseconds.
const READ_PAGE = 200;
// The server answers about at most this many envelopes per `receipts` question.
const RECEIPTS_MAX_IDS = 1000;

export class Receipts {
  constructor({ state, store, transport, tabs }) {
    this.state = state;
    this.store = store;
    this.transport = transport;
    this.tabs = tabs;
    this.pendingAcks = new Set();
    this.ackTimer = null;
    this.retry = new ReceiptRetry({ send: (frame) => this.transport.send(frame) });
    this.early = new Map(); // server id -> status seen before our `sent`
    this.marking = null; // markActiveRead under way
    this.markAgain = false;
  }

  /** Sends `type` frames for `ids`, at most MAX_IDS_PER_FRAME each; false if the socket took not all. */
  sendFrames(type, ids) {
    for (let start = 0; start < ids.length; start += MAX_IDS_PER_FRAME) {
      if (!this.transport.send({ type, ids: ids.slice(start, start + MAX_IDS_PER_FRAME) })) return false;
    }
    return true;
  }

  /** On every (re)connect: what waits for a retry goes now. */
  onConnect() {
    this.retry.flush();
  }

  stop() {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.retry.stop();
  }

  /** Takes an `error` frame; true if it was about an `ack`/`read` (then it is sent again). */
  onError(frame) {
    return this.retry.onError(frame);
  }

  ack(id) {
    this.pendingAcks.add(id);
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      const ids = [...this.pendingAcks];
      this.pendingAcks.clear();
      // If the socket is down the envelopes come back on reconnect and are acknowledged then.
      if (ids.length) this.sendFrames("ack", ids);
    }, ACK_DELAY_MS);
  }

  /** `read` for envelopes just stored as read (they arrived in the open conversation); a `read`
   *  marks delivered too. What the socket does not take goes on the next connect. */
  read(ids) {
    if (!this.sendFrames("read", ids)) this.retry.hold("read", ids);
  }

  /**
   * Marks the open conversation read, if the tab is visible and the socket open. A page of
   * READ_PAGE at a time: its `read` frame goes out, then the local change; a frame the socket does
   * not take leaves the rest unread here, for the next connect (and one the server could not apply
   * comes back through onError). One run at a time; a call during a run makes it go round again.
   */
  markActiveRead() {
    if (this.marking) {
      this.markAgain = true;
      return this.marking;
    }
    this.marking = (async () => {
      do {
        this.markAgain = false;
        await this.markReadOnce();
      } while (this.markAgain);
    })().finally(() => {
      this.marking = null;
    });
    return this.marking;
  }

  async markReadOnce() {
    const email = this.state.active;
    if (!email || document.visibilityState !== "visible") return;
    let marked = false;
    for (;;) {
      const unread = await this.store.all("messages", { index: "unread", prefix: [email, 1], limit: READ_PAGE });
      if (!unread.length) break;
      // The receipt goes with the local change; without a socket both wait for the next connect.
      const ids = unread.map((m) => m.serverId).filter((id) => typeof id === "number");
      if (ids.length && !this.sendFrames("read", ids)) return;
      const now = Date.now();
      const changed = unread.map((m) => {
        const copy = { ...m, readAt: now };
        delete copy.unread;
        return copy;
      });
      await this.store.write(changed.map((value) => ({ put: "messages", value })));
      if (this.state.loaded.has(email)) this.state.upsertMessages(changed);
      marked = true;
    }
    // A contact's row, or a group's (its key is the conversation's, ./groupkey.js).
    const row = this.state.contacts.get(email) || this.state.groups.get(email);
    if (row && row.unread) this.state.updateContact(email, { unread: 0 });
    if (marked) this.tabs.broadcast({ type: "conversation", email });
  }

  /** The status a receipt gave server id `id` before our `sent` for it arrived (then forgotten). */
  takeEarly(id) {
    const status = this.early.get(id);
    this.early.delete(id);
    return status;
  }

  /**
   * A `delivered` or `read` push about our sent messages (message ids). One naming no message yet
   * overtook our `sent` for it, and is kept for it; not so in an answer to our question (`early`
   * false), which names only messages we asked about.
   */
  async onReceipt(ids, status, { early = true } = {}) {
    if (!Array.isArray(ids) || !ids.length) return;
    const updated = await this.store.update(
      ["messages"],
      ids.map((id) => ({ store: "messages", index: "serverId", key: [id] })),
      (records) => {
        const writes = [];
        const result = [];
        records.forEach((record, i) => {
          if (!record) {
            // The receipt overtook our `sent` for it.
            if (early) this.early.set(ids[i], status);
            return;
          }
          if (record.direction !== "out") return;
          const next = laterStatus(record.status, status);
          if (next === record.status) return;
          const changed = withStatus(record, next);
          writes.push({ put: "messages", value: changed });
          result.push(changed);
        });
        return { writes, result };
      },
    );
    this.state.upsertMessages(updated || []);
    for (const email of new Set((updated || []).map((m) => m.contact))) this.tabs.broadcast({ type: "conversation", email });
  }

  /**
   * `read_elsewhere` (message ids): messages we received, read on another of our devices. They are
   * marked read here (the unread count goes down); no receipt goes out, the server has it.
   */
  async onReadElsewhere(ids) {
    if (!Array.isArray(ids)) return;
    const wanted = ids.filter((id) => Number.isInteger(id) && id > 0);
    if (!wanted.length) return;
    const now = Date.now();
    const updated = await this.store.update(
      ["messages"],
      wanted.map((id) => ({ store: "messages", index: "messageId", key: [id] })),
      (records) => {
        const changed = records
          .filter((record) => record && record.direction === "in" && record.unread)
          .map((record) => {
            const copy = { ...record, readAt: now };
            delete copy.unread;
            return copy;
          });
        return { writes: changed.map((value) => ({ put: "messages", value })), result: changed };
      },
    );
    for (const email of new Set((updated || []).map((m) => m.contact))) {
      const messages = updated.filter((m) => m.contact === email);
      if (this.state.loaded.has(email)) this.state.upsertMessages(messages);
      const unread = await this.store.count("messages", { index: "unread", prefix: [email, 1] });
      this.state.updateContact(email, { unread });
      this.tabs.broadcast({ type: "conversation", email });
    }
  }

  /** The `delivered`/`read` pushes missed while this browser was offline: asks where the newest
   *  messages still waiting for a read receipt stand, and which received ones still unread here
   *  were read on another of our devices (answered by a `receipts` frame). */
  async ask() {
    const waiting = await this.store.page("messages", "awaiting", [], { limit: RECEIPTS_MAX_IDS });
    const ids = waiting.map((m) => m.awaiting);
    const room = RECEIPTS_MAX_IDS - ids.length;
    if (room > 0) {
      const unread = await this.store.all("messages", { index: "unread", limit: room });
      ids.push(...unread.map((m) => m.messageId).filter((id) => Number.isInteger(id)));
    }
    if (ids.length) this.transport.send({ type: "receipts", ids });
  }

  /** The answer to `ask`. */
  async onAnswer(frame) {
    const list = (ids) => (Array.isArray(ids) ? ids.filter((id) => typeof id === "number") : []);
    await this.onReceipt(list(frame.delivered), "delivered", { early: false });
    await this.onReceipt(list(frame.read), "read", { early: false });
    await this.onReadElsewhere(list(frame.read));
    const unknown = list(frame.unknown);
    if (!unknown.length) return;
    // Gone from the server: an envelope nobody fetched before the end of retention was deleted.
    // One the recipient acknowledged is delivered for good; one still "sent" never arrived.
    const updated = await this.store.update(
      ["messages"],
      unknown.map((id) => ({ store: "messages", index: "serverId", key: [id] })),
      (records) => {
        const changed = records
          .filter((record) => record && record.direction === "out" && "awaiting" in record)
          .map((record) => {
            if (record.status === "sent") {
              return { ...withStatus(record, "failed"), error: "It expired on the server before it could be delivered." };
            }
            const kept = { ...record };
            delete kept.awaiting;
            return kept;
          });
        return { writes: changed.map((value) => ({ put: "messages", value })), result: changed };
      },
    );
    this.state.upsertMessages(updated || []);
    for (const email of new Set((updated || []).map((m) => m.contact))) this.tabs.broadcast({ type: "conversation", email });
  }
}
