/**
 * The Double Ratchet (signal.org/docs/specifications/doubleratchet) with the parameters of
 * docs/PROTOCOL.md:
 *
 *   KDF_RK(rk, dh)  = HKDF-SHA-256(salt = rk, IKM = dh, info = "SecuredMessenger Root Chain v1", 64)
 *                     -> new root key [0:32], chain key [32:64]
 *   KDF_CK(ck)      = HMAC-SHA-256(ck, 0x02) -> next chain key, HMAC-SHA-256(ck, 0x01) -> message key
 *   ENCRYPT(mk,...) = HKDF-SHA-256(salt = 32 x 0x00, IKM = mk, info = "SecuredMessenger Message Keys v1", 80)
 *                     -> enc key [0:32], auth key [32:64], IV [64:80];
 *                     AES-256-CBC/PKCS#7, then HMAC-SHA-256(auth key, AD || ciphertext) appended (32 bytes)
 *   AD per message  = X3DH AD (64) || ratchet public key (32) || n (u64 BE) || pn (u64 BE)
 *
 * Functions here work on a mutable *working* state (bytes). They are only ever called on a fresh copy
 * decoded from the caller's JSON state (see session.js), so a failure anywhere leaves the caller's state
 * exactly as it was: decryption "commits only on success" by construction.
 *
 * Security notes:
 *  - a new DH ratchet key pair is generated on every received ratchet step, so the sending chain of each
 *    turn is fresh (without DH steps there is no post-compromise security);
 *  - skipped message keys are bounded twice: at most MAX_SKIP derived for one message (a forged header
 *    with a huge n must not make us compute millions of HMACs), and at most MAX_STORED_SKIPPED_KEYS kept,
 *    oldest evicted first (an attacker or a very lossy network cannot grow the state without bound);
 *  - a used message key is deleted, and a message number below the receiving counter on the current
 *    chain is rejected as a duplicate, so a replay never decrypts twice;
 *  - the MAC is checked (constant time) before any decryption, so CBC padding is never an oracle.
 */
import {
  CHAIN_KEY_SEED,
  KEY_LENGTH,
  MAC_LENGTH,
  AES_BLOCK_LENGTH,
  MAX_MESSAGE_NUMBER,
  MAX_SKIP,
  MAX_STORED_SKIPPED_KEYS,
  MESSAGE_KEY_SEED,
  MESSAGE_KEYS_INFO,
  ROOT_CHAIN_INFO,
} from './constants.js';
import { concatBytes, equalBytes, fromBase64, textToBytes, toBase64, u64be, wipe } from './bytes.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { generateX25519KeyPair } from './keys.js';
import {
  aes256CbcDecrypt,
  aes256CbcEncrypt,
  hkdfSha256,
  hmacSha256,
  hmacSha256Verify,
  x25519SharedSecret,
} from './primitives.js';

const ROOT_INFO_BYTES = textToBytes(ROOT_CHAIN_INFO);
const MESSAGE_INFO_BYTES = textToBytes(MESSAGE_KEYS_INFO);
const ZERO_SALT = new Uint8Array(32);
const CHAIN_KEY_INPUT = Uint8Array.of(CHAIN_KEY_SEED);
const MESSAGE_KEY_INPUT = Uint8Array.of(MESSAGE_KEY_SEED);

/**
 * @typedef {object} RatchetHeader
 * @property {Uint8Array} ratchetKey sender's current ratchet public key (DHs)
 * @property {number} messageNumber n: number of this message in the sending chain
 * @property {number} previousChainLength pn: number of messages in the sender's previous sending chain
 */

/**
 * Working state (bytes); names follow the specification in parentheses.
 * @typedef {object} RatchetState
 * @property {Uint8Array} rootKey (RK)
 * @property {{publicKey: Uint8Array, privateKey: Uint8Array}} sendingRatchetKey (DHs)
 * @property {Uint8Array | null} remoteRatchetKey (DHr)
 * @property {Uint8Array | null} sendingChainKey (CKs)
 * @property {Uint8Array | null} receivingChainKey (CKr)
 * @property {number} sendingMessageNumber (Ns)
 * @property {number} receivingMessageNumber (Nr)
 * @property {number} previousChainLength (PN)
 * @property {Map<string, string>} skippedMessageKeys (MKSKIPPED) "ratchetKeyBase64:n" -> base64 message key,
 *   oldest first. Kept in base64 so that a session with thousands of stored keys is not decoded and
 *   re-encoded in full on every message; a key is decoded (strictly) only when it is used.
 */

// ---------------------------------------------------------------------------------------------------
// KDFs

/** KDF_RK: one root chain step. */
function rootChainStep(rootKey, dhOutput) {
  const output = hkdfSha256(dhOutput, rootKey, ROOT_INFO_BYTES, 64);
  return { rootKey: output.slice(0, 32), chainKey: output.slice(32, 64) };
}

/** KDF_CK: one message chain step (also the sender key chain of groups, senderkey.js). */
export function messageChainStep(chainKey) {
  return { chainKey: hmacSha256(chainKey, CHAIN_KEY_INPUT), messageKey: hmacSha256(chainKey, MESSAGE_KEY_INPUT) };
}

function expandMessageKey(messageKey) {
  const output = hkdfSha256(messageKey, ZERO_SALT, MESSAGE_INFO_BYTES, 80);
  return { encryptionKey: output.slice(0, 32), authenticationKey: output.slice(32, 64), iv: output.slice(64, 80) };
}

/**
 * The associated data authenticated with each message: the X3DH AD followed by the header fields, so a
 * header cannot be moved to another session or altered without failing the MAC.
 * @param {Uint8Array} sessionAssociatedData
 * @param {RatchetHeader} header
 */
export function messageAssociatedData(sessionAssociatedData, header) {
  return concatBytes(
    sessionAssociatedData,
    header.ratchetKey,
    u64be(header.messageNumber),
    u64be(header.previousChainLength),
  );
}

/**
 * @param {Uint8Array} messageKey
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} associatedData
 * @returns {Promise<Uint8Array>} AES-CBC ciphertext || HMAC tag
 */
export async function encryptWithMessageKey(messageKey, plaintext, associatedData) {
  const { encryptionKey, authenticationKey, iv } = expandMessageKey(messageKey);
  const ciphertext = await aes256CbcEncrypt(encryptionKey, iv, plaintext);
  const tag = hmacSha256(authenticationKey, concatBytes(associatedData, ciphertext));
  wipe(encryptionKey, authenticationKey);
  return concatBytes(ciphertext, tag);
}

/**
 * Verifies the tag (constant time), then decrypts. Throws AUTHENTICATION_FAILED / DECRYPTION_FAILED.
 * @param {Uint8Array} messageKey
 * @param {Uint8Array} sealed ciphertext || tag
 * @param {Uint8Array} associatedData
 * @returns {Promise<Uint8Array>}
 */
export async function decryptWithMessageKey(messageKey, sealed, associatedData) {
  if (sealed.length < AES_BLOCK_LENGTH + MAC_LENGTH || (sealed.length - MAC_LENGTH) % AES_BLOCK_LENGTH !== 0) {
    throw new ProtocolError(ErrorCode.AUTHENTICATION_FAILED, 'ciphertext has an impossible length');
  }
  const ciphertext = sealed.subarray(0, sealed.length - MAC_LENGTH);
  const tag = sealed.subarray(sealed.length - MAC_LENGTH);
  const { encryptionKey, authenticationKey, iv } = expandMessageKey(messageKey);
  try {
    if (!hmacSha256Verify(authenticationKey, concatBytes(associatedData, ciphertext), tag)) {
      throw new ProtocolError(ErrorCode.AUTHENTICATION_FAILED, 'message authentication failed');
    }
    return await aes256CbcDecrypt(encryptionKey, iv, ciphertext);
  } finally {
    wipe(encryptionKey, authenticationKey);
  }
}

// ---------------------------------------------------------------------------------------------------
// Initialisation (spec RatchetInitAlice / RatchetInitBob)

function emptyState(rootKey, sendingRatchetKey) {
  return {
    rootKey,
    sendingRatchetKey,
    remoteRatchetKey: null,
    sendingChainKey: null,
    receivingChainKey: null,
    sendingMessageNumber: 0,
    receivingMessageNumber: 0,
    previousChainLength: 0,
    skippedMessageKeys: new Map(),
  };
}

/**
 * Initiator: a fresh ratchet key pair, and the first sending chain from DH(DHs, responder's signed prekey).
 * @param {Uint8Array} sharedSecret X3DH SK
 * @param {Uint8Array} remoteRatchetKey the responder's signed prekey public key
 * @param {import('./bytes.js').RandomSource} [random]
 * @returns {RatchetState}
 */
export function initInitiatorRatchet(sharedSecret, remoteRatchetKey, random) {
  const state = emptyState(sharedSecret, generateX25519KeyPair(random));
  state.remoteRatchetKey = Uint8Array.from(remoteRatchetKey);
  const dhOutput = x25519SharedSecret(state.sendingRatchetKey.privateKey, remoteRatchetKey);
  const { rootKey, chainKey } = rootChainStep(state.rootKey, dhOutput);
  state.rootKey = rootKey;
  state.sendingChainKey = chainKey;
  return state;
}

/**
 * Responder: the signed prekey is the first ratchet key pair; chains start at the first received message.
 * @param {Uint8Array} sharedSecret X3DH SK
 * @param {{publicKey: Uint8Array, privateKey: Uint8Array}} signedPrekeyPair
 * @returns {RatchetState}
 */
export function initResponderRatchet(sharedSecret, signedPrekeyPair) {
  return emptyState(Uint8Array.from(sharedSecret), {
    publicKey: Uint8Array.from(signedPrekeyPair.publicKey),
    privateKey: Uint8Array.from(signedPrekeyPair.privateKey),
  });
}

// ---------------------------------------------------------------------------------------------------
// Encryption

/**
 * RatchetEncrypt. Mutates `state` (advances the sending chain).
 * @param {RatchetState} state
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} sessionAssociatedData
 * @returns {Promise<{header: RatchetHeader, ciphertext: Uint8Array}>}
 */
export async function ratchetEncrypt(state, plaintext, sessionAssociatedData) {
  if (state.sendingChainKey === null) {
    throw new ProtocolError(ErrorCode.INVALID_SESSION_STATE, 'session has no sending chain');
  }
  if (state.sendingMessageNumber >= MAX_MESSAGE_NUMBER) {
    throw new ProtocolError(ErrorCode.CHAIN_EXHAUSTED, 'sending chain is exhausted; start a new session');
  }
  const { chainKey, messageKey } = messageChainStep(state.sendingChainKey);
  const header = {
    ratchetKey: Uint8Array.from(state.sendingRatchetKey.publicKey),
    messageNumber: state.sendingMessageNumber,
    previousChainLength: state.previousChainLength,
  };
  wipe(state.sendingChainKey);
  state.sendingChainKey = chainKey;
  state.sendingMessageNumber += 1;
  const ciphertext = await encryptWithMessageKey(messageKey, plaintext, messageAssociatedData(sessionAssociatedData, header));
  wipe(messageKey);
  return { header, ciphertext };
}

// ---------------------------------------------------------------------------------------------------
// Decryption

function skippedKeyId(ratchetKey, messageNumber) {
  return `${toBase64(ratchetKey)}:${messageNumber}`;
}

/** SkipMessageKeys: derive and store the keys of messages not received yet on the receiving chain. */
function skipMessageKeys(state, until) {
  if (state.receivingMessageNumber + MAX_SKIP < until) {
    throw new ProtocolError(ErrorCode.TOO_MANY_SKIPPED_MESSAGES, `more than ${MAX_SKIP} skipped messages`);
  }
  if (state.receivingChainKey === null) return;
  while (state.receivingMessageNumber < until) {
    const { chainKey, messageKey } = messageChainStep(state.receivingChainKey);
    state.skippedMessageKeys.set(skippedKeyId(state.remoteRatchetKey, state.receivingMessageNumber), toBase64(messageKey));
    wipe(state.receivingChainKey, messageKey);
    state.receivingChainKey = chainKey;
    state.receivingMessageNumber += 1;
  }
  // Oldest first: Map iteration order is insertion order.
  for (const id of state.skippedMessageKeys.keys()) {
    if (state.skippedMessageKeys.size <= MAX_STORED_SKIPPED_KEYS) break;
    state.skippedMessageKeys.delete(id);
  }
}

/** DHRatchet: new receiving chain from the peer's new key, then a fresh key pair and sending chain. */
function dhRatchetStep(state, remoteRatchetKey, random) {
  state.previousChainLength = state.sendingMessageNumber;
  state.sendingMessageNumber = 0;
  state.receivingMessageNumber = 0;
  state.remoteRatchetKey = Uint8Array.from(remoteRatchetKey);

  const receiving = rootChainStep(
    state.rootKey,
    x25519SharedSecret(state.sendingRatchetKey.privateKey, state.remoteRatchetKey),
  );
  wipe(state.sendingRatchetKey.privateKey);
  state.sendingRatchetKey = generateX25519KeyPair(random);
  const sending = rootChainStep(
    receiving.rootKey,
    x25519SharedSecret(state.sendingRatchetKey.privateKey, state.remoteRatchetKey),
  );
  state.rootKey = sending.rootKey;
  state.receivingChainKey = receiving.chainKey;
  state.sendingChainKey = sending.chainKey;
}

/**
 * RatchetDecrypt. Mutates `state`; call it on a copy and keep the copy only if this resolves.
 * @param {RatchetState} state
 * @param {RatchetHeader} header
 * @param {Uint8Array} ciphertext ciphertext || tag
 * @param {Uint8Array} sessionAssociatedData
 * @param {import('./bytes.js').RandomSource} [random]
 * @returns {Promise<Uint8Array>} plaintext
 */
export async function ratchetDecrypt(state, header, ciphertext, sessionAssociatedData, random) {
  const associatedData = messageAssociatedData(sessionAssociatedData, header);

  const skippedId = skippedKeyId(header.ratchetKey, header.messageNumber);
  const storedKey = state.skippedMessageKeys.get(skippedId);
  if (storedKey !== undefined) {
    const skippedKey = decodeKey(storedKey, 'skipped messageKey');
    const plaintext = await decryptWithMessageKey(skippedKey, ciphertext, associatedData);
    state.skippedMessageKeys.delete(skippedId);
    wipe(skippedKey);
    return plaintext;
  }

  const onCurrentChain = state.remoteRatchetKey !== null && equalBytes(header.ratchetKey, state.remoteRatchetKey);
  if (!onCurrentChain) {
    skipMessageKeys(state, header.previousChainLength);
    dhRatchetStep(state, header.ratchetKey, random);
  } else if (header.messageNumber < state.receivingMessageNumber) {
    // Its key was used (a replay) or evicted; either way it must not decrypt again.
    throw new ProtocolError(ErrorCode.DUPLICATE_MESSAGE, 'message was already received or its key was discarded');
  }
  skipMessageKeys(state, header.messageNumber);
  if (state.receivingChainKey === null) {
    // Only reachable for an initiator that has not heard back yet and gets a header naming the
    // responder's signed prekey as ratchet key: nothing the responder would ever send.
    throw new ProtocolError(ErrorCode.AUTHENTICATION_FAILED, 'message does not belong to this session');
  }
  const { chainKey, messageKey } = messageChainStep(state.receivingChainKey);
  wipe(state.receivingChainKey);
  state.receivingChainKey = chainKey;
  state.receivingMessageNumber += 1;
  const plaintext = await decryptWithMessageKey(messageKey, ciphertext, associatedData);
  wipe(messageKey);
  return plaintext;
}

// ---------------------------------------------------------------------------------------------------
// Serialisation: plain JSON-able data, base64 for bytes

function encodeOptional(bytes) {
  return bytes === null ? null : toBase64(bytes);
}

/**
 * @param {RatchetState} state
 * @returns {object} JSON-able ratchet state
 */
export function encodeRatchetState(state) {
  return {
    rootKey: toBase64(state.rootKey),
    sendingRatchetKey: {
      publicKey: toBase64(state.sendingRatchetKey.publicKey),
      privateKey: toBase64(state.sendingRatchetKey.privateKey),
    },
    remoteRatchetKey: encodeOptional(state.remoteRatchetKey),
    sendingChainKey: encodeOptional(state.sendingChainKey),
    receivingChainKey: encodeOptional(state.receivingChainKey),
    sendingMessageNumber: state.sendingMessageNumber,
    receivingMessageNumber: state.receivingMessageNumber,
    previousChainLength: state.previousChainLength,
    skippedMessageKeys: [...state.skippedMessageKeys].map(([id, messageKey]) => {
      const separator = id.lastIndexOf(':');
      return {
        ratchetKey: id.slice(0, separator),
        messageNumber: Number(id.slice(separator + 1)),
        messageKey,
      };
    }),
  };
}

function invalidState(what) {
  return new ProtocolError(ErrorCode.INVALID_SESSION_STATE, `session state: bad ${what}`);
}

function decodeKey(value, what) {
  return fromBase64(value, { length: KEY_LENGTH, code: ErrorCode.INVALID_SESSION_STATE, what: `session state ${what}` });
}

const ENCODED_KEY = /^[A-Za-z0-9+/]{43}=$/;

function isEncodedKey(value) {
  return typeof value === 'string' && ENCODED_KEY.test(value);
}

function decodeOptionalKey(value, what) {
  return value === null ? null : decodeKey(value, what);
}

function decodeCounter(value, what) {
  if (!Number.isInteger(value) || value < 0 || value > MAX_MESSAGE_NUMBER) throw invalidState(what);
  return value;
}

/**
 * Decodes (and thereby deep-copies) a JSON ratchet state, validating every field.
 * @param {any} data
 * @returns {RatchetState}
 */
export function decodeRatchetState(data) {
  if (typeof data !== 'object' || data === null) throw invalidState('ratchet');
  if (!Array.isArray(data.skippedMessageKeys) || data.skippedMessageKeys.length > MAX_STORED_SKIPPED_KEYS) {
    throw invalidState('skippedMessageKeys');
  }
  const skippedMessageKeys = new Map();
  for (const entry of data.skippedMessageKeys) {
    // Shape check only; the message key is decoded strictly if and when it is used.
    if (!isEncodedKey(entry?.ratchetKey) || !isEncodedKey(entry.messageKey)) throw invalidState('skipped key');
    const messageNumber = decodeCounter(entry.messageNumber, 'skipped messageNumber');
    skippedMessageKeys.set(`${entry.ratchetKey}:${messageNumber}`, entry.messageKey);
  }
  const state = {
    rootKey: decodeKey(data.rootKey, 'rootKey'),
    sendingRatchetKey: {
      publicKey: decodeKey(data.sendingRatchetKey?.publicKey, 'sendingRatchetKey'),
      privateKey: decodeKey(data.sendingRatchetKey?.privateKey, 'sendingRatchetKey'),
    },
    remoteRatchetKey: decodeOptionalKey(data.remoteRatchetKey, 'remoteRatchetKey'),
    sendingChainKey: decodeOptionalKey(data.sendingChainKey, 'sendingChainKey'),
    receivingChainKey: decodeOptionalKey(data.receivingChainKey, 'receivingChainKey'),
    sendingMessageNumber: decodeCounter(data.sendingMessageNumber, 'sendingMessageNumber'),
    receivingMessageNumber: decodeCounter(data.receivingMessageNumber, 'receivingMessageNumber'),
    previousChainLength: decodeCounter(data.previousChainLength, 'previousChainLength'),
    skippedMessageKeys,
  };
  if (state.receivingChainKey !== null && state.remoteRatchetKey === null) throw invalidState('remoteRatchetKey');
  return state;
}
