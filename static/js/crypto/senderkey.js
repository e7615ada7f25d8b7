/**
 * Sender keys (docs/PROTOCOL.md section 22): group messages encrypted once for every member device and
 * signed by the sending device.
 *
 *   createSenderKey()                          -> own sender key state (store it; SECRET)
 *   senderKeyDistribution(state, groupId)      -> 89 bytes, sent to each member device pairwise
 *   parseSenderKeyDistribution(bytes, groupId) -> receivedSenderKeys(record, distribution) -> record
 *   encryptGroupMessage(state, {...})          -> {state, body}; persist state before sending body
 *   decryptGroupMessage(record, {...})         -> {record, plaintext}
 *
 *   mk, CK = KDF_CK(CK)                                   (section 5.1, ratchet.js); n = n + 1
 *   header = 0x01 || u32(key_id) || u32(n)
 *   AD     = group id (16) || sender IK (32) || u32(sender device) || header
 *   body   = base64(header || ENCRYPT(mk, plaintext, AD) || Ed25519(SIG, AD || sealed))
 *
 * Why a signature on top of the MAC: every member holds CK, so the MAC only proves that *a member*
 * wrote the message. Only the sending device holds SIG's private half, so the signature, checked before
 * any key is derived or consumed, proves which device wrote it; AD binds the group, the sender's identity
 * and the device, so the server cannot relabel a message as another member's or another group's.
 *
 * A receiver's record for one (group, sender, device) keeps the sender key last distributed and the one
 * before it, each with its own skipped message keys (at most MAX_STORED_SKIPPED_KEYS, oldest evicted
 * first). A distribution of a key id already held changes nothing: a replayed distribution must never move
 * a chain back and make used message keys derivable again.
 *
 * Like session.js, every function takes JSON-able records (base64 byte fields) and returns new ones: inputs
 * are never mutated, and a failure leaves the caller with its previous, valid record.
 */
import {
  AES_BLOCK_LENGTH,
  GROUP_HEADER_LENGTH,
  GROUP_ID_LENGTH,
  GROUP_NAME_MAX_LENGTH,
  GroupPlaintextType,
  KEY_LENGTH,
  MAC_LENGTH,
  MAX_BODY_LENGTH,
  MAX_KEY_ID,
  MAX_MESSAGE_NUMBER,
  MAX_PLAINTEXT_BYTES,
  MAX_SKIP,
  MAX_STORED_SKIPPED_KEYS,
  MIN_KEY_ID,
  SENDER_KEY_DISTRIBUTION_LENGTH,
  SENDER_KEY_VERSION,
  SIGNATURE_LENGTH,
} from './constants.js';
import {
  bytesToText,
  concatBytes,
  drawRandom,
  equalBytes,
  fromBase64,
  readU32be,
  textToBytes,
  toBase64,
  u32be,
  wipe,
} from './bytes.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { ed25519PublicKey, ed25519PublicKeyToX25519, ed25519Sign, ed25519Verify } from './primitives.js';
import { decryptWithMessageKey, encryptWithMessageKey, messageChainStep } from './ratchet.js';

export const SENDER_KEY_STATE_VERSION = 1;

/** The server's group ids: a UUID in its lowercase text form. */
const GROUP_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Header, one AES block, the tag and the signature: the shortest body a sender can produce. */
const MIN_BODY_BYTES = GROUP_HEADER_LENGTH + AES_BLOCK_LENGTH + MAC_LENGTH + SIGNATURE_LENGTH;
/** U+0000-U+001F and U+007F-U+009F (Unicode category Cc), refused in a group name. */
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Own sender key of one group (SECRET: store it like a session).
 * @typedef {object} SenderKeyState
 * @property {1} version
 * @property {number} keyId 1 + (u32(SIG public[0:4]) mod (2^31 - 1))
 * @property {string} chainKey CK (base64, 32 bytes)
 * @property {number} iteration n: the number of the next message, 0 .. 2^32 - 1 (2^32 - 1: exhausted)
 * @property {string} signingSeed SIG's Ed25519 seed (base64, 32 bytes)
 */

/**
 * A sender key as received: what a distribution carries, plus the message keys of skipped messages.
 * @typedef {object} ReceivedSenderKey
 * @property {number} keyId
 * @property {number} iteration the number of the next message this key can derive
 * @property {string} chainKey CK at `iteration` (base64)
 * @property {string} signingKey SIG public key (base64)
 * @property {{iteration: number, messageKey: string}[]} skippedMessageKeys oldest first
 */

/**
 * What the receiver keeps per (group, sender, device).
 * @typedef {object} SenderKeyRecord
 * @property {1} version
 * @property {ReceivedSenderKey} current the sender key last distributed
 * @property {ReceivedSenderKey | null} previous the one before it
 */

function invalidArgument(message) {
  return new ProtocolError(ErrorCode.INVALID_ARGUMENT, message);
}

function invalidState(what) {
  return new ProtocolError(ErrorCode.INVALID_SESSION_STATE, `sender key state: bad ${what}`);
}

function invalidSenderKey(why) {
  return new ProtocolError(ErrorCode.INVALID_SENDER_KEY, `invalid sender key distribution: ${why}`);
}

function malformed(why) {
  return new ProtocolError(ErrorCode.MALFORMED_ENVELOPE, `malformed group message: ${why}`);
}

/** @param {unknown} groupId the UUID text form @returns {Uint8Array} its 16 raw bytes */
function groupIdBytes(groupId) {
  if (typeof groupId !== 'string' || !GROUP_ID_PATTERN.test(groupId)) {
    throw invalidArgument('group id must be a lowercase UUID');
  }
  const hex = groupId.replaceAll('-', '');
  return Uint8Array.from({ length: GROUP_ID_LENGTH }, (_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

/** Section 22: the key id is a function of the signing key, in 1 .. 2^31 - 1. */
function keyIdOf(signingKey) {
  return MIN_KEY_ID + (readU32be(signingKey, 0) % MAX_KEY_ID);
}

function isKeyId(value) {
  return Number.isInteger(value) && value >= MIN_KEY_ID && value <= MAX_KEY_ID;
}

function isIteration(value) {
  return Number.isInteger(value) && value >= 0 && value <= MAX_MESSAGE_NUMBER;
}

/** The sender's labels (from the server, checked against the receiver's own knowledge) as AD bytes. */
function senderLabels({ groupId, senderIdentityKey, senderDevice }) {
  const group = groupIdBytes(groupId);
  const identityKey = fromBase64(senderIdentityKey, { length: KEY_LENGTH, what: 'sender identity key' });
  if (!isKeyId(senderDevice)) throw invalidArgument(`sender device must be an integer in [1, ${MAX_KEY_ID}]`);
  return concatBytes(group, identityKey, u32be(senderDevice));
}

function encodeHeader(keyId, iteration) {
  return concatBytes(Uint8Array.of(SENDER_KEY_VERSION), u32be(keyId), u32be(iteration));
}

// ---------------------------------------------------------------------------------------------------
// Own sender key

/**
 * @param {any} state
 * @returns {{keyId: number, chainKey: Uint8Array, iteration: number, signingSeed: Uint8Array, signingKey: Uint8Array}}
 */
function decodeOwnState(state) {
  if (typeof state !== 'object' || state === null || state.version !== SENDER_KEY_STATE_VERSION) {
    throw invalidState('version');
  }
  const code = ErrorCode.INVALID_SESSION_STATE;
  const chainKey = fromBase64(state.chainKey, { length: KEY_LENGTH, code, what: 'sender key chainKey' });
  const signingSeed = fromBase64(state.signingSeed, { length: KEY_LENGTH, code, what: 'sender key signingSeed' });
  if (!isIteration(state.iteration)) throw invalidState('iteration');
  const signingKey = ed25519PublicKey(signingSeed);
  if (state.keyId !== keyIdOf(signingKey)) throw invalidState('keyId');
  return { keyId: state.keyId, chainKey, iteration: state.iteration, signingSeed, signingKey };
}

/** @returns {SenderKeyState} */
function encodeOwnState({ keyId, chainKey, iteration, signingSeed }) {
  return {
    version: SENDER_KEY_STATE_VERSION,
    keyId,
    chainKey: toBase64(chainKey),
    iteration,
    signingSeed: toBase64(signingSeed),
  };
}

/**
 * A new sender key: two draws, CK first, then SIG's seed (section 5.5).
 * @param {{random?: import('./bytes.js').RandomSource}} [options]
 * @returns {SenderKeyState}
 */
export function createSenderKey({ random } = {}) {
  const chainKey = drawRandom(random, KEY_LENGTH);
  const signingSeed = drawRandom(random, KEY_LENGTH);
  const state = encodeOwnState({ keyId: keyIdOf(ed25519PublicKey(signingSeed)), chainKey, iteration: 0, signingSeed });
  wipe(chainKey, signingSeed);
  return state;
}

/**
 * The distribution of the sender key as it is now (its current CK and n): the receiver reads messages
 * from n on. Send it in a pairwise envelope to each member device that needs it.
 * @param {SenderKeyState} state
 * @param {string} groupId
 * @returns {Uint8Array} 0x01 || group id || u32(key_id) || u32(n) || CK || SIG public (89 bytes; SECRET)
 */
export function senderKeyDistribution(state, groupId) {
  const group = groupIdBytes(groupId);
  const own = decodeOwnState(state);
  const distribution = concatBytes(
    Uint8Array.of(SENDER_KEY_VERSION),
    group,
    u32be(own.keyId),
    u32be(own.iteration),
    own.chainKey,
    own.signingKey,
  );
  wipe(own.chainKey, own.signingSeed);
  return distribution;
}

/**
 * @param {SenderKeyState} state
 * @param {{groupId: string, senderIdentityKey: string, senderDevice: number, plaintext: Uint8Array}} message
 *   our own identity key (base64) and device id; the plaintext starts with its type byte (encodeGroupText,
 *   encodeGroupSettings)
 * @returns {Promise<{state: SenderKeyState, body: string}>} persist `state` before `body` leaves
 */
export async function encryptGroupMessage(state, { groupId, senderIdentityKey, senderDevice, plaintext } = {}) {
  const labels = senderLabels({ groupId, senderIdentityKey, senderDevice });
  if (!(plaintext instanceof Uint8Array) || plaintext.length === 0) {
    throw invalidArgument('plaintext must be non-empty bytes starting with its type byte');
  }
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw new ProtocolError(ErrorCode.PLAINTEXT_TOO_LARGE, `plaintext is over ${MAX_PLAINTEXT_BYTES} bytes`);
  }
  const own = decodeOwnState(state);
  let messageKey;
  try {
    if (own.iteration >= MAX_MESSAGE_NUMBER) {
      throw new ProtocolError(ErrorCode.CHAIN_EXHAUSTED, 'sender key is exhausted; make a new one');
    }
    const step = messageChainStep(own.chainKey);
    messageKey = step.messageKey;
    const header = encodeHeader(own.keyId, own.iteration);
    const associatedData = concatBytes(labels, header);
    const sealed = await encryptWithMessageKey(messageKey, plaintext, associatedData);
    const signature = ed25519Sign(own.signingSeed, concatBytes(associatedData, sealed));
    const next = encodeOwnState({ ...own, chainKey: step.chainKey, iteration: own.iteration + 1 });
    wipe(step.chainKey);
    return { state: next, body: toBase64(concatBytes(header, sealed, signature)) };
  } finally {
    wipe(messageKey, own.chainKey, own.signingSeed);
  }
}

// ---------------------------------------------------------------------------------------------------
// Received sender keys

/**
 * Checks a signing key as section 2 requires of Ed25519 keys (canonical, prime order) and that the key
 * id is the one it determines.
 */
function checkSigningKey(keyId, signingKey) {
  try {
    ed25519PublicKeyToX25519(signingKey);
  } catch {
    throw invalidSenderKey('the signing key is not a valid Ed25519 public key');
  }
  if (keyId !== keyIdOf(signingKey)) throw invalidSenderKey('the key id does not match the signing key');
}

/**
 * Reads a distribution received (in a pairwise envelope) for group `groupId`. Any deviation from
 * section 22 is INVALID_SENDER_KEY.
 * @param {Uint8Array} bytes
 * @param {string} groupId the group the distribution arrived for
 * @returns {{keyId: number, iteration: number, chainKey: string, signingKey: string}} (chainKey SECRET)
 */
export function parseSenderKeyDistribution(bytes, groupId) {
  const group = groupIdBytes(groupId);
  if (!(bytes instanceof Uint8Array)) throw invalidArgument('distribution must be bytes');
  if (bytes.length !== SENDER_KEY_DISTRIBUTION_LENGTH || bytes[0] !== SENDER_KEY_VERSION) {
    throw invalidSenderKey(`not ${SENDER_KEY_DISTRIBUTION_LENGTH} bytes starting with ${SENDER_KEY_VERSION}`);
  }
  if (!equalBytes(bytes.subarray(1, 1 + GROUP_ID_LENGTH), group)) throw invalidSenderKey('for another group');
  const keyId = readU32be(bytes, 17);
  const iteration = readU32be(bytes, 21);
  const chainKey = bytes.slice(25, 25 + KEY_LENGTH);
  const signingKey = bytes.slice(25 + KEY_LENGTH);
  checkSigningKey(keyId, signingKey);
  return { keyId, iteration, chainKey: toBase64(chainKey), signingKey: toBase64(signingKey) };
}

const ENCODED_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** Decodes (and thereby copies) a received sender key; the message keys stay base64 until used. */
function decodeReceivedKey(data) {
  if (typeof data !== 'object' || data === null) throw invalidState('received key');
  const code = ErrorCode.INVALID_SESSION_STATE;
  const chainKey = fromBase64(data.chainKey, { length: KEY_LENGTH, code, what: 'sender key chainKey' });
  const signingKey = fromBase64(data.signingKey, { length: KEY_LENGTH, code, what: 'sender key signingKey' });
  if (data.keyId !== keyIdOf(signingKey)) throw invalidState('keyId');
  if (!isIteration(data.iteration)) throw invalidState('iteration');
  const entries = data.skippedMessageKeys;
  if (!Array.isArray(entries) || entries.length > MAX_STORED_SKIPPED_KEYS) throw invalidState('skippedMessageKeys');
  const skippedMessageKeys = new Map();
  for (const entry of entries) {
    if (
      !isIteration(entry?.iteration) ||
      entry.iteration >= data.iteration ||
      skippedMessageKeys.has(entry.iteration) ||
      typeof entry.messageKey !== 'string' ||
      !ENCODED_KEY.test(entry.messageKey)
    ) {
      throw invalidState('skipped key');
    }
    skippedMessageKeys.set(entry.iteration, entry.messageKey);
  }
  return { keyId: data.keyId, iteration: data.iteration, chainKey, signingKey, skippedMessageKeys };
}

/** @returns {ReceivedSenderKey} */
function encodeReceivedKey(key) {
  return {
    keyId: key.keyId,
    iteration: key.iteration,
    chainKey: toBase64(key.chainKey),
    signingKey: toBase64(key.signingKey),
    skippedMessageKeys: [...key.skippedMessageKeys].map(([iteration, messageKey]) => ({ iteration, messageKey })),
  };
}

function decodeRecord(record) {
  if (typeof record !== 'object' || record === null || record.version !== SENDER_KEY_STATE_VERSION) {
    throw invalidState('record version');
  }
  const current = decodeReceivedKey(record.current);
  const previous = record.previous === null ? null : decodeReceivedKey(record.previous);
  if (previous !== null && previous.keyId === current.keyId) throw invalidState('previous keyId');
  return { current, previous };
}

/** @returns {SenderKeyRecord} */
function encodeRecord({ current, previous }) {
  return {
    version: SENDER_KEY_STATE_VERSION,
    current: encodeReceivedKey(current),
    previous: previous === null ? null : encodeReceivedKey(previous),
  };
}

/**
 * Takes in a parsed distribution. A new key id becomes the current key and the current one the previous
 * (the one before is forgotten). A key id already held (current or previous) leaves the record as it is,
 * so a replayed distribution never moves a chain back; the same id with another signing key is
 * INVALID_SENDER_KEY.
 * @param {SenderKeyRecord | null} record what is stored for (group, sender, device), or null
 * @param {{keyId: number, iteration: number, chainKey: string, signingKey: string}} distribution from
 *   parseSenderKeyDistribution
 * @returns {SenderKeyRecord} the record to store
 */
export function receivedSenderKeys(record, distribution) {
  if (
    typeof distribution !== 'object' ||
    distribution === null ||
    !isKeyId(distribution.keyId) ||
    !isIteration(distribution.iteration)
  ) {
    throw invalidArgument('expected a distribution returned by parseSenderKeyDistribution');
  }
  const chainKey = fromBase64(distribution.chainKey, { length: KEY_LENGTH, what: 'distribution chainKey' });
  const signingKey = fromBase64(distribution.signingKey, { length: KEY_LENGTH, what: 'distribution signingKey' });
  checkSigningKey(distribution.keyId, signingKey);
  const received = {
    keyId: distribution.keyId,
    iteration: distribution.iteration,
    chainKey,
    signingKey,
    skippedMessageKeys: new Map(),
  };
  if (record === null || record === undefined) return encodeRecord({ current: received, previous: null });
  const held = decodeRecord(record);
  for (const key of [held.current, held.previous]) {
    if (key === null || key.keyId !== received.keyId) continue;
    if (!equalBytes(key.signingKey, received.signingKey)) {
      throw invalidSenderKey('a sender key with this key id and another signing key is already held');
    }
    return encodeRecord(held);
  }
  return encodeRecord({ current: received, previous: held.current });
}

/** Derives and stores the message keys of iterations key.iteration .. until - 1 (section 22 step 5). */
function skipMessageKeys(key, until) {
  while (key.iteration < until) {
    const { chainKey, messageKey } = messageChainStep(key.chainKey);
    key.skippedMessageKeys.set(key.iteration, toBase64(messageKey));
    wipe(key.chainKey, messageKey);
    key.chainKey = chainKey;
    key.iteration += 1;
  }
  // Oldest first: Map iteration order is insertion order.
  for (const iteration of key.skippedMessageKeys.keys()) {
    if (key.skippedMessageKeys.size <= MAX_STORED_SKIPPED_KEYS) break;
    key.skippedMessageKeys.delete(iteration);
  }
}

/** The message key of iteration n, consumed from the working copy `key` (section 22 steps 4 and 5). */
function takeMessageKey(key, iteration) {
  if (iteration < key.iteration) {
    const stored = key.skippedMessageKeys.get(iteration);
    if (stored === undefined) {
      throw new ProtocolError(ErrorCode.DUPLICATE_MESSAGE, 'message was already received or its key was discarded');
    }
    key.skippedMessageKeys.delete(iteration);
    return fromBase64(stored, { length: KEY_LENGTH, code: ErrorCode.INVALID_SESSION_STATE, what: 'skipped key' });
  }
  if (iteration - key.iteration > MAX_SKIP) {
    throw new ProtocolError(ErrorCode.TOO_MANY_SKIPPED_MESSAGES, `more than ${MAX_SKIP} skipped messages`);
  }
  skipMessageKeys(key, iteration);
  const { chainKey, messageKey } = messageChainStep(key.chainKey);
  wipe(key.chainKey);
  key.chainKey = chainKey;
  key.iteration += 1;
  return messageKey;
}

/**
 * Decrypts a group message from (sender, device) in a group, with the checks in the order of section 22.
 * The labels are the server's `group`, `from_device`, and the identity key the receiver knows for `from`.
 * @param {SenderKeyRecord | null} record what is stored for (group, sender, device); null: none yet
 * @param {{groupId: string, senderIdentityKey: string, senderDevice: number, body: string}} message
 * @returns {Promise<{record: SenderKeyRecord, plaintext: Uint8Array}>} store `record` (only on success)
 */
export async function decryptGroupMessage(record, { groupId, senderIdentityKey, senderDevice, body } = {}) {
  const labels = senderLabels({ groupId, senderIdentityKey, senderDevice });
  if (typeof body !== 'string') throw malformed('body must be a string');
  if (body.length > MAX_BODY_LENGTH) throw new ProtocolError(ErrorCode.BODY_TOO_LARGE, 'group message body is too large');
  const bytes = fromBase64(body, { code: ErrorCode.MALFORMED_ENVELOPE, what: 'group message body' });
  const sealedLength = bytes.length - GROUP_HEADER_LENGTH - SIGNATURE_LENGTH;
  if (bytes.length < MIN_BODY_BYTES || (sealedLength - MAC_LENGTH) % AES_BLOCK_LENGTH !== 0) {
    throw malformed('impossible length');
  }
  if (bytes[0] !== SENDER_KEY_VERSION) {
    throw new ProtocolError(ErrorCode.UNSUPPORTED_VERSION, `unsupported group message version ${bytes[0]}`);
  }
  const keyId = readU32be(bytes, 1);
  const iteration = readU32be(bytes, 5);
  if (iteration === MAX_MESSAGE_NUMBER) throw malformed('message number 2^32 - 1 is never sent');

  const held = record === null || record === undefined ? null : decodeRecord(record);
  const key = [held?.current, held?.previous].find((candidate) => candidate && candidate.keyId === keyId);
  if (key === undefined) throw new ProtocolError(ErrorCode.UNKNOWN_SENDER_KEY, 'no sender key with this key id');

  const header = bytes.subarray(0, GROUP_HEADER_LENGTH);
  const sealed = bytes.subarray(GROUP_HEADER_LENGTH, GROUP_HEADER_LENGTH + sealedLength);
  const signature = bytes.subarray(GROUP_HEADER_LENGTH + sealedLength);
  const associatedData = concatBytes(labels, header);
  if (!ed25519Verify(key.signingKey, concatBytes(associatedData, sealed), signature)) {
    throw new ProtocolError(ErrorCode.INVALID_SIGNATURE, 'group message signature does not verify');
  }
  const messageKey = takeMessageKey(key, iteration);
  try {
    const plaintext = await decryptWithMessageKey(messageKey, sealed, associatedData);
    return { record: encodeRecord(held), plaintext };
  } finally {
    wipe(messageKey);
  }
}

// ---------------------------------------------------------------------------------------------------
// Plaintexts

function checkText(text, what) {
  if (typeof text !== 'string' || !text.isWellFormed()) throw invalidArgument(`${what} must be well-formed text`);
}

/** Section 22's name rule: 1 to 64 characters (code points), no control characters. */
function isValidName(name) {
  if (typeof name !== 'string' || !name.isWellFormed() || CONTROL_CHARACTER.test(name)) return false;
  const length = [...name].length;
  return length >= 1 && length <= GROUP_NAME_MAX_LENGTH;
}

/** @param {string} text @returns {Uint8Array} 0x01 || UTF-8 text */
export function encodeGroupText(text) {
  checkText(text, 'text');
  return concatBytes(Uint8Array.of(GroupPlaintextType.TEXT), textToBytes(text));
}

/** @param {{name: string}} settings @returns {Uint8Array} 0x02 || UTF-8 JSON {"name": ...} */
export function encodeGroupSettings({ name } = {}) {
  if (!isValidName(name)) {
    throw invalidArgument(`group name must be 1 to ${GROUP_NAME_MAX_LENGTH} characters, no control characters`);
  }
  return concatBytes(Uint8Array.of(GroupPlaintextType.SETTINGS), textToBytes(JSON.stringify({ name })));
}

function brokenPlaintext(why) {
  return new ProtocolError(ErrorCode.DECRYPTION_FAILED, `group plaintext: ${why}`);
}

/**
 * Reads a decrypted group plaintext. An unknown type is returned as such (acknowledge it, show nothing);
 * a known type whose content breaks section 22's rules, or an empty plaintext, is DECRYPTION_FAILED (a
 * broken sender: drop it). Unknown fields of the settings are ignored.
 * @param {Uint8Array} plaintext
 * @returns {{type: 'text', text: string} | {type: 'settings', name: string} | {type: 'unknown', typeByte: number}}
 */
export function decodeGroupPlaintext(plaintext) {
  if (!(plaintext instanceof Uint8Array)) throw invalidArgument('plaintext must be bytes');
  if (plaintext.length === 0) throw brokenPlaintext('empty');
  const [typeByte] = plaintext;
  if (typeByte !== GroupPlaintextType.TEXT && typeByte !== GroupPlaintextType.SETTINGS) {
    return { type: 'unknown', typeByte };
  }
  let content;
  try {
    content = bytesToText(plaintext.subarray(1));
  } catch {
    throw brokenPlaintext('not UTF-8');
  }
  if (typeByte === GroupPlaintextType.TEXT) return { type: 'text', text: content };
  let settings;
  try {
    settings = JSON.parse(content);
  } catch {
    throw brokenPlaintext('settings are not JSON');
  }
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings) || !isValidName(settings.name)) {
    throw brokenPlaintext('settings do not hold a valid name');
  }
  return { type: 'settings', name: settings.name };
}
