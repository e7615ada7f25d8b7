// Outbox: outgoing messages. Each is encrypted at once, for every device of the recipient and
// every other device of ours (docs/PROTOCOL.md section 17.1), and its whole `send` frame kept in
// the `outbox` store (../storage.js) until the server answers `sent` (or refuses it); on every
// (re)connect the stored frame is sent again unchanged under the same client_id, which the server
// stores once. A message that cannot be encrypted yet waits in the outbox without copies (network
// down; an identity change not accepted: `held`) and is encrypted when it is flushed. A
// `device_mismatch` corrects the stored frame (the ciphertexts made stay, fanout.js) and sends it
// again; after MISMATCHES_MAX in a row the message fails. A failed message can be sent again (retry).
// Group messages (entries with `group`) wait in the same store and go in the same order, as
// `group_send` frames; groups.js makes their frames and takes the server's answers about them.
import { errorMessage, keysApi } from "../api.js";
import { encryptFor, IdentityChangedError } from "../session.js";
import { afterMismatch, DeviceLists, MISMATCHES_MAX, targetsOf } from "./fanout.js";
import { isGroupKey } from "./groupkey.js";
import { laterStatus, newClientId, retriable, withStatus } from "./status.js";

// The outbox entry a device_mismatch named was sent or changed meanwhile (another tab).
class EntryGone extends Error {}

export class NoDevicesError extends Error {
  constructor(email) {
    super(`${email} has no device that can receive messages now. Nothing was sent.`);
    this.name = "NoDevicesError";
  }
}

export class Outbox {
  constructor({ state, store, transport, tabs, conversations, keys, receipts, groups }) {
    this.state = state;
    this.groups = groups;
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
    this.deviceLists = new DeviceLists((email) => keysApi.devices(email));
  }

  /** Encrypts `text` for the devices of `to` and ours, committing `writesFor(frame)` with the sessions. */
  async encrypt(to, text, writesFor) {
    const self = this.state.me.email;
    let [theirs, ours] = await Promise.all([this.deviceLists.get(to), this.deviceLists.get(self)]);
    const trusted = await this.store.get("identities", to);
    if (trusted && theirs.identityKey !== (trusted.changedTo || trusted.identityKey)) {
      // Kept from before an identity change (start over): the list is read again, and
      // encryptFor compares its key with the one trusted now.
      this.deviceLists.forget(to);
      theirs = await this.deviceLists.get(to);
    }
    if (!theirs.deviceIds.length) throw new NoDevicesError(to);
    return encryptFor(this.store, { to, self }, text, {
      targets: targetsOf(theirs, ours, this.state.deviceId),
      fetchBundles: (email, deviceIds) => keysApi.bundles(email, deviceIds),
      writesFor,
    });
  }

  /** `devices_changed` for `email` (or our own account): its list is read again when next needed. */
  forgetDevices(email) {
    this.deviceLists.forget(email);
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
    const clientId = newClientId();
    const now = Date.now();
    const seq = this.nextSeq(now);
    const message = { id: clientId, contact: email, direction: "out", text: body, ts: now, status: "sending" };
    const outbox = { clientId, seq, to: email };
    if (!this.state.loaded.has(email)) await this.conversations.reload(email);
    this.state.upsertMessage(message);
    try {
      await this.encrypt(email, body, (frame) => [
        { put: "messages", value: message },
        { put: "outbox", value: { ...outbox, ...frame } },
      ]);
    } catch (error) {
      await this.keepUnencrypted(message, outbox, error);
    }
    this.tabs.broadcast({ type: "conversation", email });
    this.flush();
  }

  /**
   * Sends a failed message again, from its stored text. It goes back into the outbox without
   * copies, so flush encrypts it afresh (encryptHeld), under the same client_id: the server never
   * stored that id (it refused it, or deleted it undelivered at the end of retention).
   */
  async retry(id) {
    const seq = this.nextSeq();
    const message = await this.store.update(["messages", "outbox"], [{ store: "messages", key: [id] }], ([record]) => {
      if (!record || record.direction !== "out" || record.status !== "failed") return { writes: [] };
      const retry = withStatus(record, "sending");
      delete retry.error;
      delete retry.serverId;
      const entry = isGroupKey(record.contact) ? this.groups.retryEntry(record, seq) : { clientId: record.id, seq, to: record.contact };
      return { writes: [{ put: "messages", value: retry }, { put: "outbox", value: entry }], result: retry };
    });
    if (!message) return;
    this.state.upsertMessage(message);
    this.tabs.broadcast({ type: "conversation", email: message.contact });
    this.flush();
  }

  /**
   * A message (1:1 or group: groups.js) that could not be encrypted yet: queued with its outbox
   * entry (network, an identity change: held) or failed. Resolves to whether it is still queued.
   */
  async keepUnencrypted(message, outbox, error) {
    if (error instanceof IdentityChangedError) {
      const held = { ...message, status: "held" };
      await this.store.write([{ put: "messages", value: held }, { put: "outbox", value: outbox }]);
      this.state.upsertMessage(held);
      await this.keys.refreshIdentity(error.email);
      return true;
    }
    if (retriable(error)) {
      await this.store.write([{ put: "messages", value: message }, { put: "outbox", value: outbox }]);
      return true;
    }
    const failed = { ...message, status: "failed", error: errorMessage(error) };
    await this.store.write([{ put: "messages", value: failed }]);
    this.state.upsertMessage(failed);
    return false;
  }

  /** The user accepted `email`'s new identity key: the messages held for it go out at the next flush. */
  async releaseHeld(email) {
    // They wait in the outbox: read from there, not from the whole conversation.
    const entries = await this.store.all("outbox");
    const inGroup = await Promise.all(entries.map((entry) => entry.group && this.groups.hasMember(entry.group, email)));
    const queued = entries.filter((entry, i) => entry.to === email || inGroup[i]);
    const records = await Promise.all(queued.map((entry) => this.store.get("messages", entry.clientId)));
    const sending = records.filter((m) => m && m.status === "held").map((m) => ({ ...m, status: "sending" }));
    if (sending.length) {
      await this.store.write(sending.map((value) => ({ put: "messages", value })));
      this.state.upsertMessages(sending);
    }
  }

  /** Sends every queued frame (encrypting the ones that were held) over the open socket. */
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
          if (entry.group) {
            const frame = entry.frame || (await this.groups.encryptHeld(entry));
            if (frame && this.transport.send({ type: "group_send", ...frame })) this.inFlight.add(entry.clientId);
            continue;
          }
          const frame = entry.copies ? { copies: entry.copies, own: entry.own || [] } : await this.encryptHeld(entry);
          if (!frame) continue;
          if (this.transport.send({ type: "send", client_id: entry.clientId, to: entry.to, copies: frame.copies, own: frame.own })) {
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
      const frame = await this.encrypt(entry.to, message.text, (made) => [
        { put: "messages", value: sending },
        { put: "outbox", value: { ...entry, ...made } },
      ]);
      this.state.upsertMessage(sending);
      return frame;
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

  /** The server stored our envelope or group message (`sent`): it leaves the outbox. */
  async onSent(frame) {
    const clientId = frame.client_id;
    this.inFlight.delete(clientId);
    const early = this.receipts.takeEarly(frame.id);
    // The entry is read in the same transaction: a group entry's frame names the devices given our sender key.
    const { message, entry } = await this.store.update(
      ["messages", "outbox"],
      [
        { store: "messages", key: [clientId] },
        { store: "outbox", key: [clientId] },
      ],
      ([record, queued]) => {
        const writes = [{ delete: "outbox", key: [clientId] }];
        if (!record) return { writes, result: { message: null, entry: queued } };
        let status = laterStatus(record.status, "sent");
        if (early) status = laterStatus(status, early);
        const updated = withStatus({ ...record, serverId: frame.id }, status);
        delete updated.error;
        writes.push({ put: "messages", value: updated });
        return { writes, result: { message: updated, entry: queued } };
      },
    );
    if (entry && entry.group) await this.groups.onSent(entry);
    if (message) {
      this.state.upsertMessage(message);
      this.tabs.broadcast({ type: "conversation", email: message.contact });
    }
  }

  /**
   * An `error` frame naming one of our client_ids: sent again later if rate limited, corrected and
   * sent again after a device mismatch, else failed.
   */
  async onError(frame) {
    if (frame.code === "device_mismatch") {
      await this.onMismatch(frame);
      return;
    }
    if (frame.code === "rate_limited") {
      this.inFlight.delete(frame.client_id);
      setTimeout(() => this.flush(), Math.max(1, frame.retry_after || 1) * 1000);
      return;
    }
    const queued = await this.store.get("outbox", frame.client_id);
    if (queued && queued.group) {
      // In flight until handled: a flush meanwhile must not send the refused frame again.
      try {
        await this.groups.onError(frame, queued);
      } finally {
        this.inFlight.delete(frame.client_id);
      }
      this.flush();
      return;
    }
    this.inFlight.delete(frame.client_id);
    if (frame.code === "no_devices") {
      const entry = await this.store.get("outbox", frame.client_id);
      if (entry) this.forgetDevices(entry.to);
      await this.fail(frame.client_id, new NoDevicesError(entry ? entry.to : "The recipient").message);
      return;
    }
    await this.fail(frame.client_id, frame.detail || "The server refused this message.");
  }

  /**
   * `device_mismatch` (section 17.1): the recipient's or our own devices changed since the frame
   * was made. Sessions with removed devices are dropped, the devices added are encrypted for, the
   * other copies are kept as stored, and the frame goes again under the same client_id. The entry
   * stays in flight meanwhile, so a flush does not send the old frame again.
   */
  async onMismatch(frame) {
    const clientId = frame.client_id;
    const self = this.state.me.email;
    try {
      const entry = await this.store.get("outbox", clientId);
      const message = entry && entry.copies ? await this.store.get("messages", clientId) : null;
      if (!message) return;
      this.forgetDevices(entry.to);
      this.forgetDevices(self);
      const mismatches = (entry.mismatches || 0) + 1;
      if (mismatches >= MISMATCHES_MAX) {
        await this.fail(clientId, `The devices of ${entry.to} or your own kept changing. Try again.`);
        return;
      }
      let current = null;
      try {
        const { targets, drop } = afterMismatch(entry, frame);
        await encryptFor(this.store, { to: entry.to, self }, message.text, {
          targets,
          drop,
          fetchBundles: (email, deviceIds) => keysApi.bundles(email, deviceIds),
          // The frame stored now, read under the locks: another tab that sent the same frame may
          // have corrected it already (then this round is counted once), or seen it `sent`.
          reuse: async () => {
            current = await this.store.get("outbox", clientId);
            if (!current || !current.copies) throw new EntryGone();
            return current;
          },
          writesFor: (made) => [
            { put: "outbox", value: { ...current, ...made, mismatches: Math.max(mismatches, current.mismatches || 0) } },
          ],
        });
      } catch (error) {
        if (error instanceof EntryGone) return;
        if (retriable(error)) return; // the stored frame goes again on the next connect
        await this.store.write([{ delete: "outbox", key: [clientId] }]);
        await this.keepUnencrypted(message, { clientId, seq: entry.seq, to: entry.to }, error);
      }
    } finally {
      this.inFlight.delete(clientId);
    }
    this.flush();
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
