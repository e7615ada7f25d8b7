/**
 * Long-term and medium-term key generation, and the public forms the server stores.
 *
 * All records are plain JSON-able objects whose byte fields are canonical standard base64 strings, so
 * they can be stored as they are (IndexedDB, JSON files). Private fields never leave the device: only the
 * outputs of publicSignedPrekey / publicOneTimePrekey / registrationKeys are meant for the server.
 *
 * Key id rule: one-time prekey ids, and separately signed prekey ids, never repeat
 * for an account. A refill that re-used an id would make a stale private key answer for a new public key,
 * or overwrite a private key a pending initial message still needs. generateOneTimePrekeys therefore takes
 * the next id to use and returns the next id to persist; the caller stores it together with the new keys.
 */
import {
  KEY_LENGTH,
  MAX_KEY_ID,
  MAX_ONE_TIME_PREKEYS_PER_BATCH,
  MIN_KEY_ID,
  SIGNATURE_LENGTH,
} from './constants.js';
import { drawRandom, fromBase64, toBase64, wipe } from './bytes.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { ed25519PublicKey, ed25519Sign, ed25519Verify, x25519PublicKey } from './primitives.js';

/**
 * @typedef {object} IdentityKeyPair
 * @property {string} publicKey  Ed25519 public key (base64, 32 bytes)
 * @property {string} privateKey Ed25519 secret seed (base64, 32 bytes). SECRET.
 */

/**
 * @typedef {object} SignedPrekey
 * @property {number} keyId
 * @property {string} publicKey  X25519 public key (base64, 32 bytes)
 * @property {string} privateKey X25519 private key (base64, 32 bytes). SECRET.
 * @property {string} signature  Ed25519 signature by the identity key over the raw 32-byte public key (base64, 64 bytes)
 */

/**
 * @typedef {object} OneTimePrekey
 * @property {number} keyId
 * @property {string} publicKey  X25519 public key (base64, 32 bytes)
 * @property {string} privateKey X25519 private key (base64, 32 bytes). SECRET.
 */

/** @param {unknown} keyId @param {string} what */
export function assertKeyId(keyId, what = 'key id') {
  if (!Number.isInteger(keyId) || keyId < MIN_KEY_ID || keyId > MAX_KEY_ID) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, `${what} must be an integer in [${MIN_KEY_ID}, ${MAX_KEY_ID}]`);
  }
}

/**
 * A persisted "next id" is MIN_KEY_ID .. MAX_KEY_ID + 1: after the last id (2^31 - 1) was handed out
 * it is 2^31, which means "used up" (KEY_ID_EXHAUSTED), not a caller's mistake. Ids never wrap
 * around: a wrapped id would repeat one a peer may still hold (the key id rule above).
 * @param {unknown} nextKeyId @param {string} what
 */
function assertNextKeyId(nextKeyId, what) {
  if (!Number.isInteger(nextKeyId) || nextKeyId < MIN_KEY_ID || nextKeyId > MAX_KEY_ID + 1) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, `${what} must be an integer in [${MIN_KEY_ID}, ${MAX_KEY_ID + 1}]`);
  }
}

/**
 * @param {{random?: import('./bytes.js').RandomSource}} [options]
 * @returns {IdentityKeyPair}
 */
export function generateIdentityKeyPair({ random } = {}) {
  const seed = drawRandom(random, KEY_LENGTH);
  const keyPair = identityKeyPairFromSeed(seed);
  wipe(seed);
  return keyPair;
}

/**
 * The identity key pair of a 32-byte Ed25519 seed: how a linked device (docs/PROTOCOL.md section 18)
 * holds the account's identity key it received. The seed is not modified; the caller wipes it.
 * @param {Uint8Array} seed
 * @returns {IdentityKeyPair}
 */
export function identityKeyPairFromSeed(seed) {
  if (!(seed instanceof Uint8Array) || seed.length !== KEY_LENGTH) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, `identity seed must be ${KEY_LENGTH} bytes`);
  }
  return { publicKey: toBase64(ed25519PublicKey(seed)), privateKey: toBase64(seed) };
}

/**
 * Generates an X25519 key pair (prekeys, ephemeral and ratchet keys).
 * @param {import('./bytes.js').RandomSource} [random]
 * @returns {{publicKey: Uint8Array, privateKey: Uint8Array}}
 */
export function generateX25519KeyPair(random) {
  const privateKey = drawRandom(random, KEY_LENGTH);
  return { publicKey: x25519PublicKey(privateKey), privateKey };
}

/**
 * Generates a signed prekey: an X25519 key pair whose raw 32-byte public key is signed with the identity
 * key (plain Ed25519, verifiable by the server, the browser and the Python client alike).
 * @param {IdentityKeyPair} identityKeyPair
 * @param {number} keyId never used before for a signed prekey of this account (the persisted next id;
 *   2^31 once every id was used: KEY_ID_EXHAUSTED)
 * @param {{random?: import('./bytes.js').RandomSource}} [options]
 * @returns {SignedPrekey}
 */
export function generateSignedPrekey(identityKeyPair, keyId, { random } = {}) {
  assertNextKeyId(keyId, 'signed prekey id');
  if (keyId > MAX_KEY_ID) {
    throw new ProtocolError(ErrorCode.KEY_ID_EXHAUSTED, 'signed prekey ids are used up for this account');
  }
  const seed = fromBase64(identityKeyPair?.privateKey, { length: KEY_LENGTH, what: 'identity private key' });
  const { publicKey, privateKey } = generateX25519KeyPair(random);
  const signature = ed25519Sign(seed, publicKey);
  wipe(seed);
  return {
    keyId,
    publicKey: toBase64(publicKey),
    privateKey: toBase64(privateKey),
    signature: toBase64(signature),
  };
}

/**
 * Generates a batch of one-time prekeys with consecutive ids starting at `nextKeyId`.
 * @param {number} nextKeyId first id to use: the value returned by the previous call (1 for a new account;
 *   at most 2^31, returned after id 2^31 - 1 was used, and then any count gives KEY_ID_EXHAUSTED)
 * @param {number} count 1..MAX_ONE_TIME_PREKEYS_PER_BATCH
 * @param {{random?: import('./bytes.js').RandomSource}} [options]
 * @returns {{prekeys: OneTimePrekey[], nextKeyId: number}} persist `nextKeyId` with the keys
 */
export function generateOneTimePrekeys(nextKeyId, count, { random } = {}) {
  assertNextKeyId(nextKeyId, 'next one-time prekey id');
  if (!Number.isInteger(count) || count < 1 || count > MAX_ONE_TIME_PREKEYS_PER_BATCH) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, `count must be in [1, ${MAX_ONE_TIME_PREKEYS_PER_BATCH}]`);
  }
  if (nextKeyId + count - 1 > MAX_KEY_ID) {
    throw new ProtocolError(ErrorCode.KEY_ID_EXHAUSTED, 'one-time prekey ids are used up for this account');
  }
  const prekeys = [];
  for (let i = 0; i < count; i += 1) {
    const { publicKey, privateKey } = generateX25519KeyPair(random);
    prekeys.push({ keyId: nextKeyId + i, publicKey: toBase64(publicKey), privateKey: toBase64(privateKey) });
  }
  return { prekeys, nextKeyId: nextKeyId + count };
}

/**
 * Checks a signed prekey's signature (strict RFC 8032 Ed25519 over the raw public key).
 * @param {string} identityKey Ed25519 public key (base64)
 * @param {{publicKey: string, signature: string}} signedPrekey
 * @returns {boolean}
 */
export function verifySignedPrekey(identityKey, signedPrekey) {
  try {
    const ik = fromBase64(identityKey, { length: KEY_LENGTH });
    const spk = fromBase64(signedPrekey?.publicKey, { length: KEY_LENGTH });
    const sig = fromBase64(signedPrekey?.signature, { length: SIGNATURE_LENGTH });
    return ed25519Verify(ik, spk, sig);
  } catch {
    return false;
  }
}

/** @param {SignedPrekey} signedPrekey @returns {{key_id: number, public_key: string, signature: string}} server form */
export function publicSignedPrekey(signedPrekey) {
  return { key_id: signedPrekey.keyId, public_key: signedPrekey.publicKey, signature: signedPrekey.signature };
}

/** @param {OneTimePrekey} prekey @returns {{key_id: number, public_key: string}} server form */
export function publicOneTimePrekey(prekey) {
  return { key_id: prekey.keyId, public_key: prekey.publicKey };
}

/**
 * The key part of the registration request: public keys only.
 * @param {{identityKeyPair: IdentityKeyPair, signedPrekey: SignedPrekey, oneTimePrekeys: OneTimePrekey[]}} keys
 * @returns {{identity_key: string, signed_prekey: object, one_time_prekeys: object[]}}
 */
export function registrationKeys({ identityKeyPair, signedPrekey, oneTimePrekeys }) {
  return {
    identity_key: identityKeyPair.publicKey,
    signed_prekey: publicSignedPrekey(signedPrekey),
    one_time_prekeys: oneTimePrekeys.map(publicOneTimePrekey),
  };
}
