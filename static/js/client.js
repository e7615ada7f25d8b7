// The messenger client: turns server frames and user actions into storage writes and state changes.
//
// - One dispatch table (FRAME_HANDLERS below) for every frame the server pushes (chat/events.py).
// - Incoming envelopes are taken in batches (intake.js) and acknowledged only after their decrypted
//   results and the new session state are stored (session.decryptBatchFrom commits a batch in one
//   transaction). A redelivered envelope is recognised by its server id, acknowledged again and not
//   shown twice; an `ack` or `read` the server could not apply is sent again (receipts.js).
// - A conversation in memory is a window of it, read from storage in pages (history.js).
// - Outgoing messages are encrypted at once and kept in the outbox until the server answers `sent`;
//   on every (re)connect the outbox is sent again with the same client_id (the server stores each
//   client_id once).
// - Lists (contacts, requests) are re-read from the API on every connect: pushes are at-most-once.
//   So are receipts: on every connect the client asks where its sent-but-unread messages stand.
// - Other tabs of the same account hear about changes through a BroadcastChannel and re-read storage;
//   a tab erasing the account's data tells the others the same way (main.js: they erase too).
import { ApiError, contactsApi, errorMessage, keysApi, refreshSession } from "./api.js";
import {
  acceptIdentityChange,
  decryptBatchFrom,
  encryptFor,
  IdentityChangedError,
  maintainSignedPrekey,
  noteIdentityKey,
  refillOneTimePrekeys,
  safetyNumberFor,
  setVerified,
} from "./session.js";
import { ConversationHistory } from "./history.js";
import { EnvelopeIntake } from "./intake.js";
import { MAX_IDS_PER_FRAME, ReceiptRetry } from "./receipts.js";
import { ChatSocket, Connection } from "./socket.js";
import { Topic } from "./state.js";

const STATUS_RANK = { sending: 0, sent: 1, delivered: 2, read: 3 };
const TYPING_SEND_EVERY_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOW_MS = 6000;
// Unread messages marked read per frame and transaction: the server takes up to MAX_IDS_PER_FRAME,
// but writing that many records at once is one task of a few hundred milliseconds.
const READ_PAGE = 200;
// The server answers about at most this many envelopes per `receipts` question.
const RECEIPTS_MAX_IDS = 1000;

function laterStatus(current, next) {
  if (!(current in STATUS_RANK)) return next === "sent" ? next : current;
  return STATUS_RANK[next] > STATUS_RANK[current] ? next : current;
}

/** An outgoing record with `status`; it stays in the `awaiting` index until it is read. */
function withStatus(record, status) {
  const updated = { ...record, status };
  if ((status === "sent" || status === "delivered") && typeof record.serverId === "number") {
    updated.awaiting = record.serverId;
  } else {
    delete updated.awaiting;
  }
  return updated;
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class MessengerClient {
  constructor({ state, store, onSessionEnded }) {
    this.state = state;
    this.store = store;
    this.onSessionEnded = onSessionEnded;
    this.socket = null;
    this.inFlight = new Set(); // client_ids handed to the current socket
    this.history = new ConversationHistory({ state, store });
    this.intake = new EnvelopeIntake({
      take: (frames) => this.takeEnvelopes(frames),
      // Storage failure or no keys: not acknowledged, so the server keeps them for later.
      onError: (error) => this.reportError(error, "Messages could not be stored: "),
    });
    this.marking = null; // markActiveRead under way
    this.markAgain = false;
    this.receiptRetry = new ReceiptRetry({ send: (frame) => Boolean(this.socket && this.socket.send(frame)) });
    this.earlyReceipts = new Map(); // server id -> status seen before our `sent`
    this.typingSent = new Map(); // email -> {at, timer}
    this.typingShown = new Map(); // email -> timer
    this.flushing = null;
    this.flushAgain = false;
    this.channel = null;
    this.seq = 0;
  }

  // --- start-up ---------------------------------------------------------------------------------

  async start() {
    await this.loadLocal();
    this.listenToOtherTabs();
    document.addEventListener("visibilitychange", () => this.markActiveRead());
    window.addEventListener("focus", () => this.markActiveRead());
    this.socket = new ChatSocket({
      handlers: this.frameHandlers(),
      onStatus: (status) => this.state.setConnection(status),
      refresh: () => refreshSession(),
      onSessionEnded: this.onSessionEnded,
      onOpen: () => this.onSocketOpen(),
      onNotice: (text) => this.state.setNotice(text),
    });
    this.socket.start();
    this.keyUpkeep();
  }

  stop() {
    if (this.socket) this.socket.stop();
    if (this.channel) this.channel.close();
    this.intake.clear();
    this.receiptRetry.stop();
  }

  async loadLocal() {
    const [contacts, requests, identities, settings] = await Promise.all([
      this.store.all("contacts"),
      this.store.all("contactRequests"),
      this.store.all("identities"),
      this.store.getMeta("settings", {}),
    ]);
    this.state.setSettings(settings || {});
    this.state.setRequests({
      incoming: requests.filter((r) => r.direction === "in"),
      outgoing: requests.filter((r) => r.direction === "out"),
    });
    // Conversations with people who are no longer contacts keep their history; they stay listed.
    const emails = new Set(contacts.map((c) => c.email));
    this.state.setContacts(contacts);
    for (const identity of identities) this.applyIdentity(identity);
    await Promise.all([...emails].map((email) => this.refreshCounters(email)));
  }

  async refreshCounters(email) {
    const [unread, last] = await Promise.all([
      this.store.count("messages", { index: "unread", prefix: [email, 1] }),
      this.store.last("messages", "conversation", [email]),
    ]);
    this.state.updateContact(email, { unread, lastAt: last ? last.ts : 0 });
  }

  applyIdentity(record) {
    if (!record) return;
    this.state.updateContact(record.email, {
      identity: { identityKey: record.identityKey, verified: record.verified, changedTo: record.changedTo || null },
    });
  }

  async refreshIdentity(email) {
    this.applyIdentity(await this.store.get("identities", email));
  }

  onSocketOpen() {
    this.inFlight.clear();
    this.receiptRetry.flush();
    this.syncFromServer();
    this.flushOutbox();
    this.markActiveRead();
    this.askReceipts().catch((error) => this.reportError(error));
  }

  /** The `delivered`/`read` pushes missed while this browser was offline: ask where the newest
   *  messages still waiting for a read receipt stand (answered by a `receipts` frame). */
  async askReceipts() {
    const waiting = await this.store.page("messages", "awaiting", [], { limit: RECEIPTS_MAX_IDS });
    const ids = waiting.map((m) => m.awaiting);
    if (ids.length && this.socket) this.socket.send({ type: "receipts", ids });
  }

  /** Re-reads contacts and requests (events missed while offline are not replayed). */
  async syncFromServer() {
    try {
      await Promise.all([this.syncContacts(), this.syncRequests()]);
    } catch (error) {
      this.reportError(error);
      return;
    }
    // A contact may have set up a new browser while we were away.
    for (const email of this.state.contacts.keys()) this.checkIdentity(email);
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
        this.refreshCounters(email);
        this.refreshIdentity(email);
      }
    }
    this.broadcast({ type: "contacts" });
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

  async checkIdentity(email, identityKey = null) {
    try {
      const key = identityKey || (await keysApi.identity(email)).identity_key;
      await noteIdentityKey(this.store, email, key);
      await this.refreshIdentity(email);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) this.reportError(error);
    }
  }

  async keyUpkeep() {
    try {
      await refillOneTimePrekeys(this.store, {
        status: () => keysApi.prekeyCount(),
        upload: (keys) => keysApi.uploadPrekeys(keys),
      });
      const status = await keysApi.prekeyCount();
      await maintainSignedPrekey(this.store, status, (spk) => keysApi.setSignedPrekey(spk));
    } catch (error) {
      this.reportError(error, "Could not update your encryption keys: ");
    }
  }

  reportError(error, prefix = "") {
    this.state.setNotice(prefix + errorMessage(error));
  }

  // --- the dispatch table of server frames -------------------------------------------------------

  frameHandlers() {
    return {
      message: (frame) => this.onEnvelope(frame),
      queue_empty: () => {},
      sent: (frame) => this.onSent(frame),
      delivered: (frame) => this.onReceipt(frame.ids, "delivered"),
      read: (frame) => this.onReceipt(frame.ids, "read"),
      receipts: (frame) => this.onReceiptsAnswer(frame),
      error: (frame) => this.onServerError(frame),
      typing: (frame) => this.onTyping(frame),
      contact_request: () => this.syncRequests().catch((e) => this.reportError(e)),
      contact_request_answered: () => this.syncFromServer(),
      contact_removed: (frame) => this.onContactRemoved(frame),
      prekeys_low: () => this.keyUpkeep(),
      identity_changed: (frame) => this.checkIdentity(frame.email, frame.identity_key || null),
    };
  }

  onEnvelope(frame) {
    if (!frame || typeof frame.id !== "number" || typeof frame.from !== "string") return;
    this.intake.push(frame);
  }

  /** One batch of envelopes, in arrival order: per sender one transaction, one render, one ack. */
  async takeEnvelopes(frames) {
    const bySender = new Map();
    for (const frame of frames) {
      if (!bySender.has(frame.from)) bySender.set(frame.from, []);
      bySender.get(frame.from).push(frame);
    }
    for (const [email, list] of bySender) {
      // Arriving in the conversation the user has open in a visible page: seen, so stored read
      // and answered with `read` (which marks delivered too) instead of `ack`.
      const seen = this.state.active === email && document.visibilityState === "visible";
      const readAt = Date.now();
      let results;
      try {
        results = await decryptBatchFrom(this.store, email, list, (frame, { text, failed }) => {
          const record = {
            id: `in:${frame.id}`,
            serverId: frame.id,
            contact: frame.from,
            direction: "in",
            text: text === null ? "" : text,
            ts: Date.parse(frame.sent_at) || Date.now(),
            status: "received",
          };
          if (seen) record.readAt = readAt;
          else record.unread = 1;
          if (failed) record.failed = failed;
          return record;
        });
      } catch (error) {
        // Storage failure or no keys: not acknowledged, so the server keeps them for later.
        this.reportError(error, "A message could not be stored: ");
        continue;
      }
      const ids = list.map((frame) => frame.id);
      // Not taken by the socket: an ack is not needed (the envelopes come back on the next
      // connect and are recognised), a read waits for the next connect (receipts.js).
      if (seen && !this.sendReceipts("read", ids)) this.receiptRetry.hold("read", ids);
      else if (!seen) this.sendReceipts("ack", ids);
      const messages = results.filter((result) => result.status !== "duplicate").map((result) => result.message);
      if (!messages.length) continue;
      const contact = this.state.contacts.get(email);
      if (contact && contact.typing) this.setTyping(email, false);
      if (this.state.loaded.has(email)) this.state.upsertMessages(messages);
      await this.refreshCounters(email);
      if (results.identityChanged) await this.refreshIdentity(email);
      this.broadcast({ type: "conversation", email });
      this.notify(email);
    }
    await this.markActiveRead();
  }

  /**
   * Sends `ack` or `read` for `ids` in frames the server takes (at most MAX_IDS_PER_FRAME ids).
   * Without a socket the envelopes come back (acks) or stay unread (reads) until the next connect.
   */
  sendReceipts(type, ids) {
    for (let start = 0; start < ids.length; start += MAX_IDS_PER_FRAME) {
      if (!this.socket || !this.socket.send({ type, ids: ids.slice(start, start + MAX_IDS_PER_FRAME) })) return false;
    }
    return true;
  }

  async onSent(frame) {
    const clientId = frame.client_id;
    this.inFlight.delete(clientId);
    const early = this.earlyReceipts.get(frame.id);
    this.earlyReceipts.delete(frame.id);
    const message = await this.store.update(
      ["messages", "outbox"],
      [{ store: "messages", key: [clientId] }],
      ([record]) => {
        const writes = [{ delete: "outbox", key: [clientId] }];
        if (!record) return { writes };
        let status = laterStatus(record.status, "sent");
        if (early) status = laterStatus(status, early);
        const updated = withStatus({ ...record, serverId: frame.id }, status);
        delete updated.error;
        writes.push({ put: "messages", value: updated });
        return { writes, result: updated };
      },
    );
    if (message) {
      this.state.upsertMessage(message);
      this.broadcast({ type: "conversation", email: message.contact });
    }
  }

  async onReceipt(ids, status) {
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
            this.earlyReceipts.set(ids[i], status);
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
    for (const email of new Set((updated || []).map((m) => m.contact))) this.broadcast({ type: "conversation", email });
  }

  async onReceiptsAnswer(frame) {
    const list = (ids) => (Array.isArray(ids) ? ids.filter((id) => typeof id === "number") : []);
    await this.onReceipt(list(frame.delivered), "delivered");
    await this.onReceipt(list(frame.read), "read");
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
    for (const email of new Set((updated || []).map((m) => m.contact))) this.broadcast({ type: "conversation", email });
  }

  async onServerError(frame) {
    if (this.receiptRetry.onError(frame)) return; // a failed ack/read: sent again
    if (frame.client_id) {
      this.inFlight.delete(frame.client_id);
      if (frame.code === "rate_limited") {
        setTimeout(() => this.flushOutbox(), Math.max(1, frame.retry_after || 1) * 1000);
        return;
      }
      await this.failMessage(frame.client_id, frame.detail || "The server refused this message.");
      return;
    }
    // A throttled background frame (typing, a receipts question after many reconnects) costs the
    // user nothing: it is sent again next time. Anything else is worth telling.
    if (frame.code === "rate_limited") return;
    this.state.setNotice(frame.detail || "The server reported an error.");
  }

  async failMessage(clientId, reason) {
    const message = await this.store.update(
      ["messages", "outbox"],
      [{ store: "messages", key: [clientId] }],
      ([record]) => {
        const writes = [{ delete: "outbox", key: [clientId] }];
        if (!record) return { writes };
        const updated = { ...withStatus(record, "failed"), error: reason };
        writes.push({ put: "messages", value: updated });
        return { writes, result: updated };
      },
    );
    if (message) {
      this.state.upsertMessage(message);
      this.broadcast({ type: "conversation", email: message.contact });
    }
  }

  onTyping(frame) {
    if (typeof frame.from !== "string") return;
    this.setTyping(frame.from, frame.state === "start");
  }

  setTyping(email, typing) {
    clearTimeout(this.typingShown.get(email));
    if (typing) this.typingShown.set(email, setTimeout(() => this.setTyping(email, false), TYPING_SHOW_MS));
    this.state.updateContact(email, { typing });
  }

  async onContactRemoved() {
    await this.syncContacts().catch((e) => this.reportError(e));
  }

  // --- user actions -----------------------------------------------------------------------------

  async openConversation(email) {
    this.state.setActive(email);
    if (!this.state.loaded.has(email)) await this.reloadConversation(email);
    this.markActiveRead();
  }

  async reloadConversation(email) {
    await this.history.loadLatest(email);
    await this.refreshCounters(email);
  }

  loadOlder(email) {
    return this.history.loadOlder(email);
  }

  loadNewer(email) {
    return this.history.loadNewer(email);
  }

  jumpToLatest(email) {
    return this.history.loadLatest(email);
  }

  closeConversation() {
    this.state.setActive(null);
  }

  /**
   * Marks what the user sees as read: the open conversation's unread messages, while the page is
   * visible. A page of READ_PAGE at a time: its `read` frame goes out, then the
   * local change; a frame the socket does not take leaves the rest unread here, to be sent on the
   * next connect (and one the server could not apply comes back to receipts.js). One run at a time.
   */
  async markActiveRead() {
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
      if (ids.length && !this.sendReceipts("read", ids)) return;
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
    this.state.updateContact(email, { unread: 0 });
    if (marked) this.broadcast({ type: "conversation", email });
  }

  /** Encrypts and queues a message; it is sent now if the socket is open, else on reconnect. */
  async sendText(email, text) {
    const body = text.replace(/\s+$/, "");
    if (!body.trim()) return;
    this.typingStop(email);
    const clientId = uuid();
    const now = Date.now();
    this.seq += 1;
    const seq = now * 1000 + (this.seq % 1000);
    const message = { id: clientId, contact: email, direction: "out", text: body, ts: now, status: "sending" };
    const outbox = { clientId, seq, to: email };
    if (!this.state.loaded.has(email)) await this.reloadConversation(email);
    this.state.upsertMessage(message);
    try {
      await encryptFor(this.store, email, body, {
        fetchBundle: (to) => keysApi.bundle(to),
        writesFor: (envelope) => [
          { put: "messages", value: message },
          { put: "outbox", value: { ...outbox, ...envelope } },
        ],
      });
    } catch (error) {
      await this.keepUnencrypted(message, outbox, error);
    }
    this.broadcast({ type: "conversation", email });
    this.flushOutbox();
  }

  /**
   * Sends a failed message again, from its stored text. It goes back into the outbox without a
   * body, so flushOutbox encrypts it afresh (encryptHeld), under the same client_id: the server
   * never stored that id (it refused it, or deleted it undelivered at the end of retention).
   */
  async retryMessage(id) {
    this.seq += 1;
    const seq = Date.now() * 1000 + (this.seq % 1000);
    const message = await this.store.update(["messages", "outbox"], [{ store: "messages", key: [id] }], ([record]) => {
      if (!record || record.direction !== "out" || record.status !== "failed") return { writes: [] };
      const retry = withStatus(record, "sending");
      delete retry.error;
      delete retry.serverId;
      const entry = { clientId: record.id, seq, to: record.contact };
      return { writes: [{ put: "messages", value: retry }, { put: "outbox", value: entry }], result: retry };
    });
    if (!message) return;
    this.state.upsertMessage(message);
    this.broadcast({ type: "conversation", email: message.contact });
    this.flushOutbox();
  }

  /** A message that could not be encrypted yet: queued (network, identity change) or failed. */
  async keepUnencrypted(message, outbox, error) {
    if (error instanceof IdentityChangedError) {
      const held = { ...message, status: "held" };
      await this.store.write([{ put: "messages", value: held }, { put: "outbox", value: outbox }]);
      this.state.upsertMessage(held);
      await this.refreshIdentity(message.contact);
      return;
    }
    if (error instanceof ApiError && (error.status === 0 || error.status >= 500)) {
      await this.store.write([{ put: "messages", value: message }, { put: "outbox", value: outbox }]);
      return;
    }
    const failed = { ...message, status: "failed", error: errorMessage(error) };
    await this.store.write([{ put: "messages", value: failed }]);
    this.state.upsertMessage(failed);
  }

  /** Sends every queued envelope (encrypting the ones that were held) over the open socket. */
  async flushOutbox() {
    if (!this.socket || !this.socket.isOpen) return;
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.flushAgain = false;
        const entries = await this.store.all("outbox", { index: "order" });
        for (const entry of entries) {
          if (!this.socket.isOpen) return;
          if (this.inFlight.has(entry.clientId)) continue;
          let envelope = entry.body ? { kind: entry.kind, body: entry.body } : null;
          if (!envelope) envelope = await this.encryptHeld(entry);
          if (!envelope) continue;
          if (this.socket.send({ type: "send", client_id: entry.clientId, to: entry.to, ...envelope })) {
            this.inFlight.add(entry.clientId);
          }
        }
      } while (this.flushAgain);
    } finally {
      this.flushing = false;
    }
  }

  async encryptHeld(entry) {
    const message = await this.store.get("messages", entry.clientId);
    if (!message) {
      await this.store.write([{ delete: "outbox", key: [entry.clientId] }]);
      return null;
    }
    const trusted = await this.store.get("identities", entry.to);
    if (trusted && trusted.changedTo) return null; // waits for the user's acknowledgement
    const sending = { ...message, status: "sending" };
    try {
      return await encryptFor(this.store, entry.to, message.text, {
        fetchBundle: (to) => keysApi.bundle(to),
        writesFor: (envelope) => [
          { put: "messages", value: sending },
          { put: "outbox", value: { ...entry, ...envelope } },
        ],
      }).then((envelope) => {
        this.state.upsertMessage(sending);
        return envelope;
      });
    } catch (error) {
      if (error instanceof IdentityChangedError) {
        await this.refreshIdentity(entry.to);
        return null;
      }
      if (error instanceof ApiError && (error.status === 0 || error.status >= 500)) return null;
      await this.failMessage(entry.clientId, errorMessage(error));
      return null;
    }
  }

  typingInput(email) {
    if (!this.socket || !this.socket.isOpen) return;
    const now = Date.now();
    const entry = this.typingSent.get(email) || { at: 0, timer: null };
    if (now - entry.at > TYPING_SEND_EVERY_MS) {
      this.socket.send({ type: "typing", to: email, state: "start" });
      entry.at = now;
    }
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.typingStop(email), TYPING_IDLE_MS);
    this.typingSent.set(email, entry);
  }

  typingStop(email) {
    const entry = this.typingSent.get(email);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.typingSent.delete(email);
    if (this.socket) this.socket.send({ type: "typing", to: email, state: "stop" });
  }

  async requestContact(email) {
    const result = await contactsApi.request(email);
    await this.syncFromServer();
    return result;
  }

  async answerRequest(id, action) {
    await contactsApi.answer(id, action);
    await this.syncFromServer();
  }

  async removeContact(email) {
    await contactsApi.remove(email);
    await this.syncContacts();
  }

  async safetyNumber(email) {
    const own = this.state.ownIdentityKey;
    let record = await this.store.get("identities", email);
    if (!record) {
      await this.checkIdentity(email);
      record = await this.store.get("identities", email);
    }
    if (!record || !own) return null;
    const theirs = record.changedTo || record.identityKey;
    return {
      number: safetyNumberFor(own, theirs),
      verified: Boolean(record.verified) && !record.changedTo,
      changed: Boolean(record.changedTo),
    };
  }

  async markVerified(email, verified) {
    await setVerified(this.store, email, verified);
    await this.refreshIdentity(email);
  }

  async acceptIdentity(email) {
    await acceptIdentityChange(this.store, email);
    await this.refreshIdentity(email);
    // Messages held back while the change was unacknowledged go out now, to the new key.
    // They wait in the outbox: read from there, not from the whole conversation.
    const queued = (await this.store.all("outbox")).filter((entry) => entry.to === email);
    const records = await Promise.all(queued.map((entry) => this.store.get("messages", entry.clientId)));
    const sending = records.filter((m) => m && m.status === "held").map((m) => ({ ...m, status: "sending" }));
    if (sending.length) {
      await this.store.write(sending.map((value) => ({ put: "messages", value })));
      this.state.upsertMessages(sending);
    }
    this.broadcast({ type: "identity", email });
    this.flushOutbox();
  }

  async setNotifications(enabled) {
    let on = enabled;
    if (on && "Notification" in window && Notification.permission !== "granted") {
      on = (await Notification.requestPermission()) === "granted";
      if (!on) this.state.setNotice("Notifications are blocked for this site in your browser settings.", "info");
    }
    const settings = { ...this.state.settings, notifications: on };
    await this.store.setMeta("settings", settings);
    this.state.setSettings(settings);
  }

  notify(email) {
    if (!document.hidden || !this.state.settings.notifications) return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    // Never the message text: a notification shows on the lock screen and in system logs.
    const notification = new Notification("Secured Messenger", { body: `New message from ${email}`, tag: email });
    notification.onclick = () => {
      window.focus();
      this.openConversation(email);
      notification.close();
    };
  }

  // --- other tabs ------------------------------------------------------------------------------

  listenToOtherTabs() {
    if (!("BroadcastChannel" in window)) return;
    this.channel = new BroadcastChannel(`sm:${this.store.account}`);
    this.channel.onmessage = async (event) => {
      const data = event.data || {};
      if (data.type === "conversation" || data.type === "identity") {
        if (this.state.loaded.has(data.email)) await this.history.refresh(data.email);
        await this.refreshCounters(data.email);
        await this.refreshIdentity(data.email);
      } else if (data.type === "contacts") {
        const contacts = await this.store.all("contacts");
        this.state.setContacts(contacts);
        for (const c of contacts) this.refreshCounters(c.email);
      }
    };
  }

  broadcast(message) {
    if (this.channel) this.channel.postMessage(message);
  }
}

export { Connection, Topic };
