/**
 * Shared test helpers: injectable randomness and two-party session set-up.
 */
import { createHash } from 'node:crypto';
import {
  acceptInitialMessage,
  decryptMessage,
  encryptMessage,
  generateIdentityKeyPair,
  generateOneTimePrekeys,
  generateSignedPrekey,
  initiateSession,
  parseEnvelope,
  publicOneTimePrekey,
  publicSignedPrekey,
  textToBytes,
} from '../../static/js/crypto/index.js';

/** A reproducible byte stream (SHA-256 in counter mode over a label): same label, same keys. */
export function seededRandom(label) {
  let counter = 0;
  return (length) => {
    const out = new Uint8Array(length);
    for (let offset = 0; offset < length; offset += 32) {
      const block = createHash('sha256').update(`${label}/${counter}`).digest();
      counter += 1;
      out.set(block.subarray(0, Math.min(32, length - offset)), offset);
    }
    return out;
  };
}

/** Returns the given byte strings in order, one per draw, and fails loudly when they run out. */
export function scriptedRandom(...values) {
  const queue = values.map((value) => (typeof value === 'string' ? Buffer.from(value, 'hex') : value));
  return (length) => {
    const next = queue.shift();
    if (!next) throw new Error('scriptedRandom: no more values');
    if (next.length !== length) throw new Error(`scriptedRandom: wanted ${length} bytes, have ${next.length}`);
    return new Uint8Array(next);
  };
}

export const hex = (bytes) => Buffer.from(bytes).toString('hex');
export const fromHex = (text) => new Uint8Array(Buffer.from(text, 'hex'));

/** A registered party: identity, signed prekey 1, one-time prekeys 1..count. */
export function makeParty(label, { oneTimePrekeys = 5 } = {}) {
  const random = seededRandom(label);
  const identityKeyPair = generateIdentityKeyPair({ random });
  const signedPrekey = generateSignedPrekey(identityKeyPair, 1, { random });
  const { prekeys, nextKeyId } = generateOneTimePrekeys(1, oneTimePrekeys, { random });
  return {
    label,
    random,
    identityKeyPair,
    signedPrekey,
    oneTimePrekeys: new Map(prekeys.map((prekey) => [prekey.keyId, prekey])),
    nextKeyId,
    usedEphemeralKeys: new Set(),
  };
}

export function bundleOf(party, oneTimePrekeyId = null) {
  return {
    identity_key: party.identityKeyPair.publicKey,
    signed_prekey: publicSignedPrekey(party.signedPrekey),
    one_time_prekey: oneTimePrekeyId === null ? null : publicOneTimePrekey(party.oneTimePrekeys.get(oneTimePrekeyId)),
  };
}

/** Responder side of a first message, as a client would do it (keys looked up by id; spent on success). */
export async function accept(party, kind, body) {
  const envelope = parseEnvelope(kind, body);
  const result = await acceptInitialMessage({
    identityKeyPair: party.identityKeyPair,
    signedPrekey: envelope.prekey.signedPrekeyId === party.signedPrekey.keyId ? party.signedPrekey : null,
    oneTimePrekey:
      envelope.prekey.oneTimePrekeyId === null ? null : party.oneTimePrekeys.get(envelope.prekey.oneTimePrekeyId) ?? null,
    envelope,
    usedEphemeralKeys: party.usedEphemeralKeys,
    random: party.random,
  });
  if (result.consumedOneTimePrekeyId !== null) party.oneTimePrekeys.delete(result.consumedOneTimePrekeyId);
  party.usedEphemeralKeys.add(result.ephemeralKey);
  return result;
}

/**
 * Alice initiates with Bob's bundle and Bob accepts her first message.
 * @returns {Promise<{alice, bob, aliceSession, bobSession}>}
 */
export async function establishedPair({ withOneTimePrekey = true } = {}) {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session } = await initiateSession({
    identityKeyPair: alice.identityKeyPair,
    bundle: bundleOf(bob, withOneTimePrekey ? 1 : null),
    random: alice.random,
  });
  const first = await encryptMessage(session, textToBytes('hello bob'));
  const accepted = await accept(bob, first.kind, first.body);
  return { alice, bob, aliceSession: first.session, bobSession: accepted.session };
}

/** Encrypts `text` from `from` and returns [newSenderSession, envelope]. */
export async function send(session, text) {
  const out = await encryptMessage(session, typeof text === 'string' ? textToBytes(text) : text);
  return [out.session, parseEnvelope(out.kind, out.body), out];
}

export async function receive(session, envelope, random) {
  const out = await decryptMessage(session, envelope, { random });
  return [out.session, out.plaintext];
}
