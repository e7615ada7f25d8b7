// The one module of the app that calls the protocol code (static/js/crypto/): device keys, sessions,
// encryption and decryption, identity trust, safety numbers, and prekey upkeep.
//
// Rules kept here (docs/PROTOCOL.md):
// - All work on one peer's sessions runs under the Web Lock "sm:<account>:peer:<email>", so two tabs
//   never encrypt from, or decrypt into, the same stored state (a forked ratchet reuses keys).
// - Inside the lock: read state, run all the cryptography, then write the new state and its outcome
//   (message, outbox entry, consumed prekey...) in ONE IndexedDB transaction (storage.js says why).
// - A one-time prekey's private key is deleted only when a session was established from it, never
//   because a decryption failed (a forged message must not burn the key the genuine one needs).
// - The first identity key seen for a contact is trusted; a different one later is recorded as a
//   pending change and nothing is encrypted until the user acknowledges it (the server could have
//   substituted it).
// - Nothing here logs. Private keys stay in IndexedDB.
import {
  acceptInitialMessage,
  bytesToText,
  decryptMessage,
  encryptMessage,
  EnvelopeKind,
  formatSafetyNumber,
  generateIdentityKeyPair,
  generateOneTimePrekeys,
  generateSignedPrekey,
  initiateSession,
  isInitialMessageForSession,
  parseEnvelope,
  ProtocolError,
  publicOneTimePrekey,
  publicSignedPrekey,
  registrationKeys,
  safetyNumber,
  textToBytes,
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
 * to any other key so the next message starts a fresh session with the new one.
 */
export function acceptIdentityChange(store, email) {
  return withLock(peerLock(store, email), () =>
    store.update(
      ["identities", "signalSessions"],
      [{ store: "identities", key: [email] }, { store: "signalSessions", key: [email] }],
      ([trusted, sessions]) => {
        if (!trusted || !trusted.changedTo) return { writes: [] };
        const identityKey = trusted.changedTo;
        const writes = [
          { put: "identities", value: { ...trusted, identityKey, changedTo: null, verified: false, acceptedAt: Date.now() } },
        ];
        if (sessions) {
          const keep = [sessions.current, ...(sessions.archived || [])].filter(
            (s) => s && s.remoteIdentityKey === identityKey,
          );
          if (keep.length) writes.push({ put: "signalSessions", value: { email, current: keep[0], archived: keep.slice(1) } });
          else writes.push({ delete: "signalSessions", key: [email] });
        }
        return { writes };
      },
    ),
  );
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

function withCurrent(email, record, session, replacedIndex = null) {
  const others = sessionCandidates(record).filter((_, i) => i !== replacedIndex);
  return { email, current: session, archived: others.slice(0, ARCHIVED_SESSIONS) };
}

/**
 * Encrypts `text` for `email` and commits the new session state together with `writesFor({kind, body})`
 * (the outbox entry and the message) in one transaction, all under the peer's lock.
 * @param {object} store AccountStore
 * @param {string} email
 * @param {string} text
 * @param {{fetchBundle: (email: string) => Promise<object>, writesFor: (envelope: {kind: string, body: string}) => object[]}} io
 */
export function encryptFor(store, email, text, { fetchBundle, writesFor }) {
  return withLock(peerLock(store, email), async () => {
    const identityKeyPair = await store.getKey("identity");
    if (!identityKeyPair) throw new NotSetUpError();
    const trusted = await store.get("identities", email);
    if (trusted && trusted.changedTo) throw new IdentityChangedError(email);
    const record = await store.get("signalSessions", email);
    let session = record ? record.current : null;
    let sessionRecord = record;
    const writes = [];

    if (!session || (trusted && session.remoteIdentityKey !== trusted.identityKey)) {
      // First message (or no session bound to the trusted key): X3DH from a fresh bundle. The
      // bundle's signature is verified by initiateSession; a bad one throws INVALID_SIGNATURE.
      const bundle = await fetchBundle(email);
      const started = await initiateSession({ identityKeyPair, bundle });
      if (trusted && started.remoteIdentityKey !== trusted.identityKey) {
        await noteIdentityKey(store, email, started.remoteIdentityKey);
        throw new IdentityChangedError(email);
      }
      if (!trusted) {
        writes.push({
          put: "identities",
          value: { email, identityKey: started.remoteIdentityKey, verified: false, firstSeen: Date.now() },
        });
      }
      session = started.session;
      sessionRecord = withCurrent(email, null, session);
      sessionRecord.archived = sessionCandidates(record).slice(0, ARCHIVED_SESSIONS);
    }

    const encrypted = await encryptMessage(session, textToBytes(text));
    // The new state is stored before the envelope can leave: encrypting twice from one stored
    // state would reuse a message key.
    writes.push({ put: "signalSessions", value: { ...sessionRecord, email, current: encrypted.session } });
    writes.push(...writesFor({ kind: encrypted.kind, body: encrypted.body }));
    await store.write(writes);
    return { kind: encrypted.kind, body: encrypted.body };
  });
}

function failureCode(error) {
  if (error instanceof ProtocolError) return error.code;
  return "decryption_failed";
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
 * @param {object} store
 * @param {string} email the sender (every frame's `from`)
 * @param {{id: number, from: string, kind: string, body: string, sent_at: string}[]} frames
 * @param {(frame: object, fields: object) => object} messageRecord builds the message record for an outcome
 * @returns {Promise<{status: "duplicate"|"stored"|"failed", message?: object}[]>} per frame, and
 *   `identityChanged` on the array: a new identity key was noted for the sender
 */
export function decryptBatchFrom(store, email, frames, messageRecord) {
  return withLock(peerLock(store, email), async () => {
    // An envelope whose acknowledgement was lost comes back: it is already stored (and its message
    // key is gone), so it is only acknowledged again.
    const stored = await store.has("messages", "serverId", frames.map((frame) => [frame.id]));
    const identityKeyPair = await store.getKey("identity");
    if (!identityKeyPair) throw new NotSetUpError();
    const first = await store.get("signalSessions", email);
    let record = first;
    const seen = new Set();
    const consumedPrekeys = new Set();
    const usedEphemeralKeys = new Set();
    const remoteIdentityKeys = [];
    const writes = [];
    const results = [];

    for (const [i, frame] of frames.entries()) {
      if (stored[i] || seen.has(frame.id)) {
        results.push({ status: "duplicate" });
        continue;
      }
      seen.add(frame.id);
      let text = null;
      let failed = null;
      try {
        const envelope = parseEnvelope(frame.kind, frame.body);
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
        text = bytesToText(outcome.plaintext);
        const key = outcome.session.remoteIdentityKey;
        if (remoteIdentityKeys[remoteIdentityKeys.length - 1] !== key) remoteIdentityKeys.push(key);
        record = withCurrent(email, record, outcome.session, outcome.index);
      } catch (error) {
        failed = failureCode(error);
      }
      const message = messageRecord(frame, { text, failed });
      writes.push({ put: "messages", value: message });
      results.push({ status: failed ? "failed" : "stored", message });
    }

    if (record !== first) writes.push({ put: "signalSessions", value: record });
    await store.write(writes);

    let identityChanged = false;
    for (const key of remoteIdentityKeys) {
      if ((await noteIdentityKey(store, email, key)) === "changed") identityChanged = true;
    }
    results.identityChanged = identityChanged;
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

