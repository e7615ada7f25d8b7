/**
 * Public API of the end-to-end encryption protocol (docs/PROTOCOL.md). Pure: bytes and plain objects in,
 * bytes and plain objects out; no DOM, network, storage or logging. Runs unchanged in browsers and in
 * Node >= 20.19.
 *
 * Records (identity key pair, prekeys, sessions) are JSON-able objects with base64 byte fields; store them
 * as they are. Plaintexts are Uint8Array (textToBytes / bytesToText convert). Every expected failure is a
 * ProtocolError with a stable `code` (ErrorCode).
 *
 * Registration
 *   generateIdentityKeyPair(), generateSignedPrekey(identity, keyId), generateOneTimePrekeys(nextId, n)
 *   -> registrationKeys({...}) is what the server receives; persist the private records and nextKeyId
 *      only after the server accepted the registration (a failed one must not overwrite existing keys).
 * Sending to a new contact
 *   initiateSession({identityKeyPair, bundle}) -> encryptMessage(session, bytes) -> {kind, body}
 * Receiving
 *   parseEnvelope(kind, body) -> decryptMessage(session, envelope) or acceptInitialMessage({...})
 *   (see session.js for the exact routing and what to persist on success)
 * Verifying
 *   safetyNumber(ourIdentityKey, theirIdentityKey) -> 60 digits; formatSafetyNumber(digits)
 * Linking a device (section 18; see link.js)
 *   new device: createLinkRequest(linkId) -> show code; openLinkOffer(...) -> compare verificationCode,
 *     then open() -> identity seed -> identityKeyPairFromSeed(seed) for its device keys
 *   existing device: parseLinkCode(text) to check what was typed or scanned;
 *     sealIdentityForLink(seed, code) -> offer + verificationCode
 * Groups (section 22; see senderkey.js)
 *   sending: createSenderKey() -> senderKeyDistribution(state, groupId) to each member device (pairwise);
 *     encryptGroupMessage(state, {groupId, senderIdentityKey, senderDevice, plaintext}) -> {state, body}
 *   receiving: parseSenderKeyDistribution(bytes, groupId) -> receivedSenderKeys(record, distribution);
 *     decryptGroupMessage(record, {groupId, senderIdentityKey, senderDevice, body}) -> {record, plaintext}
 *   plaintexts: encodeGroupText(text), encodeGroupSettings({name}), decodeGroupPlaintext(bytes)
 */
export { ErrorCode, ProtocolError } from './errors.js';
export {
  EnvelopeKind,
  GroupPlaintextType,
  MAX_BODY_LENGTH,
  MAX_KEY_ID,
  MAX_ONE_TIME_PREKEYS_PER_BATCH,
  MAX_PLAINTEXT_BYTES,
  MAX_SKIP,
  MAX_STORED_SKIPPED_KEYS,
  MIN_KEY_ID,
  WIRE_VERSION,
} from './constants.js';
export { bytesToText, fromBase64, textToBytes, toBase64 } from './bytes.js';
export {
  generateIdentityKeyPair,
  generateOneTimePrekeys,
  generateSignedPrekey,
  identityKeyPairFromSeed,
  publicOneTimePrekey,
  publicSignedPrekey,
  registrationKeys,
  verifySignedPrekey,
} from './keys.js';
export { parseBundle } from './x3dh.js';
export { parseEnvelope } from './envelope.js';
export {
  acceptInitialMessage,
  decryptMessage,
  encryptMessage,
  initiateSession,
  isInitialMessageForSession,
} from './session.js';
export { formatSafetyNumber, identityKeyDigits, safetyNumber } from './fingerprint.js';
export { createLinkRequest, openLinkOffer, parseLinkCode, sealIdentityForLink } from './link.js';
export {
  createSenderKey,
  decodeGroupPlaintext,
  decryptGroupMessage,
  encodeGroupSettings,
  encodeGroupText,
  encryptGroupMessage,
  parseSenderKeyDistribution,
  receivedSenderKeys,
  senderKeyDistribution,
} from './senderkey.js';
