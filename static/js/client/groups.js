// Groups (docs/PROTOCOL.md part III): membership over REST, messages with sender keys, the
// reference being the terminal client (messenger_client/groups.py), whose rules this mirrors.
//
// - A group is a conversation keyed groupKey(id) (../state.js). The `groups` store (../storage.js)
//   keeps each group as GET groups/ last showed it, with the name its members sent (names are not
//   on the server: a settings message, type 0x02, carries it on create, add and rename) and the
//   last change id turned into a notice line. The list is read on every connect; a group no longer
//   listed was left (or we were removed): it stays, `left`, with its history.
// - Changes (created, added, removed...) become notice lines of the group's history, read after
//   the last change id seen on every connect and on every `group_changed`. Once we are no longer a
//   member the server answers group_not_found: the event's own line is stored then.
// - Sending: the message and its outbox entry (the plaintext, then the whole group_send frame and
//   the distribution) are stored by ../session.js encryptForGroup with the advanced sender key, in
//   one transaction; the outbox (outbox.js) sends group entries in its one order and hands their
//   answers here. `stale_epoch` re-reads the group and repairs the stored frame under the same
//   client_id (the third in a row fails it); `group_not_found`, `no_devices` and `invalid_keys`
//   fail it with a reason. A member whose safety number changed holds every send to the group
//   (status "held") until the user accepts the change.
// - Receiving: `group_message` copies are taken in batches with 1:1 copies (inbox.js), decrypted per
//   sender device in one transaction (session.js decryptGroupBatchFrom), then acknowledged. Our
//   own copies (sent from another device) are filed as sent. The open conversation's copies are
//   marked read by receipts.js as 1:1 messages are (their serverId is the copy id).
// - `group_receipts` counts are kept on our sent message ({delivered, read, of}); those not read by
//   every member yet (index `groupAwaiting`) are asked about on every connect.
import { ApiError, errorMessage, groupsApi, keysApi } from "../api.js";
import {
  decryptGroupBatchFrom,
  encryptForGroup,
  groupSettingsPlaintext,
  groupTextPlaintext,
  IdentityChangedError,
  memberDevices,
  noteKeysGiven,
} from "../session.js";
import { groupIdOf, groupKey, isGroupKey } from "./groupkey.js";
import { newClientId, retriable } from "./status.js";

export const STALE_MAX = 3; // stale_epoch answers in a row before a group message fails (section 23)
const RECEIPTS_MAX_IDS = 1000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A group id as the server writes it (a lower-case UUID), or null. */
export function checkGroupId(value) {
  return typeof value === "string" && UUID.test(value) ? value : null;
}

/** A group of the server's answers (section 21), checked: {id, epoch, role, members}. */
export function parseGroup(data) {
  const bad = () => new Error("The server's group is malformed.");
  if (!data || typeof data !== "object" || !Array.isArray(data.members) || !checkGroupId(data.id)) throw bad();
  if (!Number.isInteger(data.epoch) || data.epoch < 1) throw bad();
  const members = data.members.map((member) => {
    if (!member || typeof member.email !== "string" || !member.email || !Array.isArray(member.devices)) throw bad();
    if (!member.devices.every((d) => Number.isInteger(d) && d > 0)) throw bad();
    return { email: member.email, role: member.role === "admin" ? "admin" : "member", devices: [...member.devices] };
  });
  return { id: data.id, epoch: data.epoch, role: data.role === "admin" ? "admin" : "member", members };
}

/**
 * A `group_message` frame checked (section 23), or null: a positive copy id and message id, a
 * sender and its device, a group id, a string body and, if present, a `key` {kind, body}. `own`
 * is set for a copy from our own account (sent from another of our devices).
 */
export function groupCopyFrame(frame, ownEmail) {
  if (!frame || !Number.isInteger(frame.id) || frame.id < 1 || typeof frame.from !== "string" || !frame.from) return null;
  if (!Number.isInteger(frame.message_id) || frame.message_id < 1) return null;
  if (!Number.isInteger(frame.from_device) || frame.from_device < 1 || frame.from_device > 0x7fffffff) return null;
  if (!checkGroupId(frame.group) || typeof frame.body !== "string") return null;
  const key = frame.key === undefined || frame.key === null ? null : frame.key;
  if (key !== null && (typeof key !== "object" || typeof key.kind !== "string" || typeof key.body !== "string")) return null;
  const own = typeof ownEmail === "string" && frame.from.toLowerCase() === ownEmail.toLowerCase();
  // Our own email as we hold it: the sessions with our own devices are kept under it.
  return { ...frame, from: own ? ownEmail : frame.from, key, own };
}

/** A change (or a `group_changed` event) as a line of the group's history (section 21). */
export function describeChange(change) {
  const actor = typeof change.actor === "string" ? change.actor : "the server";
  const who = (Array.isArray(change.members) ? change.members : []).map(String).join(", ");
  const lines = {
    created: `${actor} created the group with ${who}`,
    added: `${actor} added ${who}`,
    removed: `${actor} removed ${who}`,
    left: `${who} left`,
    admin: `${actor} made ${who} admin`,
    deleted: "the group was deleted",
  };
  return lines[change.change] || `${actor}: ${change.change} ${who}`;
}

/** The line a settings message makes (names are end-to-end encrypted, section 22). */
export function namedLine(email, name) {
  return `${email} named the group "${name}"`;
}

/** A notice line of a group's history: never unread, never named by receipts. */
function noticeRecord(id, key, text, ts) {
  return { id, contact: key, direction: "in", notice: true, text, ts };
}

/**
 * The record of a copy that shows nothing (a type this client does not know, a name it holds
 * already): in no conversation, kept so that a redelivered copy is recognised by its id and only
 * acknowledged again, not decrypted again (its message key is gone) and shown as failed.
 */
function ignoredRecord(id, ts) {
  return { id, contact: "", direction: "in", ignored: true, ts };
}

/** The member devices of `group` other than ours, as stored in a group's `named` ("<device> <email>"). */
function deviceLabels(group, self, selfDevice) {
  return memberDevices(group.members, self, selfDevice).map(([email, device]) => `${device} ${email}`);
}

/**
 * A sent group message's status and counts after a `group_receipts` entry: delivered when every
 * member it went to has it, read when every one read it (then no longer asked about).
 */
export function withGroupCounts(record, { delivered, read, of }) {
  const updated = { ...record, counts: { delivered, read, of } };
  if (of > 0 && read >= of) {
    updated.status = "read";
    delete updated.groupAwaiting;
  } else if (of > 0 && delivered >= of && record.status !== "read") {
    updated.status = "delivered";
  }
  return updated;
}

export class Groups {
  /**
   * `flush()` sends what waits in the outbox (outbox.js, which hands group answers back here);
   * `fail(clientId, reason)` fails a queued message and `keep(message, entry, error)` keeps one
   * that could not be encrypted (outbox.js, for both kinds).
   */
  constructor({ state, store, transport, tabs, conversations, keys, receipts, notifications, typing, flush, fail, keep, report }) {
    Object.assign(this, { state, store, transport, tabs, conversations, keys, receipts, notifications, typing, flush, fail, keep, report });
    this.seq = 0;
  }

  get self() {
    return this.state.me.email;
  }

  // --- the list ---------------------------------------------------------------------------------

  /** The groups as stored, into state (before the socket opens, and after another tab changed them). */
  async loadLocal() {
    const groups = await this.store.all("groups");
    this.state.setGroups(groups);
    await Promise.all(groups.map((group) => this.conversations.refreshCounters(groupKey(group.id))));
    await this.refreshHeld();
  }

  /** GET groups/: listed groups are stored as shown (keeping names and change ids); others become `left`. */
  async readList() {
    const answer = await groupsApi.list();
    if (!answer || !Array.isArray(answer.groups)) throw new Error("The server's group list is malformed.");
    const listed = answer.groups.map(parseGroup);
    const stored = new Map((await this.store.all("groups")).map((group) => [group.id, group]));
    const writes = listed.map((group) => ({ put: "groups", value: this.merged(stored.get(group.id), group) }));
    const ids = new Set(listed.map((group) => group.id));
    for (const old of stored.values()) {
      if (!ids.has(old.id) && !old.left) writes.push({ put: "groups", value: { ...old, left: true } });
    }
    await this.store.write(writes);
    await this.loadLocal();
    this.tabs.broadcast({ type: "groups" });
    return listed;
  }

  merged(old, group) {
    return { name: null, lastChange: 0, ...(old || {}), ...group, left: false };
  }

  /** One group's answer (create, add, admin) stored and shown. */
  async remember(answer) {
    const group = parseGroup(answer);
    const old = await this.store.get("groups", group.id);
    await this.store.write([{ put: "groups", value: this.merged(old, group) }]);
    await this.loadLocal();
    this.tabs.broadcast({ type: "groups" });
    return group;
  }

  /** On every connect: the list, the changes missed, and where our group messages stand. */
  async sync() {
    await this.askReceipts();
    try {
      const listed = await this.readList();
      for (const group of listed) await this.catchUp(group.id);
    } catch (error) {
      if (!retriable(error)) this.report(error, "The groups could not be read: ");
    }
    this.flush();
  }

  /** A stored group we are a member of, or an error fit for the user. */
  async member(id) {
    const group = await this.store.get("groups", id);
    if (!group) throw new Error("No such group.");
    if (group.left) throw new Error("You are no longer a member of this group.");
    return group;
  }

  // --- changes ------------------------------------------------------------------------------------

  /** The changes after the last one seen become notice lines. Throws ApiError (group_not_found...). */
  async changes(id) {
    const group = await this.store.get("groups", id);
    const after = group ? group.lastChange || 0 : 0;
    const answer = await groupsApi.changes(id, after);
    if (!answer || !Array.isArray(answer.changes)) throw new Error("The server's group changes are malformed.");
    const key = groupKey(id);
    const lines = await this.store.update(["groups", "messages"], [{ store: "groups", key: [id] }], ([current]) => {
      if (!current) return { writes: [], result: [] };
      let last = current.lastChange || 0;
      const made = [];
      for (const change of answer.changes) {
        if (!change || !Number.isInteger(change.id) || change.id <= last) continue;
        made.push(noticeRecord(`notice:${id}:${change.id}`, key, describeChange(change), Date.parse(change.at) || Date.now()));
        last = change.id;
      }
      const writes = made.map((value) => ({ put: "messages", value }));
      writes.push({ put: "groups", value: { ...current, lastChange: last } });
      return { writes, result: made };
    });
    await this.shown(key, lines || []);
  }

  async catchUp(id) {
    try {
      await this.changes(id);
    } catch (error) {
      if (!retriable(error) && !(error instanceof ApiError && error.code === "group_not_found")) throw error;
    }
  }

  /** New records of a group's history: into its window if loaded, counters, other tabs. */
  async shown(key, records) {
    if (!records.length) return;
    if (this.state.loaded.has(key)) this.state.upsertMessages(records);
    await this.conversations.refreshCounters(key);
    this.tabs.broadcast({ type: "conversation", email: key });
  }

  /**
   * `group_changed`: the list and the changes are read again. When we are no longer a member the
   * server shows neither: the event's own line is stored, and the group is `left`.
   */
  async onChanged(frame) {
    const id = frame && checkGroupId(frame.group);
    if (!id) return;
    try {
      await this.readList();
      await this.changes(id);
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "group_not_found")) {
        if (!retriable(error)) this.report(error);
        return;
      }
      const key = groupKey(id);
      const line = noticeRecord(`notice:${id}:event:${frame.epoch}:${frame.change}`, key, describeChange(frame), Date.now());
      const writes = [{ put: "messages", value: line }];
      const stored = await this.store.get("groups", id);
      if (stored) writes.push({ put: "groups", value: { ...stored, left: true } });
      await this.store.write(writes);
      await this.loadLocal();
      await this.shown(key, [line]);
    }
  }

  /** `group_epoch`: a member's device was linked or unlinked; the next send uses the list read now. */
  async onEpoch(frame) {
    if (!frame || !checkGroupId(frame.group)) return;
    try {
      await this.readList();
    } catch (error) {
      if (!retriable(error)) this.report(error);
    }
  }

  // --- membership -----------------------------------------------------------------------------

  /** Creates the group with our contacts `emails` and sends them its name; resolves to its key. */
  async create(name, emails) {
    const settings = groupSettingsPlaintext(name);
    const group = await this.remember(await groupsApi.create(emails));
    await this.catchUp(group.id);
    await this.queue(group.id, settings, { name });
    return groupKey(group.id);
  }

  /** Adds a contact, then sends the name again so that the new member learns it. */
  async add(key, email) {
    const group = await this.remember(await groupsApi.add(groupIdOf(key), email));
    await this.catchUp(group.id);
    await this.announceName(group.id);
  }

  async remove(key, email) {
    await groupsApi.remove(groupIdOf(key), email);
    await this.readList();
    await this.catchUp(groupIdOf(key));
  }

  async leave(key) {
    const id = groupIdOf(key);
    await groupsApi.leave(id);
    const stored = await this.store.get("groups", id);
    if (stored) await this.store.write([{ put: "groups", value: { ...stored, left: true } }]);
    await this.loadLocal();
    this.tabs.broadcast({ type: "groups" });
  }

  async makeAdmin(key, email) {
    const group = await this.remember(await groupsApi.admin(groupIdOf(key), email));
    await this.catchUp(group.id);
  }

  /** Sends the group's new name to its members (names are not on the server). */
  async rename(key, name) {
    await this.queue(groupIdOf(key), groupSettingsPlaintext(name), { name });
  }

  // --- sending ----------------------------------------------------------------------------------

  async send(key, text) {
    const id = groupIdOf(key);
    const plaintext = groupTextPlaintext(text);
    await this.announceName(id);
    await this.queue(id, plaintext, { text });
  }

  /**
   * The group's name again, alone, when member devices joined since it was last sent or received
   * (a new member's, a member's newly linked device, one set up again): they would show the group
   * unnamed (docs/PROTOCOL.md section 22, "The group's name on new devices"). Nothing joins our
   * history; it is queued before the text, which goes whatever becomes of it.
   */
  async announceName(id) {
    const group = await this.store.get("groups", id);
    if (!group || group.left || !group.name) return;
    const named = new Set(group.named || []);
    if (deviceLabels(group, this.self, this.state.deviceId).every((label) => named.has(label))) return;
    await this.queue(id, groupSettingsPlaintext(group.name), { name: group.name, quiet: true });
  }

  nextSeq(now = Date.now()) {
    this.seq += 1;
    return now * 1000 + (this.seq % 1000);
  }

  /**
   * Encrypts and queues a text (`text`) or the group's settings (`name`: stored as a notice line and
   * as the group's name). One that cannot be encrypted now waits in the outbox (held, network) or
   * fails; either way the outbox sends what it can.
   */
  async queue(id, plaintext, { text = null, name = null, quiet = false }) {
    const group = await this.member(id);
    const key = groupKey(id);
    const clientId = newClientId();
    const now = Date.now();
    // `quiet`: the name sent again for new devices: no record of it (the outbox sends it all the same).
    const message = quiet
      ? null
      : name === null
        ? { id: clientId, contact: key, direction: "out", text, ts: now, status: "sending", sender: this.self }
        : { ...noticeRecord(clientId, key, namedLine(this.self, name), now), status: "sending", sender: this.self };
    const entry = { clientId, seq: this.nextSeq(now), group: id, plaintext, ...(quiet ? { quiet } : {}) };
    if (message) {
      if (!this.state.loaded.has(key)) await this.conversations.reload(key);
      this.state.upsertMessage(message);
    }
    let queued = true;
    try {
      await this.encrypt(group, entry, message ? [{ put: "messages", value: message }] : []);
    } catch (error) {
      queued = await this.keepUnencrypted(message, entry, error);
    }
    // Going to every member device of now: they will hold the name (a refused one changes nothing).
    if (name !== null && queued) await this.setName(id, name, deviceLabels(group, this.self, this.state.deviceId));
    this.tabs.broadcast({ type: "conversation", email: key });
    this.flush();
  }

  /**
   * Encrypts an outbox entry for the group as stored; commits `writes` and the entry with its
   * group_send frame (without `type`), which it resolves to.
   */
  async encrypt(group, entry, writes, again = null) {
    let frame = null;
    await encryptForGroup(
      this.store,
      { groupId: group.id, self: this.self, selfDevice: this.state.deviceId, members: group.members },
      entry.plaintext,
      {
        again,
        fetchBundles: (email, deviceIds) => keysApi.bundles(email, deviceIds),
        writesFor: (made) => {
          frame = { client_id: entry.clientId, group: group.id, epoch: group.epoch, body: made.body, keys: made.keys };
          return [...writes, { put: "outbox", value: { ...entry, frame, distribution: made.distribution } }];
        },
      },
    );
    return frame;
  }

  /**
   * A message that could not be encrypted yet: queued (network, a member's identity change: held)
   * or failed, as a 1:1 message (outbox.js keepUnencrypted: `keep`). A quiet name, without a
   * record, waits the same way, or is dropped. Resolves to whether it is still queued.
   */
  async keepUnencrypted(message, entry, error) {
    const held = error instanceof IdentityChangedError;
    if (!message) {
      if (held || retriable(error)) await this.store.write([{ put: "outbox", value: entry }]);
      return held || retriable(error);
    }
    const queued = await this.keep(message, entry, error);
    if (held) await this.refreshHeld();
    return queued;
  }

  /** The frame of a group entry stored without one (held, network down), or null if it cannot be made now. */
  async encryptHeld(entry) {
    const message = await this.store.get("messages", entry.clientId);
    if (!message && !entry.quiet) {
      await this.store.write([{ delete: "outbox", key: [entry.clientId] }]);
      return null;
    }
    const sending = message && { ...message, status: "sending" };
    try {
      const group = await this.member(entry.group);
      const frame = await this.encrypt(group, entry, sending ? [{ put: "messages", value: sending }] : []);
      if (sending) this.state.upsertMessage(sending);
      return frame;
    } catch (error) {
      if (error instanceof IdentityChangedError) {
        if (message) await this.hold(message, error.email);
        return null;
      }
      if (retriable(error)) return null;
      await this.fail(entry.clientId, errorMessage(error));
      return null;
    }
  }

  /** `message` waits (status "held") until the user accepts `email`'s new safety number. */
  async hold(message, email) {
    if (message.status !== "held") {
      const held = { ...message, status: "held" };
      await this.store.write([{ put: "messages", value: held }]);
      this.state.upsertMessage(held);
    }
    await this.keys.refreshIdentity(email);
    await this.refreshHeld();
  }

  /** The outbox entry of a failed group message sent again (outbox.js retry), from its text. */
  retryEntry(record, seq) {
    return { clientId: record.id, seq, group: groupIdOf(record.contact), plaintext: groupTextPlaintext(record.text) };
  }

  /** `sent` for a group entry (outbox.js marks the message sent): the devices of its `keys` hold our sender key now. */
  async onSent(entry) {
    if (entry.frame) await noteKeysGiven(this.store, entry.group, entry.frame);
  }

  /**
   * An `error` frame about a group entry (section 23): stale_epoch repairs and sends again (the
   * caller flushes), the others fail the message with a reason.
   */
  async onError(frame, entry) {
    const id = entry.group;
    if (frame.code === "stale_epoch") {
      const stale = (entry.stale || 0) + 1;
      if (stale >= STALE_MAX) {
        await this.fail(entry.clientId, `Not sent: the group changed ${STALE_MAX} times in a row. Try again.`);
        return;
      }
      await this.repair({ ...entry, stale });
      return;
    }
    const reasons = {
      group_not_found: "Not sent: you are no longer a member of this group.",
      no_devices: "Not sent: nobody else in the group has a device that can receive it now.",
      invalid_keys: "Not sent: the server refused its keys (a bug). Try again.",
    };
    if (frame.code === "group_not_found") await this.readList().catch(() => {});
    await this.fail(entry.clientId, reasons[frame.code] || frame.detail || "The server refused this message.");
  }

  /**
   * After `stale_epoch`: the group read again and section 22's rule applied again to the stored
   * frame (session.js encryptForGroup with `again`), under the same client_id.
   */
  async repair(entry) {
    try {
      await this.readList();
      const group = await this.member(entry.group);
      const again = entry.frame ? { body: entry.frame.body, keys: entry.frame.keys, distribution: entry.distribution } : null;
      await this.encrypt(group, entry, [], again);
    } catch (error) {
      if (error instanceof IdentityChangedError) {
        // The entry waits without a frame until the change is accepted (then encryptHeld).
        const { frame, distribution, ...unencrypted } = entry;
        await this.store.write([{ put: "outbox", value: unencrypted }]);
        const message = await this.store.get("messages", entry.clientId);
        if (message) await this.hold(message, error.email);
        return;
      }
      if (retriable(error)) return; // the stored frame goes again on the next connect
      await this.fail(entry.clientId, errorMessage(error));
    }
  }

  /**
   * The group's name, from a settings message (ours or a member's), on the group as stored now. A
   * group not read from the server yet (its copies came first) keeps it until it is (readList merges).
   */
  async setName(id, name, named = null) {
    await this.store.update(["groups"], [{ store: "groups", key: [id] }], ([group]) => {
      const current = group || { id, epoch: 1, role: "member", members: [], lastChange: 0 };
      // `named`: the member devices that hold this name (section 22); a member's settings message
      // went to every member device of its time, as stored here.
      const holders = named || deviceLabels(current, this.self, this.state.deviceId);
      return { writes: [{ put: "groups", value: { ...current, name, named: holders } }] };
    });
    this.state.updateGroup(groupKey(id), { name });
    this.tabs.broadcast({ type: "groups" });
  }

  /** Whether `email` is a member of group `id` as stored (outbox.js releaseHeld). */
  async hasMember(id, email) {
    const group = await this.store.get("groups", id);
    return Boolean(group && group.members.some((m) => m.email.toLowerCase() === email.toLowerCase()));
  }

  /** Each group's members whose safety number changed and was not accepted (state `held`). */
  async refreshHeld() {
    const changed = new Set(
      (await this.store.all("identities")).filter((i) => i.changedTo).map((i) => i.email.toLowerCase()),
    );
    for (const group of this.state.groups.values()) {
      const held = group.members.map((m) => m.email).filter((email) => changed.has(email.toLowerCase()));
      if (held.join() !== group.held.join()) this.state.updateGroup(group.key, { held });
    }
  }

  // --- receiving ----------------------------------------------------------------------------------

  /** A `group_message` frame checked for inbox.js (groupCopyFrame), or null. */
  checkFrame(frame) {
    return groupCopyFrame(frame, this.state.me && this.state.me.email);
  }

  /**
   * Copies of one sender device taken from a batch (inbox.js), checked by groupCopyFrame: decrypted
   * and stored in one transaction, then acknowledged; the open conversation's are marked read after
   * the batch (receipts.js markActiveRead), as 1:1 messages are.
   */
  async takeFrom(frames) {
    const { from: email, from_device: device, own } = frames[0];
    const recordId = (frame) => `${own ? "own" : "in"}:${frame.id}`;
    let results;
    try {
      results = await decryptGroupBatchFrom(this.store, { email, device, own }, frames, {
        recordId,
        messageRecord: (frame, { content, failed }) => this.messageRecord(frame, recordId(frame), content, failed),
      });
    } catch (error) {
      // Storage failure or no keys: not acknowledged, so the server keeps them for later.
      this.report(error, "A group message could not be stored: ");
      return;
    }
    for (const frame of frames) this.receipts.ack(frame.id);
    const stored = results.filter((result) => result.status !== "duplicate" && result.message && !result.message.ignored);
    const keys = new Set(stored.map((r) => r.message.contact));
    for (const key of keys) {
      await this.shown(key, stored.filter((r) => r.message.contact === key).map((r) => r.message));
      if (!own) this.typing.showIn(key, email, false);
      if (!own && stored.some((r) => r.message.contact === key && !r.message.notice)) {
        const group = this.state.groups.get(key);
        this.notifications.notifyGroup(key, group && group.name);
      }
    }
    for (const { message, content } of stored) {
      if (content && content.type === "settings") await this.setName(groupIdOf(message.contact), content.name);
    }
    // A group we were just added to, its copies ahead of its group_changed: read the list now.
    if ([...keys].some((key) => !this.state.groups.has(key))) await this.sync();
    if (results.identityChanged) {
      await this.keys.refreshIdentity(email);
      await this.refreshHeld();
    }
  }

  /**
   * The record of one copy's outcome (session.js decryptGroupBatchFrom): a type this client does
   * not know, and a name the group has already, are acknowledged and not shown (section 22); a
   * settings message's name is stored after the batch.
   */
  messageRecord(frame, id, content, failed) {
    const key = groupKey(frame.group);
    const ts = Date.parse(frame.sent_at) || Date.now();
    const group = this.state.groups.get(key);
    const sameName = content && content.type === "settings" && group && group.name === content.name;
    if ((content && content.type === "unknown") || sameName) return ignoredRecord(id, ts);
    if (content && content.type === "settings") {
      return { ...noticeRecord(id, key, namedLine(frame.from, content.name), ts), sender: frame.from };
    }
    const record = {
      id,
      contact: key,
      direction: frame.own ? "out" : "in",
      text: content ? content.text : "",
      ts,
      sender: frame.from,
    };
    if (frame.own) {
      Object.assign(record, { serverId: frame.message_id, status: "sent", groupAwaiting: frame.message_id });
    } else {
      Object.assign(record, { serverId: frame.id, messageId: frame.message_id, status: "received", unread: 1 });
    }
    if (failed) record.failed = failed;
    return record;
  }

  // --- receipts -----------------------------------------------------------------------------------

  /** `group_receipts`: the counts of our sent group messages (message ids). */
  async onReceipts(frame) {
    const entries = (frame && Array.isArray(frame.receipts) ? frame.receipts : []).filter(
      (r) => r && ["id", "delivered", "read", "of"].every((k) => Number.isInteger(r[k]) && r[k] >= 0),
    );
    if (!entries.length) return;
    const updated = await this.store.update(
      ["messages"],
      entries.map((r) => ({ store: "messages", index: "serverId", key: [r.id] })),
      (records) => {
        const changed = [];
        records.forEach((record, i) => {
          if (record && record.direction === "out" && !record.notice && isGroupKey(record.contact)) {
            changed.push(withGroupCounts(record, entries[i]));
          }
        });
        return { writes: changed.map((value) => ({ put: "messages", value })), result: changed };
      },
    );
    this.state.upsertMessages(updated || []);
    for (const key of new Set((updated || []).map((m) => m.contact))) this.tabs.broadcast({ type: "conversation", email: key });
  }

  /**
   * On every connect: where our newest group messages not read by every member stand (pushes are
   * sparse). The newest: in a group someone may never read, and the oldest waiting ones would then
   * be asked about for ever while newer ones never are (receipts.js asks the same way).
   */
  async askReceipts() {
    const waiting = await this.store.page("messages", "groupAwaiting", [], { limit: RECEIPTS_MAX_IDS });
    const ids = waiting.map((m) => m.groupAwaiting);
    if (ids.length) this.transport.send({ type: "group_receipts", ids });
  }
}
