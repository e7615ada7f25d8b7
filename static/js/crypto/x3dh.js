/**
 * X3DH key agreement (signal.org/docs/specifications/x3dh), with the parameters of docs/PROTOCOL.md:
 *
 *   curve X25519 (identity keys are Ed25519 and enter DH through the birational map), hash SHA-256,
 *   info "SecuredMessenger X3DH v1", Encode(PK) = the raw 32 bytes,
 *   DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)  DH4 = DH(EK_A, OPK_B)
 *   SK  = HKDF-SHA-256(salt = 32 x 0x00, IKM = 32 x 0xFF || DH1 || DH2 || DH3 [|| DH4], info, 32)
 *   AD  = IK_A || IK_B   (Ed25519 public keys, initiator first)
 *
 * The 0xFF prefix (spec section 2.2) keeps the IKM from ever starting like a valid X25519 output, for
 * domain separation from XEdDSA. DH1 and DH2 give mutual authentication, DH3 and DH4 forward secrecy;
 * DH4 is used whenever the bundle offers a one-time prekey because it is what stops a replayed initial
 * message from re-creating the same key (see session.js for the replay guard when there is none).
 */
import { KEY_LENGTH, MAX_KEY_ID, MIN_KEY_ID, SIGNATURE_LENGTH, X3DH_INFO } from './constants.js';
import { concatBytes, equalBytes, fromBase64, textToBytes, wipe } from './bytes.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { generateX25519KeyPair } from './keys.js';
import {
  ed25519PublicKey,
  ed25519PublicKeyToX25519,
  ed25519SeedToX25519,
  ed25519Verify,
  hkdfSha256,
  x25519SharedSecret,
} from './primitives.js';

const KDF_PREFIX = new Uint8Array(32).fill(0xff);
const ZERO_SALT = new Uint8Array(32);

/**
 * @typedef {object} ParsedBundle
 * @property {Uint8Array} identityKey Ed25519
 * @property {{keyId: number, publicKey: Uint8Array, signature: Uint8Array}} signedPrekey
 * @property {{keyId: number, publicKey: Uint8Array} | null} oneTimePrekey
 */

function bundleKeyId(value, what) {
  if (!Number.isInteger(value) || value < MIN_KEY_ID || value > MAX_KEY_ID) {
    throw new ProtocolError(ErrorCode.INVALID_BUNDLE, `${what} is not a valid key id`);
  }
  return value;
}

function isPlainObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates and decodes a bundle as served by POST /api/v1/keys/bundle {email}:
 * `{identity_key, signed_prekey: {key_id, public_key, signature}, one_time_prekey: {key_id, public_key} | null}`.
 * Unknown extra fields are ignored.
 * @param {unknown} bundle
 * @returns {ParsedBundle}
 */
export function parseBundle(bundle) {
  if (!isPlainObject(bundle) || !isPlainObject(bundle.signed_prekey)) {
    throw new ProtocolError(ErrorCode.INVALID_BUNDLE, 'bundle must be an object with a signed_prekey');
  }
  const code = ErrorCode.INVALID_BUNDLE;
  const spk = bundle.signed_prekey;
  const opk = bundle.one_time_prekey ?? null;
  if (opk !== null && !isPlainObject(opk)) throw new ProtocolError(code, 'one_time_prekey must be an object or null');
  return {
    identityKey: fromBase64(bundle.identity_key, { length: KEY_LENGTH, code, what: 'identity_key' }),
    signedPrekey: {
      keyId: bundleKeyId(spk.key_id, 'signed_prekey.key_id'),
      publicKey: fromBase64(spk.public_key, { length: KEY_LENGTH, code, what: 'signed_prekey.public_key' }),
      signature: fromBase64(spk.signature, { length: SIGNATURE_LENGTH, code, what: 'signed_prekey.signature' }),
    },
    oneTimePrekey:
      opk === null
        ? null
        : {
            keyId: bundleKeyId(opk.key_id, 'one_time_prekey.key_id'),
            publicKey: fromBase64(opk.public_key, { length: KEY_LENGTH, code, what: 'one_time_prekey.public_key' }),
          },
  };
}

/**
 * Decodes an identity key pair record and checks that its halves belong together, so a corrupted record
 * fails loudly here instead of producing sessions nobody can decrypt.
 * @param {import('./keys.js').IdentityKeyPair} identityKeyPair
 */
export function decodeIdentityKeyPair(identityKeyPair) {
  const seed = fromBase64(identityKeyPair?.privateKey, { length: KEY_LENGTH, what: 'identity private key' });
  const publicKey = fromBase64(identityKeyPair?.publicKey, { length: KEY_LENGTH, what: 'identity public key' });
  if (!equalBytes(ed25519PublicKey(seed), publicKey)) {
    wipe(seed);
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'identity key pair halves do not match');
  }
  return { seed, publicKey };
}

function deriveSharedSecret(dhOutputs) {
  const inputKeyMaterial = concatBytes(KDF_PREFIX, ...dhOutputs);
  const sharedSecret = hkdfSha256(inputKeyMaterial, ZERO_SALT, textToBytes(X3DH_INFO), 32);
  wipe(inputKeyMaterial, ...dhOutputs);
  return sharedSecret;
}

/**
 * Initiator side ("Alice"). Verifies the signed prekey signature before doing anything else: a bundle
 * whose signature fails may be a server substituting keys, and no DH is computed with it.
 * @param {object} params
 * @param {import('./keys.js').IdentityKeyPair} params.identityKeyPair our identity
 * @param {unknown} params.bundle the peer's bundle, server form
 * @param {import('./bytes.js').RandomSource} [params.random]
 * @returns {{sharedSecret: Uint8Array, associatedData: Uint8Array, ephemeralPublicKey: Uint8Array,
 *   remoteIdentityKey: Uint8Array, signedPrekeyId: number, signedPrekeyPublicKey: Uint8Array,
 *   oneTimePrekeyId: number | null}}
 */
export function x3dhInitiate({ identityKeyPair, bundle, random }) {
  const parsed = parseBundle(bundle);
  if (!ed25519Verify(parsed.identityKey, parsed.signedPrekey.publicKey, parsed.signedPrekey.signature)) {
    throw new ProtocolError(ErrorCode.INVALID_SIGNATURE, 'signed prekey signature does not verify');
  }
  const remoteIdentityDh = ed25519PublicKeyToX25519(parsed.identityKey);
  const own = decodeIdentityKeyPair(identityKeyPair);
  const ownIdentityDh = ed25519SeedToX25519(own.seed);
  const ephemeral = generateX25519KeyPair(random);

  const dhOutputs = [];
  try {
    dhOutputs.push(
      x25519SharedSecret(ownIdentityDh, parsed.signedPrekey.publicKey),
      x25519SharedSecret(ephemeral.privateKey, remoteIdentityDh),
      x25519SharedSecret(ephemeral.privateKey, parsed.signedPrekey.publicKey),
    );
    if (parsed.oneTimePrekey) dhOutputs.push(x25519SharedSecret(ephemeral.privateKey, parsed.oneTimePrekey.publicKey));
  } catch (error) {
    wipe(...dhOutputs);
    throw error;
  } finally {
    // The ephemeral private key is needed for nothing else: forget it now (forward secrecy).
    wipe(own.seed, ownIdentityDh, ephemeral.privateKey);
  }

  return {
    sharedSecret: deriveSharedSecret(dhOutputs),
    associatedData: concatBytes(own.publicKey, parsed.identityKey),
    ephemeralPublicKey: ephemeral.publicKey,
    remoteIdentityKey: parsed.identityKey,
    signedPrekeyId: parsed.signedPrekey.keyId,
    signedPrekeyPublicKey: parsed.signedPrekey.publicKey,
    oneTimePrekeyId: parsed.oneTimePrekey ? parsed.oneTimePrekey.keyId : null,
  };
}

/**
 * Responder side ("Bob"): recomputes SK from the initiator's identity and ephemeral keys and our
 * signed / one-time prekey private keys. The caller looked the prekeys up by the ids in the message.
 * @param {object} params
 * @param {import('./keys.js').IdentityKeyPair} params.identityKeyPair our identity
 * @param {import('./keys.js').SignedPrekey} params.signedPrekey
 * @param {import('./keys.js').OneTimePrekey | null} params.oneTimePrekey
 * @param {Uint8Array} params.remoteIdentityKey IK_A (Ed25519)
 * @param {Uint8Array} params.ephemeralKey EK_A (X25519)
 * @returns {{sharedSecret: Uint8Array, associatedData: Uint8Array}}
 */
export function x3dhRespond({ identityKeyPair, signedPrekey, oneTimePrekey, remoteIdentityKey, ephemeralKey }) {
  const remoteIdentityDh = ed25519PublicKeyToX25519(remoteIdentityKey);
  const own = decodeIdentityKeyPair(identityKeyPair);
  const ownIdentityDh = ed25519SeedToX25519(own.seed);
  const signedPrekeyPrivate = fromBase64(signedPrekey.privateKey, { length: KEY_LENGTH, what: 'signed prekey' });

  const oneTimePrivate = oneTimePrekey
    ? fromBase64(oneTimePrekey.privateKey, { length: KEY_LENGTH, what: 'one-time prekey' })
    : null;

  const dhOutputs = [];
  try {
    dhOutputs.push(
      x25519SharedSecret(signedPrekeyPrivate, remoteIdentityDh),
      x25519SharedSecret(ownIdentityDh, ephemeralKey),
      x25519SharedSecret(signedPrekeyPrivate, ephemeralKey),
    );
    if (oneTimePrivate) dhOutputs.push(x25519SharedSecret(oneTimePrivate, ephemeralKey));
  } catch (error) {
    wipe(...dhOutputs);
    throw error;
  } finally {
    // Copies decoded from the caller's records; the records themselves are the caller's to delete.
    wipe(own.seed, ownIdentityDh, signedPrekeyPrivate, oneTimePrivate);
  }

  return {
    sharedSecret: deriveSharedSecret(dhOutputs),
    associatedData: concatBytes(remoteIdentityKey, own.publicKey),
  };
}
