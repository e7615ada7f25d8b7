/**
 * The one error type the protocol code throws on purpose.
 *
 * Every failure a caller can meet (malformed input, bad signature, failed authentication, replay, …)
 * surfaces as a ProtocolError with a stable machine-readable `code` from {@link ErrorCode}; no exception
 * from deep inside a primitive escapes with an unpredictable shape. Messages are for developers and never
 * contain key material, session state or plaintext.
 */

/** Stable error codes. Also used, with the same strings, by the Python side (messenger_client.protocol). */
export const ErrorCode = Object.freeze({
  /** An argument passed by the caller has the wrong type, length or range (a programming error). */
  INVALID_ARGUMENT: 'invalid_argument',
  /** A key is not a valid point, is of small order, or gives an all-zero Diffie-Hellman output. */
  INVALID_KEY: 'invalid_key',
  /** A key bundle from the server does not have the documented shape. */
  INVALID_BUNDLE: 'invalid_bundle',
  /** The signed prekey's signature does not verify under the bundle's identity key. */
  INVALID_SIGNATURE: 'invalid_signature',
  /** A stored session object is not a session this code wrote. */
  INVALID_SESSION_STATE: 'invalid_session_state',
  /** The envelope body is not well-formed (base64, lengths, flags, ids). */
  MALFORMED_ENVELOPE: 'malformed_envelope',
  /** The envelope body is longer than MAX_BODY_LENGTH characters. */
  BODY_TOO_LARGE: 'body_too_large',
  /** The envelope body has a wire-format version this code does not speak. */
  UNSUPPORTED_VERSION: 'unsupported_version',
  /** The envelope's `kind` and the message type inside its body disagree, or the kind is unknown. */
  KIND_MISMATCH: 'kind_mismatch',
  /** The plaintext is longer than MAX_PLAINTEXT_BYTES. */
  PLAINTEXT_TOO_LARGE: 'plaintext_too_large',
  /** The initial message names a signed prekey the caller could not supply. */
  UNKNOWN_SIGNED_PREKEY: 'unknown_signed_prekey',
  /** The initial message names a one-time prekey the caller could not supply (used or never issued). */
  UNKNOWN_ONE_TIME_PREKEY: 'unknown_one_time_prekey',
  /** The initial message uses no one-time prekey although the caller requires one. */
  ONE_TIME_PREKEY_REQUIRED: 'one_time_prekey_required',
  /** An initial message re-uses an ephemeral key that already founded a session (X3DH replay). */
  REPLAYED_INITIAL_MESSAGE: 'replayed_initial_message',
  /** A prekey message was given to a session that was not founded by it. */
  SESSION_MISMATCH: 'session_mismatch',
  /** More than MAX_SKIP message keys would have to be skipped to decrypt this message. */
  TOO_MANY_SKIPPED_MESSAGES: 'too_many_skipped_messages',
  /** The message key of this message was already used (replay) or was discarded. */
  DUPLICATE_MESSAGE: 'duplicate_message',
  /** The authentication tag does not verify: tampered, forged, or not meant for this session. */
  AUTHENTICATION_FAILED: 'authentication_failed',
  /** The tag verified but the ciphertext did not decrypt (bad padding): a broken sender. */
  DECRYPTION_FAILED: 'decryption_failed',
  /** The sending chain reached the largest message number the wire format can carry. */
  CHAIN_EXHAUSTED: 'chain_exhausted',
  /** The prekey id space of this account is used up. */
  KEY_ID_EXHAUSTED: 'key_id_exhausted',
  /** A link code (text or scanned URL) is not `sm-link:1:<base64 16-byte link id>:<base64 32-byte key>`. */
  INVALID_LINK_CODE: 'invalid_link_code',
  /**
   * A link box authenticated but does not hold `0x01 || 32-byte identity seed`: another box format
   * version (first byte not 0x01) or a wrong length.
   */
  INVALID_LINK_BOX: 'invalid_link_box',
  /** A group message names a sender key (group, sender, device, key id) the receiver does not hold. */
  UNKNOWN_SENDER_KEY: 'unknown_sender_key',
  /**
   * A sender key distribution is not 89 bytes starting with 0x01, is for another group, carries an invalid
   * signing key or a key id that does not match it, or reuses a held key id with another signing key.
   */
  INVALID_SENDER_KEY: 'invalid_sender_key',
});

const KNOWN_CODES = new Set(Object.values(ErrorCode));

export class ProtocolError extends Error {
  /**
   * @param {string} code one of {@link ErrorCode}
   * @param {string} message developer-facing description; must not contain secrets or plaintext
   */
  constructor(code, message) {
    super(message);
    if (!KNOWN_CODES.has(code)) throw new TypeError(`unknown ProtocolError code: ${code}`);
    this.name = 'ProtocolError';
    /** @type {string} */
    this.code = code;
  }
}

/**
 * Runs `fn` and turns any non-ProtocolError exception into a ProtocolError with `code`.
 * Used around calls into the primitives, whose own exceptions have no stable shape.
 * @template T
 * @param {string} code
 * @param {string} message
 * @param {() => T} fn
 * @returns {T}
 */
export function withErrorCode(code, message, fn) {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw new ProtocolError(code, message);
  }
}
