/**
 * The only module that touches cryptographic primitives. Nothing here is hand-rolled:
 *  - Ed25519 / X25519 and the Ed25519 -> X25519 birational map come from the vendored @noble/curves
 *    (WebCrypto cannot convert an Ed25519 key to X25519 nor import a raw X25519 private key);
 *  - HKDF-SHA-256, HMAC-SHA-256 and AES-256-CBC come from WebCrypto (globalThis.crypto.subtle), which is
 *    native and constant-time, in Node >= 20 and in browsers;
 *  - SHA-512 for the safety number comes from the vendored @noble/hashes (synchronous, 10k small hashes).
 *
 * Every function validates lengths and turns library exceptions into ProtocolError.
 */
import { ed25519, x25519 } from '../../vendor/noble-curves/ed25519.js';
import { sha512 } from '../../vendor/noble-hashes/sha2.js';
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
 * Strict RFC 8032 verification (zip215: false): rejects non-canonical encodings and small-order public
 * keys, the same acceptance rule as OpenSSL/`cryptography` on the server. Never throws on bad input.
 * @param {Uint8Array} publicKey
 * @param {Uint8Array} message
 * @param {Uint8Array} signature
 * @returns {boolean}
 */
export function ed25519Verify(publicKey, message, signature) {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
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
// Symmetric primitives (WebCrypto)

/**
 * HKDF-SHA-256 (RFC 5869).
 * @param {Uint8Array} inputKeyMaterial
 * @param {Uint8Array} salt
 * @param {Uint8Array} info
 * @param {number} length output bytes
 * @returns {Promise<Uint8Array>}
 */
export async function hkdfSha256(inputKeyMaterial, salt, info, length) {
  const webcrypto = requireSubtle();
  const key = await webcrypto.importKey('raw', inputKeyMaterial, 'HKDF', false, ['deriveBits']);
  const bits = await webcrypto.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, length * 8);
  return new Uint8Array(bits);
}

async function importHmacKey(key, usages) {
  return requireSubtle().importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, usages);
}

/**
 * HMAC-SHA-256 of several messages under one key (one key import).
 * @param {Uint8Array} key
 * @param {Uint8Array[]} messages
 * @returns {Promise<Uint8Array[]>} one 32-byte tag per message
 */
export async function hmacSha256Many(key, messages) {
  const cryptoKey = await importHmacKey(key, ['sign']);
  const webcrypto = requireSubtle();
  const tags = await Promise.all(messages.map((message) => webcrypto.sign('HMAC', cryptoKey, message)));
  return tags.map((tag) => new Uint8Array(tag));
}

/** @param {Uint8Array} key @param {Uint8Array} message @returns {Promise<Uint8Array>} */
export async function hmacSha256(key, message) {
  const [tag] = await hmacSha256Many(key, [message]);
  return tag;
}

/**
 * Verifies an HMAC-SHA-256 tag; WebCrypto's verify compares in constant time.
 * @param {Uint8Array} key
 * @param {Uint8Array} message
 * @param {Uint8Array} tag
 * @returns {Promise<boolean>}
 */
export async function hmacSha256Verify(key, message, tag) {
  if (tag.length !== MAC_LENGTH) return false;
  const cryptoKey = await importHmacKey(key, ['verify']);
  return requireSubtle().verify('HMAC', cryptoKey, tag, message);
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
