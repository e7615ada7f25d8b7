// Outbox: outgoing messages. Each is encrypted at once and its envelope kept in the `outbox` store
// (../storage.js) until the server answers `sent` (or refuses it); on every (re)connect the outbox
// is sent again under the same client_id, which the server stores once. A message that cannot be
// encrypted yet waits in the outbox without a body (network down; an identity change not accepted:
// `held`) and is encrypted when it is flushed. A failed message can be sent again (retry).
import { ApiError, errorMessage, keysApi } from "../api.js";
import { encryptFor, IdentityChangedError } from "../session.js";
import { laterStatus, withStatus } from "./status.js";

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function retriable(error) {
  return error instanceof ApiError && (error.status === 0 || error.status >= 500);
}

export class Outbox {
  constructor({ state, store, transport, tabs, conversations, keys, receipts }) {
    this.state = state;
    this.store = store;
    this.transport = transport;
    this.tabs = tabs;
    this.conversations = conversations;
    this.keys = keys;
    this.receipts = receipts;
    this.inFlight = new Set(); // client_ids handed to the current socket
    this.flushing = null;
    this.flushAgain = false;
    this.seq = 0;
  }

  /** A new socket: nothing is in flight on it yet. */
  onConnect() {
    this.inFlight.clear();
  }

  /** The outbox order: time of queueing, then a counter for messages queued in the same millisecond. */
  nextSeq(now = Date.now()) {
    this.seq += 1;
    return now * 1000 + (this.seq % 1000);
  }

  /** Encrypts and queues `body` for `email`; it is sent now if the socket is open, else on reconnect. */
  async send(email, body) {
    const clientId = uuid();
    const now = Date.now();
    const seq = this.nextSeq(now);
    const message = { id: clientId, contact: email, direction: "out", text: body, ts: now, status: "sending" };
    const outbox = { clientId, seq, to: email };
    if (!this.state.loaded.has(email)) await this.conversations.reload(email);
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
    this.tabs.broadcast({ type: "conversation", email });
    this.flush();
  }

  /**
   * Sends a failed message again, from its stored text. It goes back into the outbox without a
   * body, so flush encrypts it afresh (encryptHeld), under the same client_id: the server never
   * stored that id (it refused it, or deleted it undelivered at the end of retention).
   */
  async retry(id) {
    const seq = this.nextSeq();
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
    this.tabs.broadcast({ type: "conversation", email: message.contact });
    this.flush();
  }

  /** A message that could not be encrypted yet: queued (network, identity change) or failed. */
  async keepUnencrypted(message, outbox, error) {
    if (error instanceof IdentityChangedError) {
      const held = { ...message, status: "held" };
      await this.store.write([{ put: "messages", value: held }, { put: "outbox", value: outbox }]);
      this.state.upsertMessage(held);
      await this.keys.refreshIdentity(message.contact);
      return;
    }
    if (retriable(error)) {
      await this.store.write([{ put: "messages", value: message }, { put: "outbox", value: outbox }]);
      return;
    }
    const failed = { ...message, status: "failed", error: errorMessage(error) };
    await this.store.write([{ put: "messages", value: failed }]);
    this.state.upsertMessage(failed);
  }

  /** The user accepted `email`'s new identity key: the messages held for it go out at the next flush. */
  async releaseHeld(email) {
    // They wait in the outbox: read from there, not from the whole conversation.
    const queued = (await this.store.all("outbox")).filter((entry) => entry.to === email);
    const records = await Promise.all(queued.map((entry) => this.store.get("messages", entry.clientId)));
    const sending = records.filter((m) => m && m.status === "held").map((m) => ({ ...m, status: "sending" }));
    if (sending.length) {
      await this.store.write(sending.map((value) => ({ put: "messages", value })));
      this.state.upsertMessages(sending);
    }
  }

  /** Sends every queued envelope (encrypting the ones that were held) over the open socket. */
  async flush() {
    if (!this.transport.isOpen) return;
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
          if (!this.transport.isOpen) return;
          if (this.inFlight.has(entry.clientId)) continue;
          let envelope = entry.body ? { kind: entry.kind, body: entry.body } : null;
          if (!envelope) envelope = await this.encryptHeld(entry);
          if (!envelope) continue;
          if (this.transport.send({ type: "send", client_id: entry.clientId, to: entry.to, ...envelope })) {
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
        await this.keys.refreshIdentity(entry.to);
        return null;
      }
      if (retriable(error)) return null;
      await this.fail(entry.clientId, errorMessage(error));
      return null;
    }
  }

  /** The server stored our envelope (`sent`): it leaves the outbox. */
  async onSent(frame) {
    const clientId = frame.client_id;
    this.inFlight.delete(clientId);
    const early = this.receipts.takeEarly(frame.id);
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
      this.tabs.broadcast({ type: "conversation", email: message.contact });
    }
  }

  /** An `error` frame naming one of our client_ids: sent again later if rate limited, else failed. */
  async onError(frame) {
    this.inFlight.delete(frame.client_id);
    if (frame.code === "rate_limited") {
      setTimeout(() => this.flush(), Math.max(1, frame.retry_after || 1) * 1000);
      return;
    }
    await this.fail(frame.client_id, frame.detail || "The server refused this message.");
  }

  async fail(clientId, reason) {
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
      this.tabs.broadcast({ type: "conversation", email: message.contact });
    }
  }
}
