/**
 * Envelope wire format, version 1: the `body` of a server envelope is the standard padded base64 of
 *
 *   offset  size  field
 *   0       1     version = 0x01
 *   1       1     type: 0x01 prekey (kind "prekey"), 0x02 message (kind "message")
 *   -- type 0x01 only (the X3DH header) --
 *   2       32    IK_A  initiator identity key (Ed25519)
 *   34      32    EK_A  initiator ephemeral key (X25519)
 *   66      4     signed prekey id (u32 BE)
 *   70      1     flags: bit 0 = a one-time prekey id follows; other bits must be zero
 *   71      4     one-time prekey id (u32 BE), present only if flags bit 0 is set
 *   -- both types (the Double Ratchet message) --
 *   +0      32    ratchet public key (X25519)
 *   +32     4     n, message number in the sending chain (u32 BE)
 *   +36     4     pn, length of the previous sending chain (u32 BE)
 *   +40     rest  AES-256-CBC ciphertext (a multiple of 16 bytes, at least 16) || HMAC-SHA-256 tag (32)
 *
 * Parsing is strict: any deviation (unknown version, type not matching `kind`, reserved flag bits, ids out
 * of range, a ciphertext of impossible length, non-canonical base64, a body over MAX_BODY_LENGTH) throws
 * ProtocolError before any cryptography runs. Nothing in the header is trusted because it parsed: the
 * ratchet header is authenticated by the message MAC (it is part of the AD), and the X3DH header is
 * bound by the shared secret (EK_A, prekey ids) and the AD (IK_A).
 */
import {
  AES_BLOCK_LENGTH,
  EnvelopeKind,
  KEY_LENGTH,
  MAC_LENGTH,
  MAX_BODY_LENGTH,
  MAX_KEY_ID,
  MAX_MESSAGE_NUMBER,
  MIN_KEY_ID,
  WIRE_VERSION,
} from './constants.js';
import { concatBytes, fromBase64, readU32be, toBase64, u32be } from './bytes.js';
import { ErrorCode, ProtocolError } from './errors.js';

const TYPE_PREKEY = 0x01;
const TYPE_MESSAGE = 0x02;
const FLAG_ONE_TIME_PREKEY = 0x01;
const RATCHET_HEADER_LENGTH = KEY_LENGTH + 4 + 4;
const MIN_SEALED_LENGTH = AES_BLOCK_LENGTH + MAC_LENGTH;

/**
 * The X3DH part of an initial message. Keys are base64.
 * @typedef {object} PrekeyHeader
 * @property {string} identityKey IK_A, the initiator's Ed25519 identity key
 * @property {string} ephemeralKey EK_A, X25519
 * @property {number} signedPrekeyId id of the responder's signed prekey that was used
 * @property {number | null} oneTimePrekeyId id of the responder's one-time prekey that was used, if any
 */

/**
 * The Double Ratchet part of every message.
 * @typedef {object} RatchetMessage
 * @property {string} ratchetKey sender's ratchet public key (base64)
 * @property {number} messageNumber n
 * @property {number} previousChainLength pn
 * @property {Uint8Array} ciphertext AES-CBC ciphertext || HMAC tag
 */

/**
 * @typedef {object} Envelope
 * @property {'prekey' | 'message'} kind
 * @property {PrekeyHeader | null} prekey present exactly when kind is "prekey"
 * @property {RatchetMessage} message
 */

function malformed(message) {
  return new ProtocolError(ErrorCode.MALFORMED_ENVELOPE, message);
}

function isKeyId(value) {
  return Number.isInteger(value) && value >= MIN_KEY_ID && value <= MAX_KEY_ID;
}

function isMessageNumber(value) {
  return Number.isInteger(value) && value >= 0 && value <= MAX_MESSAGE_NUMBER;
}

function isSealedLength(length) {
  return length >= MIN_SEALED_LENGTH && (length - MAC_LENGTH) % AES_BLOCK_LENGTH === 0;
}

/**
 * Serialises an envelope into the server's `{kind, body}`.
 * @param {Envelope} envelope
 * @returns {{kind: 'prekey' | 'message', body: string}}
 */
export function encodeEnvelope(envelope) {
  const { kind, prekey, message } = envelope;
  const invalid = (what) => new ProtocolError(ErrorCode.INVALID_ARGUMENT, `cannot encode envelope: bad ${what}`);
  if (!isMessageNumber(message.messageNumber)) throw invalid('messageNumber');
  if (!isMessageNumber(message.previousChainLength)) throw invalid('previousChainLength');
  if (!isSealedLength(message.ciphertext.length)) throw invalid('ciphertext');
  const ratchetPart = concatBytes(
    fromBase64(message.ratchetKey, { length: KEY_LENGTH, what: 'ratchetKey' }),
    u32be(message.messageNumber),
    u32be(message.previousChainLength),
    message.ciphertext,
  );

  let bytes;
  if (kind === EnvelopeKind.PREKEY) {
    if (!prekey || !isKeyId(prekey.signedPrekeyId)) throw invalid('signedPrekeyId');
    const hasOneTime = prekey.oneTimePrekeyId !== null;
    if (hasOneTime && !isKeyId(prekey.oneTimePrekeyId)) throw invalid('oneTimePrekeyId');
    bytes = concatBytes(
      Uint8Array.of(WIRE_VERSION, TYPE_PREKEY),
      fromBase64(prekey.identityKey, { length: KEY_LENGTH, what: 'identityKey' }),
      fromBase64(prekey.ephemeralKey, { length: KEY_LENGTH, what: 'ephemeralKey' }),
      u32be(prekey.signedPrekeyId),
      Uint8Array.of(hasOneTime ? FLAG_ONE_TIME_PREKEY : 0),
      hasOneTime ? u32be(prekey.oneTimePrekeyId) : new Uint8Array(0),
      ratchetPart,
    );
  } else if (kind === EnvelopeKind.MESSAGE) {
    if (prekey) throw invalid('prekey (a "message" envelope carries no X3DH header)');
    bytes = concatBytes(Uint8Array.of(WIRE_VERSION, TYPE_MESSAGE), ratchetPart);
  } else {
    throw new ProtocolError(ErrorCode.KIND_MISMATCH, 'unknown envelope kind');
  }
  const body = toBase64(bytes);
  if (body.length > MAX_BODY_LENGTH) throw new ProtocolError(ErrorCode.BODY_TOO_LARGE, 'envelope body is too large');
  return { kind, body };
}

/**
 * Parses a server envelope's `kind` and `body`. Throws ProtocolError (MALFORMED_ENVELOPE, BODY_TOO_LARGE,
 * UNSUPPORTED_VERSION or KIND_MISMATCH) on anything but a well-formed version-1 envelope.
 * @param {string} kind
 * @param {string} body
 * @returns {Envelope}
 */
export function parseEnvelope(kind, body) {
  if (kind !== EnvelopeKind.PREKEY && kind !== EnvelopeKind.MESSAGE) {
    throw new ProtocolError(ErrorCode.KIND_MISMATCH, 'unknown envelope kind');
  }
  if (typeof body !== 'string') throw malformed('body must be a string');
  if (body.length > MAX_BODY_LENGTH) throw new ProtocolError(ErrorCode.BODY_TOO_LARGE, 'envelope body is too large');
  const bytes = fromBase64(body, { code: ErrorCode.MALFORMED_ENVELOPE, what: 'envelope body' });
  if (bytes.length < 2) throw malformed('envelope body is truncated');
  if (bytes[0] !== WIRE_VERSION) throw new ProtocolError(ErrorCode.UNSUPPORTED_VERSION, 'unsupported envelope version');
  const expectedType = kind === EnvelopeKind.PREKEY ? TYPE_PREKEY : TYPE_MESSAGE;
  if (bytes[1] !== expectedType) throw new ProtocolError(ErrorCode.KIND_MISMATCH, 'envelope kind does not match its body');

  let offset = 2;
  const take = (length) => {
    if (offset + length > bytes.length) throw malformed('envelope body is truncated');
    const part = bytes.subarray(offset, offset + length);
    offset += length;
    return part;
  };
  const takeU32 = () => readU32be(take(4), 0);

  let prekey = null;
  if (kind === EnvelopeKind.PREKEY) {
    const identityKey = toBase64(take(KEY_LENGTH));
    const ephemeralKey = toBase64(take(KEY_LENGTH));
    const signedPrekeyId = takeU32();
    const [flags] = take(1);
    if ((flags & ~FLAG_ONE_TIME_PREKEY) !== 0) throw malformed('reserved flag bits are set');
    const oneTimePrekeyId = flags & FLAG_ONE_TIME_PREKEY ? takeU32() : null;
    if (!isKeyId(signedPrekeyId)) throw malformed('signed prekey id is out of range');
    if (oneTimePrekeyId !== null && !isKeyId(oneTimePrekeyId)) throw malformed('one-time prekey id is out of range');
    prekey = { identityKey, ephemeralKey, signedPrekeyId, oneTimePrekeyId };
  }

  const ratchetKey = toBase64(take(KEY_LENGTH));
  const messageNumber = takeU32();
  const previousChainLength = takeU32();
  const ciphertext = Uint8Array.from(bytes.subarray(offset));
  if (!isSealedLength(ciphertext.length)) throw malformed('ciphertext has an impossible length');

  return { kind, prekey, message: { ratchetKey, messageNumber, previousChainLength, ciphertext } };
}

/** Bytes of envelope overhead besides the padded ciphertext, for size planning and docs. */
export const ENVELOPE_OVERHEAD = Object.freeze({
  message: 2 + RATCHET_HEADER_LENGTH + MAC_LENGTH,
  prekey: 2 + KEY_LENGTH * 2 + 4 + 1 + 4 + RATCHET_HEADER_LENGTH + MAC_LENGTH,
});
