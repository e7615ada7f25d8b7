// The one module of the app that calls the protocol code (static/js/crypto/): device keys, sessions,
// encryption and decryption, identity trust, safety numbers, and prekey upkeep.
//
// Rules kept here (docs/PROTOCOL.md):
// - All work on one account's sessions (one per device of it, docs/PROTOCOL.md section 14; our own
//   other devices under our own email) runs under the Web Lock "sm:<account>:peer:<email>", so two
//   tabs never encrypt from, or decrypt into, the same stored state (a forked ratchet reuses keys).
//   A send holds the recipient's and our own lock, taken in sorted order.
// - Inside the lock: read state, run all the cryptography, then write the new state and its outcome
//   (message, outbox entry, consumed prekey...) in ONE IndexedDB transaction (storage.js says why).
// - A one-time prekey's private key is deleted only when a session was established from it, never
//   because a decryption failed (a forged message must not burn the key the genuine one needs).
// - The first identity key seen for a contact is trusted; a different one later is recorded as a
//   pending change and nothing is encrypted until the user acknowledges it (the server could have
//   substituted it).
// - Groups (docs/PROTOCOL.md sections 22 and 23): our sender key of a group is used under the Web
//   Lock "sm:<account>:group:<id>", taken before the peer locks of the members whose pairwise
//   sessions carry its distribution (those in sorted order, as every send takes them: no cycle).
//   Received sender keys of a sender device change only under that sender's peer lock, as its
//   pairwise session does.
// - Nothing here logs. Private keys stay in IndexedDB.
import {
  acceptInitialMessage,
  bytesToText,
  createSenderKey,
  decodeGroupPlaintext,
  decryptGroupMessage,
  decryptMessage,
  encodeGroupSettings,
  encodeGroupText,
  encryptGroupMessage,
  encryptMessage,
  EnvelopeKind,
  formatSafetyNumber,
  fromBase64,
  generateIdentityKeyPair,
  generateOneTimePrekeys,
  generateSignedPrekey,
  initiateSession,
  isInitialMessageForSession,
  parseEnvelope,
  parseSenderKeyDistribution,
  ProtocolError,
  publicOneTimePrekey,
  publicSignedPrekey,
  receivedSenderKeys,
  registrationKeys,
  safetyNumber,
  senderKeyDistribution,
  textToBytes,
  toBase64,
} from "./crypto/index.js";
import { withLock } from "./locks.js";

export const ONE_TIME_PREKEY_BATCH = 100;
// Refill when the server holds fewer than this many unused one-time prekeys.
export const ONE_TIME_PREKEY_MIN = 25;
// Rotate the signed prekey after a week (the server's maximum age is longer); keep a replaced
// one's private key for the grace period, so first messages encrypted to it still decrypt.
export const SIGNED_PREKEY_ROTATE_MS = 7 * 24 * 3600 * 1000;
export const SIGNED_PREKEY_GRACE_MS = 30 * 24 * 3600 * 1000;
const ARCHIVED_SESSIONS = 3;

export class IdentityChangedError extends Error {
  constructor(email) {
    super(`The safety number with ${email} changed. Review it before sending.`);
    this.name = "IdentityChangedError";
    this.email = email;
  }
}

export class NotSetUpError extends Error {
  constructor() {
    super("This browser has no keys for this account.");
    this.name = "NotSetUpError";
  }
}

const peerLock = (store, email) => `sm:${store.account}:peer:${email}`;
const keysLock = (store) => `sm:${store.account}:keys`;
const groupLock = (store, groupId) => `sm:${store.account}:group:${groupId}`;

// --- device keys --------------------------------------------------------------------------------

/**
 * A full set of device keys for registration or a new browser. Nothing is stored here: the caller
 * stores `writes` only after the server accepted `publicKeys` (a refused registration or set-up must not
 * replace the keys this browser holds). A linked device passes the account's `identityKeyPair` it
 * received (docs/PROTOCOL.md section 18); everything else is new.
 */
export function createDeviceKeys({ identityKeyPair = generateIdentityKeyPair() } = {}) {
  const signedPrekey = generateSignedPrekey(identityKeyPair, 1);
  const { prekeys, nextKeyId } = generateOneTimePrekeys(1, ONE_TIME_PREKEY_BATCH);
  const now = Date.now();
  const writes = [
    { put: "signalKeys", value: { name: "identity", value: identityKeyPair } },
    { put: "signalKeys", value: { name: `spk:${signedPrekey.keyId}`, value: { ...signedPrekey, createdAt: now } } },
    ...prekeys.map((p) => ({ put: "signalKeys", value: { name: `opk:${p.keyId}`, value: p } })),
    { put: "meta", value: { name: "nextOneTimePrekeyId", value: nextKeyId } },
    { put: "meta", value: { name: "nextSignedPrekeyId", value: signedPrekey.keyId + 1 } },
    { put: "meta", value: { name: "signedPrekey", value: { keyId: signedPrekey.keyId, createdAt: now } } },
  ];
  return {
    publicKeys: registrationKeys({ identityKeyPair, signedPrekey, oneTimePrekeys: prekeys }),
    identityKey: identityKeyPair.publicKey,
    writes,
  };
}

export async function ownIdentityKey(store) {
  const identity = await store.getKey("identity");
  return identity ? identity.publicKey : null;
}

/** Whether this browser holds the account's current keys, given GET keys/prekeys/count. */
export async function keysMatchServer(store, status) {
  const identity = await store.getKey("identity");
  if (!identity) return false;
  // The server reports the account's identity key: a different one means another browser was
  // set up as the account's device since.
  return !status.identity_key || status.identity_key === identity.publicKey;
}

// --- identities ---------------------------------------------------------------------------------

export function safetyNumberFor(ourIdentityKey, theirIdentityKey) {
  return formatSafetyNumber(safetyNumber(ourIdentityKey, theirIdentityKey));
}

/** Compare a key the server reports for `email` with the trusted one; record a change. */
export function noteIdentityKey(store, email, identityKey) {
  return store.update(["identities"], [{ store: "identities", key: [email] }], ([trusted]) => {
    if (!trusted) {
      return {
        writes: [{ put: "identities", value: { email, identityKey, verified: false, firstSeen: Date.now() } }],
        result: "trusted",
      };
    }
    if (trusted.identityKey === identityKey) {
      if (!trusted.changedTo) return { writes: [], result: "same" };
      // Back to the key we trusted: drop the pending change.
      return { writes: [{ put: "identities", value: { ...trusted, changedTo: null } }], result: "same" };
    }
    if (trusted.changedTo === identityKey) return { writes: [], result: "changed" };
    return {
      writes: [{ put: "identities", value: { ...trusted, changedTo: identityKey, changedAt: Date.now() } }],
      result: "changed",
    };
  });
}

/**
 * The user accepted the new identity key of `email`: trust it (unverified), and drop sessions bound
 * to any other key (with every device of the account) so the next message starts fresh sessions
 * with the new one.
 */
export function acceptIdentityChange(store, email) {
  return withLock(peerLock(store, email), async () => {
    // Read under the lock: no session of this account changes before the update below.
    const records = await store.all("signalSessions", { prefix: [email] });
    return store.update(["identities", "signalSessions"], [{ store: "identities", key: [email] }], ([trusted]) => {
      if (!trusted || !trusted.changedTo) return { writes: [] };
      const identityKey = trusted.changedTo;
      const writes = [
        { put: "identities", value: { ...trusted, identityKey, changedTo: null, verified: false, acceptedAt: Date.now() } },
      ];
      for (const record of records) {
        const keep = sessionCandidates(record).filter((s) => s.remoteIdentityKey === identityKey);
        if (keep.length) writes.push({ put: "signalSessions", value: { ...record, current: keep[0], archived: keep.slice(1) } });
        else writes.push({ delete: "signalSessions", key: [email, record.device] });
      }
      return { writes };
    });
  });
}

export function setVerified(store, email, verified) {
  return store.update(["identities"], [{ store: "identities", key: [email] }], ([trusted]) => ({
    writes: trusted && !trusted.changedTo ? [{ put: "identities", value: { ...trusted, verified } }] : [],
  }));
}

// --- sessions -----------------------------------------------------------------------------------

function sessionCandidates(record) {
  if (!record) return [];
  return [record.current, ...(record.archived || [])].filter(Boolean);
}

function withCurrent(email, device, record, session, replacedIndex = null) {
  const others = sessionCandidates(record).filter((_, i) => i !== replacedIndex);
  return { email, device, current: session, archived: others.slice(0, ARCHIVED_SESSIONS) };
}

/**
 * Runs `callback` under the locks of every email in `emails`, taken one after the other in a fixed
 * (sorted) order: two tabs sending to a contact, each also encrypting for our own devices, never
 * wait for each other's second lock while holding their first.
 */
function withPeerLocks(store, emails, callback) {
  const names = [...new Set(emails)].sort().map((email) => peerLock(store, email));
  const run = (i) => (i === names.length ? callback() : withLock(names[i], () => run(i + 1)));
  return run(0);
}

/**
 * Sessions with the devices a keys/bundles answer names (section 16): one X3DH per device, each a
 * version-1 bundle under the answer's one identity key (which the caller compared with the trusted
 * one), so every signed prekey is verified under it (initiateSession throws INVALID_SIGNATURE).
 * @returns {Map<number, object>} device id -> new session
 */
async function sessionsFromBundles(identityKeyPair, answer) {
  const started = new Map();
  for (const entry of answer.devices) {
    const bundle = { identity_key: answer.identity_key, signed_prekey: entry.signed_prekey, one_time_prekey: entry.one_time_prekey };
    started.set(entry.device_id, (await initiateSession({ identityKeyPair, bundle })).session);
  }
  return started;
}

function bundlesAnswer(answer, wanted) {
  if (!answer || typeof answer.identity_key !== "string" || !Array.isArray(answer.devices)) {
    throw new ProtocolError("invalid_bundle", "malformed bundles answer");
  }
  for (const entry of answer.devices) {
    if (!entry || !wanted.includes(entry.device_id)) throw new ProtocolError("invalid_bundle", "bundle of a device not asked for");
  }
  return answer;
}

/**
 * Encrypts `plaintext` (bytes) once for each of `deviceIds` of `email`, with the session of that
 * device pair, starting sessions by X3DH from fresh bundles where none is bound to the expected
 * identity key (docs/PROTOCOL.md sections 16 and 17.1). The caller holds the lock of `email` and
 * commits the returned writes (the advanced sessions; the identity trusted at first contact) with
 * whatever the copies are for, in ONE transaction. Shared by 1:1 sends (encryptFor) and sender key
 * distributions (encryptForGroup).
 *
 * `identityKey` is the trusted key of `email` (null: first contact, the bundles' key is trusted,
 * unverified); `own`: our own account, whose devices must carry our own identity key. A bundle
 * under another key is recorded as a pending change (IdentityChangedError): nothing is encrypted.
 * Devices of `previous` (copies already made, [{device, kind, body}]) keep their copy as made.
 *
 * @returns {Promise<{copies: {device: number, kind: string, body: string}[], writes: object[]}>}
 *   copies in device order; a device the bundles answer left out (no current signed prekey) has none
 */
async function sealForDevices(store, identityKeyPair, { email, deviceIds, identityKey = null, own = false, previous = [], plaintext, fetchBundles }) {
  const expected = own ? identityKeyPair.publicKey : identityKey;
  const made = new Map((previous || []).map((copy) => [copy.device, copy]));
  const sorted = [...deviceIds].sort((a, b) => a - b);
  const writes = [];
  const records = new Map();
  const needBundle = [];
  for (const device of sorted) {
    if (made.has(device)) continue;
    const record = await store.get("signalSessions", email, device);
    records.set(device, record);
    if (!record || !record.current || (expected && record.current.remoteIdentityKey !== expected)) needBundle.push(device);
  }
  let started = new Map();
  if (needBundle.length) {
    const answer = bundlesAnswer(await fetchBundles(email, needBundle), needBundle);
    if (!expected) {
      // First contact: the identity key of the first bundles is trusted (unverified).
      writes.push({ put: "identities", value: { email, identityKey: answer.identity_key, verified: false, firstSeen: Date.now() } });
    } else if (answer.identity_key !== expected) {
      if (own) throw new ProtocolError("invalid_bundle", "our own device's bundle carries another identity key");
      await noteIdentityKey(store, email, answer.identity_key);
      throw new IdentityChangedError(email);
    }
    started = await sessionsFromBundles(identityKeyPair, answer);
  }
  const copies = [];
  for (const device of sorted) {
    if (made.has(device)) {
      copies.push(made.get(device));
      continue;
    }
    const old = records.get(device);
    let record = old;
    if (started.has(device)) {
      record = withCurrent(email, device, null, started.get(device));
      record.archived = sessionCandidates(old).slice(0, ARCHIVED_SESSIONS);
    } else if (needBundle.includes(device)) {
      continue; // no bundle (no current signed prekey): the server's answer will say so
    }
    const encrypted = await encryptMessage(record.current, plaintext);
    writes.push({ put: "signalSessions", value: { ...record, email, device, current: encrypted.session } });
    copies.push({ device, kind: encrypted.kind, body: encrypted.body });
  }
  return { copies, writes };
}

/**
 * Encrypts `text` once for each device of `targets` (docs/PROTOCOL.md section 17.1): the
 * recipient's (`copies`) and our own other devices (`own`), each with the session of that device
 * pair, starting sessions by X3DH from fresh bundles where none is bound to the trusted identity
 * key. Commits every advanced session together with `writesFor({copies, own})` (the outbox entry
 * holding the whole frame, and the message) in ONE transaction, under the locks of the recipient
 * and of our own email: encrypting twice from one stored state would reuse a message key, so the
 * frame is stored before it can leave and is resent as stored.
 *
 * After a `device_mismatch`, `reuse()` gives the frame already stored: its ciphertexts for devices
 * still targeted are kept as they are (their sessions advanced when they were made), and only the
 * devices without one are encrypted for. Sessions with the devices of `drop` (removed from the
 * account) are deleted in the same transaction.
 *
 * @param {object} store AccountStore
 * @param {{to: string, self: string}} parties the recipient and our own email
 * @param {string} text
 * @param {object} io
 * @param {{to: number[], own: number[], identityKey?: string|null}} io.targets device ids (own: without
 *   ours), and the identity key the recipient's device list named
 * @param {(email: string, deviceIds: number[]) => Promise<object>} io.fetchBundles keys/bundles
 * @param {(frame: {copies: object[], own: object[]}) => object[]} io.writesFor
 * @param {() => Promise<{copies: object[], own: object[]}|null>} [io.reuse] read under the locks
 * @param {{to: number[], own: number[]}} [io.drop]
 * @returns {Promise<{copies: object[], own: object[]}>}
 */
export function encryptFor(store, { to, self }, text, { targets, fetchBundles, writesFor, reuse = null, drop = null }) {
  return withPeerLocks(store, [to, self], async () => {
    const identityKeyPair = await store.getKey("identity");
    if (!identityKeyPair) throw new NotSetUpError();
    const trusted = await store.get("identities", to);
    if (trusted && trusted.changedTo) throw new IdentityChangedError(to);
    if (trusted && targets.identityKey && targets.identityKey !== trusted.identityKey) {
      await noteIdentityKey(store, to, targets.identityKey);
      throw new IdentityChangedError(to);
    }
    if (targets.ownIdentityKey && targets.ownIdentityKey !== identityKeyPair.publicKey) {
      throw new Error("Your account's identity key was replaced on another device. Sign in again.");
    }
    const made = (reuse && (await reuse())) || { copies: [], own: [] };
    const writes = [];
    for (const device of drop ? drop.to : []) writes.push({ delete: "signalSessions", key: [to, device] });
    for (const device of drop ? drop.own : []) writes.push({ delete: "signalSessions", key: [self, device] });
    const plaintext = textToBytes(text);
    const theirs = await sealForDevices(store, identityKeyPair, {
      email: to,
      deviceIds: targets.to,
      identityKey: trusted ? trusted.identityKey : null,
      previous: made.copies,
      plaintext,
      fetchBundles,
    });
    const ours = await sealForDevices(store, identityKeyPair, {
      email: self,
      deviceIds: targets.own,
      own: true,
      previous: made.own,
      plaintext,
      fetchBundles,
    });
    writes.push(...theirs.writes, ...ours.writes);
    const frame = { copies: theirs.copies, own: ours.copies };
    if (!frame.copies.length) throw new Error(`None of ${to}'s devices can be written to now.`);
    writes.push(...writesFor(frame));
    await store.write(writes);
    return frame;
  });
}

/**
 * Deletes our sessions with the devices of `email` not in `deviceIds` (the account's devices now,
 * keys/devices): a removed device gets nothing more (docs/PROTOCOL.md section 19).
 * @returns {Promise<number[]>} the devices whose sessions were dropped
 */
export function dropSessionsExcept(store, email, deviceIds) {
  return withLock(peerLock(store, email), async () => {
    const records = await store.all("signalSessions", { prefix: [email] });
    const gone = records.map((record) => record.device).filter((device) => !deviceIds.includes(device));
    await store.write(gone.map((device) => ({ delete: "signalSessions", key: [email, device] })));
    return gone;
  });
}

function failureCode(error) {
  if (error instanceof ProtocolError) return error.code;
  return "decryption_failed";
}

/**
 * The opening of pairwise envelopes from one sender device within a batch (docs/PROTOCOL.md
 * sections 7.2 and 16): `open(record, kind, body)` decrypts one envelope against the sessions of
 * `record` (the state the previous envelope left), or founds a session from a prekey envelope,
 * and resolves to {session, plaintext (bytes), index} (index: the candidate session used, null
 * for a new one) without storing anything; the consumed one-time prekeys and used ephemeral keys
 * are pushed to `writes`, which the caller commits with the sessions. Shared by 1:1 messages
 * (decryptBatchFrom) and the sender key entries of group messages (decryptGroupBatchFrom).
 * `own`: the sender is our own account; its envelopes must be under our own identity key.
 */
function envelopeOpener(store, identityKeyPair, own, writes) {
  const consumedPrekeys = new Set();
  const usedEphemeralKeys = new Set();
  return async (record, kind, body) => {
    const envelope = parseEnvelope(kind, body);
    const candidates = sessionCandidates(record);
    let outcome = null;
    if (envelope.kind === EnvelopeKind.PREKEY) {
      const index = candidates.findIndex((s) => isInitialMessageForSession(s, envelope));
      if (index >= 0) {
        // The initiator repeats its X3DH header until it hears back: same session.
        const result = await decryptMessage(candidates[index], envelope);
        outcome = { session: result.session, plaintext: result.plaintext, index };
      } else {
        const header = envelope.prekey;
        const signedPrekey = await store.getKey(`spk:${header.signedPrekeyId}`);
        const oneTimePrekey =
          header.oneTimePrekeyId === null || consumedPrekeys.has(header.oneTimePrekeyId)
            ? null
            : await store.getKey(`opk:${header.oneTimePrekeyId}`);
        const used =
          usedEphemeralKeys.has(header.ephemeralKey) || Boolean(await store.get("ephemeralKeys", header.ephemeralKey));
        const result = await acceptInitialMessage({
          identityKeyPair,
          signedPrekey,
          oneTimePrekey,
          envelope,
          usedEphemeralKeys: { has: (key) => used && key === header.ephemeralKey },
        });
        if (own && result.session.remoteIdentityKey !== identityKeyPair.publicKey) {
          // Not our account's key: not one of our devices, whatever the server labelled it.
          // Nothing of it is kept (its prekey stays for the genuine first message).
          throw new ProtocolError("authentication_failed", "own device message under another identity key");
        }
        outcome = { session: result.session, plaintext: result.plaintext, index: null };
        // Only now that a session was established from them (never on a failed attempt):
        if (result.consumedOneTimePrekeyId !== null) {
          consumedPrekeys.add(result.consumedOneTimePrekeyId);
          writes.push({ delete: "signalKeys", key: [`opk:${result.consumedOneTimePrekeyId}`] });
        }
        usedEphemeralKeys.add(result.ephemeralKey);
        writes.push({
          put: "ephemeralKeys",
          value: { key: result.ephemeralKey, signedPrekeyId: header.signedPrekeyId, at: Date.now() },
        });
      }
    } else {
      let lastError = null;
      for (let c = 0; c < candidates.length && !outcome; c += 1) {
        try {
          const result = await decryptMessage(candidates[c], envelope);
          outcome = { session: result.session, plaintext: result.plaintext, index: c };
        } catch (error) {
          lastError = error;
        }
      }
      if (!outcome) throw lastError || new ProtocolError("session_mismatch", "no session with this contact");
    }
    if (own && outcome.session.remoteIdentityKey !== identityKeyPair.publicKey) {
      throw new ProtocolError("authentication_failed", "own device message under another identity key");
    }
    return outcome;
  };
}

/**
 * What a batch from one sender device starts from (the caller holds the sender's lock): which
 * frames are duplicates, our identity key pair and the stored sessions with that device. A copy
 * whose acknowledgement was lost comes back: it is already stored (and its message key is gone),
 * so it is only acknowledged again; so is a copy repeated within the batch.
 */
async function batchStart(store, { email, device }, frames, recordId) {
  const stored = await store.has("messages", null, frames.map((frame) => [recordId(frame)]));
  const identityKeyPair = await store.getKey("identity");
  if (!identityKeyPair) throw new NotSetUpError();
  const first = await store.get("signalSessions", email, device);
  const seen = new Set();
  const duplicate = frames.map((frame, i) => {
    const again = stored[i] || seen.has(frame.id);
    seen.add(frame.id);
    return again;
  });
  return { duplicate, identityKeyPair, first };
}

/**
 * Decrypts envelopes from one sender, in order, and commits the outcome of all of them in one
 * transaction, under the sender's lock: a message record per envelope (decrypted text, or a failure
 * marker), the session state after the last one, the consumed one-time prekeys and the used
 * ephemeral keys. A backlog of thousands is stored in a few transactions, not thousands (issue #14);
 * if the transaction fails nothing of the batch is stored and nothing may be acknowledged, as for one.
 *
 * Between envelopes the session lives in memory; each envelope is tried against the state the
 * previous one left, exactly as if each had been committed on its own.
 *
 * One device's session: frames of one sender device (`from`, `from_device`, section 17.2). Frames
 * from our own other devices (`from` is our own email) must carry our own identity key; their key
 * is never recorded as a contact's.
 *
 * @param {object} store
 * @param {{email: string, device: number, own?: boolean}} sender every frame's `from` and `from_device`;
 *   `own`: our own account
 * @param {{id: number, from: string, kind: string, body: string, sent_at: string}[]} frames
 * @param {{recordId: (frame: object) => string, messageRecord: (frame: object, fields: object) => object}} records
 *   the id of a frame's message record (how a redelivered frame is recognised) and the record for an outcome
 * @returns {Promise<{status: "duplicate"|"stored"|"failed", message?: object}[]>} per frame, and
 *   `identityChanged` on the array: a new identity key was noted for the sender
 */
export function decryptBatchFrom(store, { email, device, own = false }, frames, { recordId, messageRecord }) {
  return withLock(peerLock(store, email), async () => {
    const { duplicate, identityKeyPair, first } = await batchStart(store, { email, device }, frames, recordId);
    let record = first;
    const remoteIdentityKeys = [];
    const writes = [];
    const results = [];
    const open = envelopeOpener(store, identityKeyPair, own, writes);

    for (const [i, frame] of frames.entries()) {
      if (duplicate[i]) {
        results.push({ status: "duplicate" });
        continue;
      }
      let text = null;
      let failed = null;
      try {
        const outcome = await open(record, frame.kind, frame.body);
        const key = outcome.session.remoteIdentityKey;
        text = bytesToText(outcome.plaintext);
        if (remoteIdentityKeys[remoteIdentityKeys.length - 1] !== key) remoteIdentityKeys.push(key);
        record = withCurrent(email, device, record, outcome.session, outcome.index);
      } catch (error) {
        failed = failureCode(error);
      }
      const message = messageRecord(frame, { text, failed });
      writes.push({ put: "messages", value: message });
      results.push({ status: failed ? "failed" : "stored", message });
    }

    if (record !== first) writes.push({ put: "signalSessions", value: record });
    await store.write(writes);
    results.identityChanged = await noteSenderIdentity(store, email, own, remoteIdentityKeys);
    return results;
  });
}

/** The identity keys a batch's sessions were bound to, compared with the trusted one: whether it changed. */
async function noteSenderIdentity(store, email, own, remoteIdentityKeys) {
  let identityChanged = false;
  for (const key of own ? [] : remoteIdentityKeys) {
    if ((await noteIdentityKey(store, email, key)) === "changed") identityChanged = true;
  }
  return identityChanged;
}

// --- groups -------------------------------------------------------------------------------------

/**
 * The member devices a group message reaches (section 21's `devices`): [lower-case email, device]
 * for every device of every member, this device left out, in a fixed order.
 */
export function memberDevices(members, self, selfDevice) {
  const own = self.toLowerCase();
  const pairs = [];
  for (const member of members) {
    const email = member.email.toLowerCase();
    for (const device of member.devices) if (!(email === own && device === selfDevice)) pairs.push([email, device]);
  }
  return pairs.sort(comparePairs);
}

function comparePairs([a, x], [b, y]) {
  if (a !== b) return a < b ? -1 : 1;
  return x - y;
}

const pairLabel = ([email, device]) => `${device} ${email}`;

/**
 * Section 22's "when to make a new sender key": `given` are the devices our current key was handed
 * to (null: no key yet), `targets` the member devices now (memberDevices). If any device given the
 * key is no longer a member device, a new key is made (`fresh`) and every target needs it (a
 * removed member keeps every key it got and must not read what follows); otherwise only the
 * targets without it need it.
 * @returns {{fresh: boolean, needs: [string, number][]}}
 */
export function senderKeyPlan(given, targets) {
  const now = new Set(targets.map(pairLabel));
  if (!given || !given.every((pair) => now.has(pairLabel(pair)))) return { fresh: true, needs: [...targets] };
  const holding = new Set(given.map(pairLabel));
  return { fresh: false, needs: targets.filter((pair) => !holding.has(pairLabel(pair))) };
}

/** The key id a group message body of ours was encrypted with (its header's bytes 1-4, section 22). */
export function bodyKeyId(body) {
  const bytes = fromBase64(body, { what: "group message body" });
  return ((bytes[1] << 24) >>> 0) + (bytes[2] << 16) + (bytes[3] << 8) + bytes[4];
}

/** The plaintext of a group text message (section 22, type 0x01), base64 as an outbox entry keeps it. */
export function groupTextPlaintext(text) {
  return toBase64(encodeGroupText(text));
}

/** The plaintext of a group's settings (type 0x02: its name); a name breaking section 22's rule throws. */
export function groupSettingsPlaintext(name) {
  try {
    return toBase64(encodeGroupSettings({ name }));
  } catch {
    throw new Error("A group name has 1 to 64 characters and no control characters.");
  }
}

/**
 * Encrypts a group message (docs/PROTOCOL.md sections 22 and 23) under the group's lock: section
 * 22's rule decides whether our sender key is kept or a new one made (senderKeyPlan); its
 * distribution goes to each member device that needs it through the pairwise session with that
 * device (sealForDevices: bundles where no session, identity checks as for 1:1 sends), then the
 * body is encrypted ONCE. The advanced sender key, the sessions and `writesFor(made)` (the message
 * and the outbox entry holding the whole frame) are committed in ONE transaction before the frame
 * can leave: a sender key's message key is never used twice.
 *
 * `again` is the frame stored before a `stale_epoch` (section 23): if our key is still the body's
 * and no device holding it left, the body stays as it is, the `keys` entries of devices still
 * members stay, and the stored distribution (of the body's iteration, so new members read this
 * message too) goes to the devices that lack the key; else everything is made again, with a new
 * key when a device that holds it left. Only devices that hold the key after a `sent` count
 * (noteKeysGiven): the `keys` of a refused frame reached nobody.
 *
 * Nothing goes to a group with a member whose identity key changed and was not accepted
 * (IdentityChangedError naming that member).
 *
 * @param {object} store
 * @param {{groupId: string, self: string, selfDevice: number, members: {email: string, devices: number[]}[]}} group
 * @param {string} plaintext base64, with its type byte (groupTextPlaintext, groupSettingsPlaintext)
 * @param {object} io
 * @param {(email: string, deviceIds: number[]) => Promise<object>} io.fetchBundles keys/bundles
 * @param {(made: {body: string, keys: object[], distribution: string}) => object[]} io.writesFor
 * @param {{body: string, keys: object[], distribution: string}|null} [io.again]
 * @returns {Promise<{body: string, keys: {email, device, kind, body}[], distribution: string}>}
 */
export function encryptForGroup(store, { groupId, self, selfDevice, members }, plaintext, { fetchBundles, writesFor, again = null }) {
  return withLock(groupLock(store, groupId), async () => {
    const identityKeyPair = await store.getKey("identity");
    if (!identityKeyPair) throw new NotSetUpError();
    const own = self.toLowerCase();
    // Sessions with our own devices are kept under our email as we hold it.
    const emailOf = new Map(members.map((m) => [m.email.toLowerCase(), m.email.toLowerCase() === own ? self : m.email]));
    const trusted = new Map();
    for (const email of emailOf.values()) {
      if (email === self) continue;
      const identity = await store.get("identities", email);
      if (identity && identity.changedTo) throw new IdentityChangedError(email);
      trusted.set(email, identity);
    }
    const targets = memberDevices(members, self, selfDevice);
    const stored = await store.get("senderKeys", groupId);
    const plan = senderKeyPlan(stored ? stored.given : null, targets);
    const reuse = Boolean(again && stored && !plan.fresh && stored.key.keyId === bodyKeyId(again.body));
    const current = new Set(targets.map(pairLabel));
    const kept = reuse ? again.keys.filter((k) => current.has(pairLabel([k.email.toLowerCase(), k.device]))) : [];
    const keptLabels = new Set(kept.map((k) => pairLabel([k.email.toLowerCase(), k.device])));
    const needs = plan.needs.filter((pair) => !keptLabels.has(pairLabel(pair)));
    const state = reuse ? null : plan.fresh ? createSenderKey() : stored.key;
    const distribution = reuse ? fromBase64(again.distribution, { what: "stored distribution" }) : senderKeyDistribution(state, groupId);
    const emails = [...new Set(needs.map(([email]) => emailOf.get(email)))];
    return withPeerLocks(store, emails, async () => {
      const writes = [];
      const keys = [...kept];
      for (const email of emails) {
        const sealed = await sealForDevices(store, identityKeyPair, {
          email,
          deviceIds: needs.filter(([lower]) => emailOf.get(lower) === email).map(([, device]) => device),
          own: email === self,
          identityKey: trusted.get(email) ? trusted.get(email).identityKey : null,
          plaintext: distribution,
          fetchBundles,
        });
        writes.push(...sealed.writes);
        keys.push(...sealed.copies.map((copy) => ({ email, ...copy })));
      }
      keys.sort((a, b) => comparePairs([a.email.toLowerCase(), a.device], [b.email.toLowerCase(), b.device]));
      let body = reuse ? again.body : null;
      if (!reuse) {
        const encrypted = await encryptGroupMessage(state, {
          groupId,
          senderIdentityKey: identityKeyPair.publicKey,
          senderDevice: selfDevice,
          plaintext: fromBase64(plaintext, { what: "stored group plaintext" }),
        });
        body = encrypted.body;
        writes.push({ put: "senderKeys", value: { group: groupId, key: encrypted.state, given: plan.fresh ? [] : stored.given } });
      }
      const made = { body, keys, distribution: toBase64(distribution) };
      writes.push(...writesFor(made));
      await store.write(writes);
      return made;
    });
  });
}

/**
 * The server took our group frame (`sent`): the devices of its `keys` hold our sender key now, if
 * it is still the body's (section 22's `given` set).
 */
export function noteKeysGiven(store, groupId, frame) {
  return withLock(groupLock(store, groupId), async () => {
    const stored = await store.get("senderKeys", groupId);
    if (!stored || !frame.keys.length || stored.key.keyId !== bodyKeyId(frame.body)) return;
    const given = new Map(stored.given.map((pair) => [pairLabel(pair), pair]));
    for (const entry of frame.keys) {
      const pair = [entry.email.toLowerCase(), entry.device];
      given.set(pairLabel(pair), pair);
    }
    await store.write([{ put: "senderKeys", value: { ...stored, given: [...given.values()].sort(comparePairs) } }]);
  });
}

/**
 * Decrypts group message copies from one sender device (docs/PROTOCOL.md section 23), in order,
 * under the sender's lock, and commits the outcome of all of them in ONE transaction, as
 * decryptBatchFrom does for 1:1 envelopes. A copy's `key` is a pairwise envelope (opened with the
 * session of that device, founding it from a prekey envelope: envelopeOpener) holding a sender key
 * distribution for the copy's group, which updates the record of (group, sender, device); then the
 * body is decrypted with that record and the identity key the sender's messages are bound to: ours
 * for our own other devices, else the one of the pairwise session with that device (the trusted
 * one when there is none yet). A body that fails leaves the sender key record as it was (the
 * authentic `key` envelope is spent all the same, and its distribution kept).
 *
 * @param {object} store
 * @param {{email: string, device: number, own?: boolean}} sender
 * @param {{id: number, group: string, body: string, key?: {kind, body}}[]} frames checked frames
 * @param {{recordId: (frame) => string, messageRecord: (frame, {content, failed}) => object|null}} records
 *   `content` is decodeGroupPlaintext's ({type: "text"|"settings"|"unknown", ...}) or null when
 *   `failed`; a null record stores nothing for the copy
 * @returns {Promise<{status: "duplicate"|"stored"|"failed", message?: object, content?: object}[]>}
 *   and `identityChanged` on the array
 */
export function decryptGroupBatchFrom(store, { email, device, own = false }, frames, { recordId, messageRecord }) {
  return withLock(peerLock(store, email), async () => {
    const { duplicate, identityKeyPair, first } = await batchStart(store, { email, device }, frames, recordId);
    const trusted = own ? null : await store.get("identities", email);
    const lower = email.toLowerCase();
    let record = first;
    const senderKeys = new Map(); // group id -> received sender key record (null: none)
    const changedGroups = new Set();
    const remoteIdentityKeys = [];
    const writes = [];
    const results = [];
    const open = envelopeOpener(store, identityKeyPair, own, writes);

    for (const [i, frame] of frames.entries()) {
      if (duplicate[i]) {
        results.push({ status: "duplicate" });
        continue;
      }
      const group = frame.group;
      let content = null;
      let failed = null;
      try {
        if (!senderKeys.has(group)) {
          const held = await store.get("receivedSenderKeys", group, lower, device);
          senderKeys.set(group, held ? held.record : null);
        }
        if (frame.key) {
          const opened = await open(record, frame.key.kind, frame.key.body);
          const key = opened.session.remoteIdentityKey;
          if (remoteIdentityKeys[remoteIdentityKeys.length - 1] !== key) remoteIdentityKeys.push(key);
          record = withCurrent(email, device, record, opened.session, opened.index);
          // The envelope was authentic and is spent, whatever it carried.
          senderKeys.set(group, receivedSenderKeys(senderKeys.get(group), parseSenderKeyDistribution(opened.plaintext, group)));
          changedGroups.add(group);
        }
        const identityKey = own
          ? identityKeyPair.publicKey
          : record && record.current
            ? record.current.remoteIdentityKey
            : trusted && trusted.identityKey;
        if (!identityKey) throw new ProtocolError("unknown_sender_key", "no sender key of this device");
        const decrypted = await decryptGroupMessage(senderKeys.get(group), {
          groupId: group,
          senderIdentityKey: identityKey,
          senderDevice: device,
          body: frame.body,
        });
        content = decodeGroupPlaintext(decrypted.plaintext);
        senderKeys.set(group, decrypted.record);
        changedGroups.add(group);
      } catch (error) {
        failed = failureCode(error);
      }
      const message = messageRecord(frame, { content, failed });
      if (message) writes.push({ put: "messages", value: message });
      results.push({ status: failed ? "failed" : "stored", message, content });
    }

    for (const group of changedGroups) {
      writes.push({ put: "receivedSenderKeys", value: { group, email: lower, device, record: senderKeys.get(group) } });
    }
    if (record !== first) writes.push({ put: "signalSessions", value: record });
    await store.write(writes);
    results.identityChanged = await noteSenderIdentity(store, email, own, remoteIdentityKeys);
    return results;
  });
}

// --- prekey upkeep -----------------------------------------------------------------------------

/**
 * Keeps at least ONE_TIME_PREKEY_MIN one-time prekeys on the server. Ids come from the persisted
 * counter and never repeat: the new private keys and the advanced counter are stored
 * together BEFORE the upload, so even a lost response cannot make an id be used twice.
 * @param {object} store
 * @param {{status: () => Promise<object>, upload: (keys: object[]) => Promise<object>}} io
 * @returns {Promise<number>} keys uploaded
 */
export function refillOneTimePrekeys(store, { status, upload }) {
  return withLock(keysLock(store), async () => {
    const current = await status();
    const minimum = Math.max(ONE_TIME_PREKEY_MIN, current.low_threshold || 0);
    if (current.count >= minimum) return 0;
    const room = Math.max(0, (current.max_unused || ONE_TIME_PREKEY_BATCH) - current.count);
    const count = Math.min(ONE_TIME_PREKEY_BATCH - current.count, room);
    if (count < 1) return 0;
    const next = await store.getMeta("nextOneTimePrekeyId", 1);
    const { prekeys, nextKeyId } = generateOneTimePrekeys(next, count);
    await store.write([
      ...prekeys.map((p) => ({ put: "signalKeys", value: { name: `opk:${p.keyId}`, value: p } })),
      { put: "meta", value: { name: "nextOneTimePrekeyId", value: nextKeyId } },
    ]);
    await upload(prekeys.map(publicOneTimePrekey));
    return prekeys.length;
  });
}

/**
 * Rotates the signed prekey when it is older than SIGNED_PREKEY_ROTATE_MS (or the server says it is
 * too old), keeping replaced private keys for SIGNED_PREKEY_GRACE_MS, then deleting them together
 * with the replay-guard entries of initial messages made with them.
 * @param {object} store
 * @param {object} status GET keys/prekeys/count
 * @param {(signedPrekey: object) => Promise<object>} publish PUT keys/signed-prekey
 * @returns {Promise<boolean>} whether a new signed prekey was published
 */
export function maintainSignedPrekey(store, status, publish) {
  return withLock(keysLock(store), async () => {
    const identityKeyPair = await store.getKey("identity");
    if (!identityKeyPair) return false;
    const now = Date.now();
    const current = await store.getMeta("signedPrekey");
    const serverAge = status && typeof status.signed_prekey_age_seconds === "number" ? status.signed_prekey_age_seconds * 1000 : 0;
    const serverMax = status && status.signed_prekey_max_age_seconds ? status.signed_prekey_max_age_seconds * 1000 : Infinity;
    const age = current ? now - current.createdAt : Infinity;
    let rotated = false;
    if (age > SIGNED_PREKEY_ROTATE_MS || serverAge > Math.min(SIGNED_PREKEY_ROTATE_MS, serverMax / 2)) {
      const keyId = await store.getMeta("nextSignedPrekeyId", current ? current.keyId + 1 : 1);
      const signedPrekey = generateSignedPrekey(identityKeyPair, keyId);
      await store.write([
        { put: "signalKeys", value: { name: `spk:${keyId}`, value: { ...signedPrekey, createdAt: now } } },
        { put: "meta", value: { name: "nextSignedPrekeyId", value: keyId + 1 } },
      ]);
      await publish(publicSignedPrekey(signedPrekey));
      // Every other signed prekey not yet retired is retired now, not only the one `meta` named:
      // an earlier rotation whose PUT failed (or whose answer was lost while the server made the
      // key current) left its private key stored but never recorded as current; retiring it here
      // keeps it for the grace period (contacts may have its bundle) and then deletes it, instead
      // of keeping it forever.
      const writes = [{ put: "meta", value: { name: "signedPrekey", value: { keyId, createdAt: now } } }];
      for (const record of await store.all("signalKeys")) {
        const old = record.value;
        if (!record.name.startsWith("spk:") || old.keyId === keyId || old.retiredAt) continue;
        writes.push({ put: "signalKeys", value: { name: record.name, value: { ...old, retiredAt: now } } });
      }
      await store.write(writes);
      rotated = true;
    }
    // Past the grace period a retired signed prekey (and its replay-guard entries) is deleted.
    const keys = await store.all("signalKeys");
    const expired = keys
      .filter((r) => r.name.startsWith("spk:") && r.value.retiredAt && now - r.value.retiredAt > SIGNED_PREKEY_GRACE_MS)
      .map((r) => r.value.keyId);
    if (expired.length) {
      const ephemeral = await store.all("ephemeralKeys");
      await store.write([
        ...expired.map((id) => ({ delete: "signalKeys", key: [`spk:${id}`] })),
        ...ephemeral.filter((e) => expired.includes(e.signedPrekeyId)).map((e) => ({ delete: "ephemeralKeys", key: [e.key] })),
      ]);
    }
    return rotated;
  });
}

