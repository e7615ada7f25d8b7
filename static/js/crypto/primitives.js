/**
 * The only module that touches cryptographic primitives. Nothing here is hand-rolled:
 *  - Ed25519 / X25519 and the Ed25519 -> X25519 birational map come from the vendored @noble/curves
 *    (WebCrypto cannot convert an Ed25519 key to X25519 nor import a raw X25519 private key);
 *  - HKDF-SHA-256, HMAC-SHA-256 and SHA-512 come from the vendored @noble/hashes: synchronous, so a chain
 *    step costs microseconds instead of a WebCrypto round trip (~100-250 us each in Node), which matters
 *    when up to MAX_SKIP message keys are derived for one message; results are identical to WebCrypto;
 *  - AES-256-CBC comes from WebCrypto (globalThis.crypto.subtle): native, constant-time AES, in Node >= 20
 *    and in browsers. Tags are compared with the constant-time equalBytes.
 *
 * Every function validates lengths and turns library exceptions into ProtocolError.
 */
import { ed25519, x25519 } from '../../vendor/noble-curves/ed25519.js';
import { hkdf } from '../../vendor/noble-hashes/hkdf.js';
import { hmac } from '../../vendor/noble-hashes/hmac.js';
import { sha256, sha512 } from '../../vendor/noble-hashes/sha2.js';
import { equalBytes } from './bytes.js';
import { AES_BLOCK_LENGTH, KEY_LENGTH, MAC_LENGTH, SIGNATURE_LENGTH } from './constants.js';
import { ErrorCode, ProtocolError, withErrorCode } from './errors.js';

const subtle = globalThis.crypto?.subtle;

function requireLength(bytes, length, what) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, `${what} must be ${length} bytes`);
  }
}

function requireSubtle() {
  if (!subtle) throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'WebCrypto (crypto.subtle) is not available');
  return subtle;
}

// ---------------------------------------------------------------------------------------------------
// Ed25519 (identity keys)

/** @param {Uint8Array} seed 32-byte Ed25519 secret seed @returns {Uint8Array} 32-byte public key */
export function ed25519PublicKey(seed) {
  requireLength(seed, KEY_LENGTH, 'Ed25519 seed');
  return ed25519.getPublicKey(seed);
}

/**
 * Deterministic RFC 8032 Ed25519 signature.
 * @param {Uint8Array} seed
 * @param {Uint8Array} message
 * @returns {Uint8Array} 64 bytes
 */
export function ed25519Sign(seed, message) {
  requireLength(seed, KEY_LENGTH, 'Ed25519 seed');
  return ed25519.sign(message, seed);
}

/**
 * Strict Ed25519 verification, the acceptance rule of OpenSSL (`cryptography` on the server) and of
 * libsodium/libxeddsa (the Python client): canonical encodings of A and R, S < L, A not of small
 * order, and the cofactorless equation SB = R + kA. Never throws on bad input.
 *
 * The library's `verify` with `zip215: false` checks the encodings, S < L and a small-order A, but
 * then the *cofactored* equation [8](SB - R - kA) = 0: a signature whose R carries a small-order
 * component T (R = rB + T) passes it, and the other implementations refuse it. So, in addition,
 * A and R must be torsion-free (of prime order) and R not the identity, using the library's point
 * checks. With A and R in the prime-order subgroup, SB - R - kA is in it too, and multiplying by 8
 * is one-to-one there: the cofactored equation then holds exactly when the cofactorless one does.
 * A small-order R (the identity included) is refused, as libsodium does; an A with a torsion
 * component is refused, as for Diffie-Hellman (ed25519PublicKeyToX25519) and by the server.
 * @param {Uint8Array} publicKey
 * @param {Uint8Array} message
 * @param {Uint8Array} signature
 * @returns {boolean}
 */
export function ed25519Verify(publicKey, message, signature) {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false;
  try {
    if (!ed25519.verify(signature, message, publicKey, { zip215: false })) return false;
    const A = ed25519.Point.fromBytes(publicKey, false);
    const R = ed25519.Point.fromBytes(signature.subarray(0, KEY_LENGTH), false);
    return A.isTorsionFree() && R.isTorsionFree() && !R.isSmallOrder();
  } catch {
    return false;
  }
}

/**
 * Maps an Ed25519 public key to its X25519 (Montgomery u) form for Diffie-Hellman.
 * Rejects keys that do not decode, are of small order, or have a torsion component: such a key would
 * let the peer force predictable DH outputs (same checks as libsodium's
 * crypto_sign_ed25519_pk_to_curve25519, which the Python side uses).
 * @param {Uint8Array} publicKey
 * @returns {Uint8Array}
 */
export function ed25519PublicKeyToX25519(publicKey) {
  requireLength(publicKey, KEY_LENGTH, 'Ed25519 public key');
  return withErrorCode(ErrorCode.INVALID_KEY, 'identity key is not a valid Ed25519 public key', () => {
    const point = ed25519.Point.fromBytes(publicKey, false);
    if (point.isSmallOrder() || !point.isTorsionFree()) throw new Error('weak point');
    return ed25519.utils.toMontgomery(publicKey);
  });
}

/**
 * The X25519 private scalar of an Ed25519 seed: clamped first half of SHA-512(seed), as in RFC 8032 and
 * libsodium's crypto_sign_ed25519_sk_to_curve25519. Its public key is ed25519PublicKeyToX25519(pub).
 * @param {Uint8Array} seed
 * @returns {Uint8Array}
 */
export function ed25519SeedToX25519(seed) {
  requireLength(seed, KEY_LENGTH, 'Ed25519 seed');
  return ed25519.utils.toMontgomerySecret(seed);
}

// ---------------------------------------------------------------------------------------------------
// X25519 (prekeys, ephemeral and ratchet keys)

/** @param {Uint8Array} privateKey 32 random bytes (clamped by X25519 itself) @returns {Uint8Array} */
export function x25519PublicKey(privateKey) {
  requireLength(privateKey, KEY_LENGTH, 'X25519 private key');
  return x25519.getPublicKey(privateKey);
}

/**
 * X25519 Diffie-Hellman. Low-order peer keys (which would give an all-zero or attacker-predictable
 * shared secret) are rejected before the ladder runs, with ProtocolError(INVALID_KEY).
 * @param {Uint8Array} privateKey
 * @param {Uint8Array} publicKey
 * @returns {Uint8Array} 32-byte shared secret
 */
export function x25519SharedSecret(privateKey, publicKey) {
  requireLength(privateKey, KEY_LENGTH, 'X25519 private key');
  requireLength(publicKey, KEY_LENGTH, 'X25519 public key');
  return withErrorCode(ErrorCode.INVALID_KEY, 'X25519 public key is invalid or of low order', () =>
    x25519.getSharedSecret(privateKey, publicKey),
  );
}

// ---------------------------------------------------------------------------------------------------
// Symmetric primitives

/**
 * HKDF-SHA-256 (RFC 5869).
 * @param {Uint8Array} inputKeyMaterial
 * @param {Uint8Array} salt
 * @param {Uint8Array} info
 * @param {number} length output bytes
 * @returns {Uint8Array}
 */
export function hkdfSha256(inputKeyMaterial, salt, info, length) {
  return hkdf(sha256, inputKeyMaterial, salt, info, length);
}

/** @param {Uint8Array} key @param {Uint8Array} message @returns {Uint8Array} 32-byte HMAC-SHA-256 tag */
export function hmacSha256(key, message) {
  return hmac(sha256, key, message);
}

/**
 * Verifies an HMAC-SHA-256 tag, comparing in constant time.
 * @param {Uint8Array} key
 * @param {Uint8Array} message
 * @param {Uint8Array} tag
 * @returns {boolean}
 */
export function hmacSha256Verify(key, message, tag) {
  if (tag.length !== MAC_LENGTH) return false;
  return equalBytes(hmacSha256(key, message), tag);
}

async function importAesKey(key, usages) {
  requireLength(key, 32, 'AES-256 key');
  return requireSubtle().importKey('raw', key, { name: 'AES-CBC' }, false, usages);
}

/**
 * AES-256-CBC with PKCS#7 padding (WebCrypto pads).
 * @param {Uint8Array} key 32 bytes
 * @param {Uint8Array} iv 16 bytes
 * @param {Uint8Array} plaintext
 * @returns {Promise<Uint8Array>}
 */
export async function aes256CbcEncrypt(key, iv, plaintext) {
  requireLength(iv, AES_BLOCK_LENGTH, 'AES-CBC IV');
  const cryptoKey = await importAesKey(key, ['encrypt']);
  return new Uint8Array(await requireSubtle().encrypt({ name: 'AES-CBC', iv }, cryptoKey, plaintext));
}

/**
 * AES-256-CBC decryption and PKCS#7 unpadding. Callers authenticate the ciphertext first, so a padding
 * failure here can never serve as a padding oracle.
 * @param {Uint8Array} key
 * @param {Uint8Array} iv
 * @param {Uint8Array} ciphertext
 * @returns {Promise<Uint8Array>}
 */
export async function aes256CbcDecrypt(key, iv, ciphertext) {
  requireLength(iv, AES_BLOCK_LENGTH, 'AES-CBC IV');
  const cryptoKey = await importAesKey(key, ['decrypt']);
  try {
    return new Uint8Array(await requireSubtle().decrypt({ name: 'AES-CBC', iv }, cryptoKey, ciphertext));
  } catch {
    throw new ProtocolError(ErrorCode.DECRYPTION_FAILED, 'ciphertext did not decrypt');
  }
}

/** @param {Uint8Array} data @returns {Uint8Array} 64-byte SHA-512 digest */
export function sha512Digest(data) {
  return sha512(data);
}
