/**
 * Sessions: X3DH + Double Ratchet + envelope, as state-in / state-out functions.
 *
 * A session is a plain JSON-able object (see {@link SessionState}). Every function that changes a session
 * returns a NEW session object and never mutates the one it was given, so the caller can run the crypto
 * first and then store the returned state in one IndexedDB transaction (an IndexedDB transaction ends at
 * the first `await` of something else, so no cryptography can run inside one); if anything throws,
 * the caller still holds the previous, valid state (decryption commits only on success).
 *
 * The caller MUST persist the session returned by encryptMessage before sending the envelope, and must
 * never encrypt twice from the same stored state: that would reuse a message key.
 * Serialise all work on one session (e.g. Web Locks keyed by the peer) so two tabs cannot fork it.
 *
 * Receiving, as the caller should do it:
 *
 *   const envelope = parseEnvelope(kind, body);
 *   if (envelope.kind === 'message' || isInitialMessageForSession(session, envelope)) {
 *     ({ session, plaintext } = await decryptMessage(session, envelope));
 *   } else {
 *     // A new session offered by the peer: look up our prekeys by the ids in envelope.prekey.
 *     const result = await acceptInitialMessage({ identityKeyPair, signedPrekey, oneTimePrekey,
 *                                                 envelope, usedEphemeralKeys });
 *     // Only now, and only because it succeeded: delete result.consumedOneTimePrekeyId's private key,
 *     // remember result.ephemeralKey in usedEphemeralKeys, store result.session.
 *   }
 *   // Compare envelope.prekey.identityKey / session.remoteIdentityKey with the identity key known for
 *   // the sender; a change must be shown to the user (the server could have substituted a key).
 */
import { EnvelopeKind, KEY_LENGTH, MAX_PLAINTEXT_BYTES } from './constants.js';
import { concatBytes, equalBytes, fromBase64, toBase64, wipe } from './bytes.js';
import { encodeEnvelope } from './envelope.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { assertKeyId } from './keys.js';
import {
  decodeRatchetState,
  encodeRatchetState,
  initInitiatorRatchet,
  initResponderRatchet,
  ratchetDecrypt,
  ratchetEncrypt,
} from './ratchet.js';
import { x3dhInitiate, x3dhRespond } from './x3dh.js';

export const SESSION_STATE_VERSION = 1;

/**
 * Stored session. All byte fields are base64. Fields other than `ratchet` may be read by callers.
 * @typedef {object} SessionState
 * @property {1} version
 * @property {'initiator' | 'responder'} role who ran the X3DH initiator side
 * @property {string} localIdentityKey our Ed25519 identity key
 * @property {string} remoteIdentityKey the peer's Ed25519 identity key this session is bound to
 * @property {string} associatedData X3DH AD = IK_initiator || IK_responder (64 bytes)
 * @property {string} initialEphemeralKey EK_A of the X3DH run that founded this session
 * @property {{signedPrekeyId: number, oneTimePrekeyId: number | null} | null} pendingPrekey
 *   initiator only: prekey ids to repeat in the X3DH header of every message until the first reply
 *   decrypts (so the responder can build the session from whichever of our messages arrives first)
 * @property {object} ratchet Double Ratchet state (opaque)
 */

function invalidState(what) {
  return new ProtocolError(ErrorCode.INVALID_SESSION_STATE, `session state: bad ${what}`);
}

/**
 * Decodes a stored session into a private working copy (bytes), validating it.
 * @param {any} session
 */
function decodeSession(session) {
  if (typeof session !== 'object' || session === null || session.version !== SESSION_STATE_VERSION) {
    throw invalidState('version');
  }
  if (session.role !== 'initiator' && session.role !== 'responder') throw invalidState('role');
  const code = ErrorCode.INVALID_SESSION_STATE;
  const localIdentityKey = fromBase64(session.localIdentityKey, { length: KEY_LENGTH, code, what: 'localIdentityKey' });
  const remoteIdentityKey = fromBase64(session.remoteIdentityKey, { length: KEY_LENGTH, code, what: 'remoteIdentityKey' });
  const associatedData = fromBase64(session.associatedData, { length: 2 * KEY_LENGTH, code, what: 'associatedData' });
  const expectedAd =
    session.role === 'initiator'
      ? concatBytes(localIdentityKey, remoteIdentityKey)
      : concatBytes(remoteIdentityKey, localIdentityKey);
  if (!equalBytes(associatedData, expectedAd)) throw invalidState('associatedData');
  fromBase64(session.initialEphemeralKey, { length: KEY_LENGTH, code, what: 'initialEphemeralKey' });

  let pendingPrekey = null;
  if (session.pendingPrekey !== null) {
    const pending = session.pendingPrekey;
    if (session.role !== 'initiator' || typeof pending !== 'object') throw invalidState('pendingPrekey');
    try {
      assertKeyId(pending.signedPrekeyId);
      if (pending.oneTimePrekeyId !== null) assertKeyId(pending.oneTimePrekeyId);
    } catch {
      throw invalidState('pendingPrekey');
    }
    pendingPrekey = { signedPrekeyId: pending.signedPrekeyId, oneTimePrekeyId: pending.oneTimePrekeyId };
  }
  return {
    role: session.role,
    localIdentityKey: session.localIdentityKey,
    remoteIdentityKey: session.remoteIdentityKey,
    associatedData,
    initialEphemeralKey: session.initialEphemeralKey,
    pendingPrekey,
    ratchet: decodeRatchetState(session.ratchet),
  };
}

/** @returns {SessionState} */
function encodeSession(working) {
  return {
    version: SESSION_STATE_VERSION,
    role: working.role,
    localIdentityKey: working.localIdentityKey,
    remoteIdentityKey: working.remoteIdentityKey,
    associatedData: toBase64(working.associatedData),
    initialEphemeralKey: working.initialEphemeralKey,
    pendingPrekey: working.pendingPrekey ? { ...working.pendingPrekey } : null,
    ratchet: encodeRatchetState(working.ratchet),
  };
}

function requireEnvelope(envelope) {
  if (
    typeof envelope !== 'object' ||
    envelope === null ||
    typeof envelope.message !== 'object' ||
    !(envelope.message.ciphertext instanceof Uint8Array)
  ) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'expected an envelope returned by parseEnvelope');
  }
}

function ratchetHeaderOf(envelope) {
  const { ratchetKey, messageNumber, previousChainLength } = envelope.message;
  return {
    ratchetKey: fromBase64(ratchetKey, { length: KEY_LENGTH, what: 'ratchetKey' }),
    messageNumber,
    previousChainLength,
  };
}

/**
 * Starts a session with a peer from their key bundle (X3DH initiator), without network round trip: the
 * peer does not need to be online. Verifies the signed prekey signature first.
 * @param {object} params
 * @param {import('./keys.js').IdentityKeyPair} params.identityKeyPair our identity
 * @param {unknown} params.bundle as served by POST /api/v1/keys/bundle {email}
 * @param {import('./bytes.js').RandomSource} [params.random]
 * @returns {Promise<{session: SessionState, remoteIdentityKey: string}>} compare remoteIdentityKey with
 *   the identity key known for this contact before trusting the session
 */
export async function initiateSession({ identityKeyPair, bundle, random }) {
  const agreement = x3dhInitiate({ identityKeyPair, bundle, random });
  const ratchet = initInitiatorRatchet(agreement.sharedSecret, agreement.signedPrekeyPublicKey, random);
  wipe(agreement.sharedSecret);
  const session = encodeSession({
    role: 'initiator',
    localIdentityKey: identityKeyPair.publicKey,
    remoteIdentityKey: toBase64(agreement.remoteIdentityKey),
    associatedData: agreement.associatedData,
    initialEphemeralKey: toBase64(agreement.ephemeralPublicKey),
    pendingPrekey: { signedPrekeyId: agreement.signedPrekeyId, oneTimePrekeyId: agreement.oneTimePrekeyId },
    ratchet,
  });
  return { session, remoteIdentityKey: session.remoteIdentityKey };
}

/**
 * Encrypts one message. Persist the returned session BEFORE sending the envelope.
 * @param {SessionState} session
 * @param {Uint8Array} plaintext at most MAX_PLAINTEXT_BYTES
 * @returns {Promise<{session: SessionState, kind: 'prekey' | 'message', body: string}>} kind and body go
 *   into the server envelope unchanged
 */
export async function encryptMessage(session, plaintext) {
  if (!(plaintext instanceof Uint8Array)) throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'plaintext must be a Uint8Array');
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw new ProtocolError(ErrorCode.PLAINTEXT_TOO_LARGE, `plaintext exceeds ${MAX_PLAINTEXT_BYTES} bytes`);
  }
  const working = decodeSession(session);
  const { header, ciphertext } = await ratchetEncrypt(working.ratchet, plaintext, working.associatedData);
  const pending = working.pendingPrekey;
  const { kind, body } = encodeEnvelope({
    kind: pending ? EnvelopeKind.PREKEY : EnvelopeKind.MESSAGE,
    prekey: pending
      ? {
          identityKey: working.localIdentityKey,
          ephemeralKey: working.initialEphemeralKey,
          signedPrekeyId: pending.signedPrekeyId,
          oneTimePrekeyId: pending.oneTimePrekeyId,
        }
      : null,
    message: {
      ratchetKey: toBase64(header.ratchetKey),
      messageNumber: header.messageNumber,
      previousChainLength: header.previousChainLength,
      ciphertext,
    },
  });
  return { session: encodeSession(working), kind, body };
}

/**
 * True when `envelope` is an initial (prekey) message of the X3DH run that founded `session`, i.e. the
 * initiator is repeating its X3DH header until it hears back. Such a message is decrypted with
 * decryptMessage, never used to build a second session (a replay must not found one).
 * @param {SessionState | null | undefined} session
 * @param {import('./envelope.js').Envelope} envelope
 * @returns {boolean}
 */
export function isInitialMessageForSession(session, envelope) {
  return Boolean(
    session &&
      envelope?.kind === EnvelopeKind.PREKEY &&
      envelope.prekey &&
      session.role === 'responder' &&
      envelope.prekey.ephemeralKey === session.initialEphemeralKey &&
      envelope.prekey.identityKey === session.remoteIdentityKey,
  );
}

/**
 * Decrypts a message of an existing session. Works on a copy: on any failure it throws ProtocolError and
 * the caller's `session` is untouched and still valid.
 * @param {SessionState} session
 * @param {import('./envelope.js').Envelope} envelope from parseEnvelope; a "prekey" envelope is accepted
 *   only if isInitialMessageForSession(session, envelope)
 * @param {{random?: import('./bytes.js').RandomSource}} [options]
 * @returns {Promise<{session: SessionState, plaintext: Uint8Array}>}
 * @throws {ProtocolError} DUPLICATE_MESSAGE, TOO_MANY_SKIPPED_MESSAGES, AUTHENTICATION_FAILED, INVALID_KEY,
 *   DECRYPTION_FAILED, SESSION_MISMATCH, INVALID_SESSION_STATE
 */
export async function decryptMessage(session, envelope, { random } = {}) {
  requireEnvelope(envelope);
  if (session === null || session === undefined) {
    throw new ProtocolError(ErrorCode.SESSION_MISMATCH, 'there is no session with this sender');
  }
  if (envelope.kind === EnvelopeKind.PREKEY && !isInitialMessageForSession(session, envelope)) {
    throw new ProtocolError(ErrorCode.SESSION_MISMATCH, 'this prekey message does not belong to this session');
  }
  const working = decodeSession(session);
  const plaintext = await ratchetDecrypt(
    working.ratchet,
    ratchetHeaderOf(envelope),
    envelope.message.ciphertext,
    working.associatedData,
    random,
  );
  // Anything that decrypts in an initiator's session was sent by the responder, so it has the session:
  // stop repeating the X3DH header.
  working.pendingPrekey = null;
  return { session: encodeSession(working), plaintext };
}

/**
 * Builds a session from a peer's initial message (X3DH responder) and decrypts that message.
 *
 * Replay: an initial message sent without a one-time prekey can be replayed. The caller
 * keeps the set of ephemeral keys that already founded a session (at least for as long as the signed
 * prekey they used is kept) and passes it as `usedEphemeralKeys`; a known key is rejected with
 * REPLAYED_INITIAL_MESSAGE before any cryptography.
 *
 * One-time prekeys: nothing is consumed unless this function resolves. Only then does the
 * caller delete the private key of `consumedOneTimePrekeyId`. A failed attempt (forgery, tampering,
 * wrong keys) leaves the prekey usable for the genuine initial message.
 *
 * @param {object} params
 * @param {import('./keys.js').IdentityKeyPair} params.identityKeyPair our identity
 * @param {import('./keys.js').SignedPrekey | null} params.signedPrekey ours, with keyId === envelope.prekey.signedPrekeyId
 * @param {import('./keys.js').OneTimePrekey | null} [params.oneTimePrekey] ours, with keyId ===
 *   envelope.prekey.oneTimePrekeyId, or null when that id is null or unknown
 * @param {import('./envelope.js').Envelope} params.envelope a parsed "prekey" envelope
 * @param {{has(ephemeralKey: string): boolean}} params.usedEphemeralKeys e.g. a Set of base64 keys
 * @param {boolean} [params.requireOneTimePrekey] reject initial messages that used no one-time prekey
 * @param {import('./bytes.js').RandomSource} [params.random]
 * @returns {Promise<{session: SessionState, plaintext: Uint8Array, consumedOneTimePrekeyId: number | null,
 *   ephemeralKey: string, remoteIdentityKey: string}>}
 */
export async function acceptInitialMessage({
  identityKeyPair,
  signedPrekey,
  oneTimePrekey = null,
  envelope,
  usedEphemeralKeys,
  requireOneTimePrekey = false,
  random,
}) {
  requireEnvelope(envelope);
  const header = envelope.prekey;
  if (envelope.kind !== EnvelopeKind.PREKEY || !header) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'only a "prekey" envelope can start a session');
  }
  if (typeof usedEphemeralKeys?.has !== 'function') {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'usedEphemeralKeys is required (replay protection)');
  }
  if (usedEphemeralKeys.has(header.ephemeralKey)) {
    throw new ProtocolError(ErrorCode.REPLAYED_INITIAL_MESSAGE, 'this ephemeral key already founded a session');
  }
  if (!signedPrekey || signedPrekey.keyId !== header.signedPrekeyId) {
    throw new ProtocolError(ErrorCode.UNKNOWN_SIGNED_PREKEY, 'the signed prekey of this message is not available');
  }
  if (header.oneTimePrekeyId === null) {
    if (requireOneTimePrekey) {
      throw new ProtocolError(ErrorCode.ONE_TIME_PREKEY_REQUIRED, 'initial message did not use a one-time prekey');
    }
    if (oneTimePrekey) {
      throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'this message used no one-time prekey; pass null');
    }
  } else if (!oneTimePrekey || oneTimePrekey.keyId !== header.oneTimePrekeyId) {
    throw new ProtocolError(ErrorCode.UNKNOWN_ONE_TIME_PREKEY, 'the one-time prekey of this message is not available');
  }

  const remoteIdentityKey = fromBase64(header.identityKey, { length: KEY_LENGTH, what: 'identityKey' });
  const ephemeralKey = fromBase64(header.ephemeralKey, { length: KEY_LENGTH, what: 'ephemeralKey' });
  const agreement = x3dhRespond({
    identityKeyPair,
    signedPrekey,
    oneTimePrekey: header.oneTimePrekeyId === null ? null : oneTimePrekey,
    remoteIdentityKey,
    ephemeralKey,
  });
  const ratchet = initResponderRatchet(agreement.sharedSecret, {
    publicKey: fromBase64(signedPrekey.publicKey, { length: KEY_LENGTH, what: 'signed prekey' }),
    privateKey: fromBase64(signedPrekey.privateKey, { length: KEY_LENGTH, what: 'signed prekey' }),
  });
  wipe(agreement.sharedSecret);
  const plaintext = await ratchetDecrypt(
    ratchet,
    ratchetHeaderOf(envelope),
    envelope.message.ciphertext,
    agreement.associatedData,
    random,
  );
  const session = encodeSession({
    role: 'responder',
    localIdentityKey: identityKeyPair.publicKey,
    remoteIdentityKey: header.identityKey,
    associatedData: agreement.associatedData,
    initialEphemeralKey: header.ephemeralKey,
    pendingPrekey: null,
    ratchet,
  });
  return {
    session,
    plaintext,
    consumedOneTimePrekeyId: header.oneTimePrekeyId,
    ephemeralKey: header.ephemeralKey,
    remoteIdentityKey: header.identityKey,
  };
}
