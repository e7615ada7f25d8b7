/**
 * Byte helpers: strict base64, text, integers, concatenation, constant-time comparison, randomness.
 *
 * Base64 here is always the standard alphabet with padding (RFC 4648 section 4), the encoding the server
 * uses for keys. Decoding is strict and canonical (no whitespace, no missing padding, no non-zero
 * trailing bits), so that one byte string has exactly one text form: a key or body can be compared or
 * used as a map key in its base64 form without two spellings of the same bytes slipping past a check.
 */
import { ErrorCode, ProtocolError } from './errors.js';

const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * @param {Uint8Array} bytes
 * @returns {string} standard, padded base64
 */
export function toBase64(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'expected a Uint8Array');
  let binary = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

/**
 * Strict, canonical base64 decoding.
 * @param {string} text
 * @param {object} [options]
 * @param {number} [options.length] required decoded length in bytes
 * @param {string} [options.code] ProtocolError code on failure (default INVALID_ARGUMENT)
 * @param {string} [options.what] name of the value, for the error message
 * @returns {Uint8Array}
 */
export function fromBase64(text, { length, code = ErrorCode.INVALID_ARGUMENT, what = 'value' } = {}) {
  if (typeof text !== 'string' || !BASE64_PATTERN.test(text)) {
    throw new ProtocolError(code, `${what} is not canonical base64`);
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  // Rejects encodings whose unused trailing bits are not zero ("AB==" vs "AA=="): one text per value.
  if (toBase64(bytes) !== text) throw new ProtocolError(code, `${what} is not canonical base64`);
  if (length !== undefined && bytes.length !== length) {
    throw new ProtocolError(code, `${what} must be ${length} bytes`);
  }
  return bytes;
}

/** @param {string} text @returns {Uint8Array} UTF-8 bytes */
export function textToBytes(text) {
  if (typeof text !== 'string') throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'expected a string');
  return textEncoder.encode(text);
}

/**
 * @param {Uint8Array} bytes
 * @returns {string} the UTF-8 text; throws ProtocolError(INVALID_ARGUMENT) on invalid UTF-8
 */
export function bytesToText(bytes) {
  try {
    return textDecoder.decode(bytes);
  } catch {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'bytes are not valid UTF-8');
  }
}

/** @param {...Uint8Array} parts @returns {Uint8Array} */
export function concatBytes(...parts) {
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Compares two byte strings in time that depends only on their lengths, never on where they differ.
 * Lengths are public everywhere this is used (keys, tags).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {boolean}
 */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** @param {number} value integer in [0, 2^32) @returns {Uint8Array} 4 bytes big-endian */
export function u32be(value) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, false);
  return out;
}

/** @param {number} value safe integer >= 0 @returns {Uint8Array} 8 bytes big-endian */
export function u64be(value) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value), false);
  return out;
}

/** @param {Uint8Array} bytes @param {number} offset @returns {number} */
export function readU32be(bytes, offset) {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, false);
}

/** Overwrites a buffer that held secret material, so it does not linger in memory longer than needed. */
export function wipe(...buffers) {
  for (const buffer of buffers) if (buffer instanceof Uint8Array) buffer.fill(0);
}

/**
 * Source of randomness: `(length) => Uint8Array` of exactly `length` bytes.
 * The default is the platform CSPRNG; tests inject a deterministic one for known-answer vectors.
 * @typedef {(length: number) => Uint8Array} RandomSource
 */

/** @type {RandomSource} */
export function secureRandom(length) {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

/**
 * Draws `length` bytes from `random` and checks the source kept its contract.
 * @param {RandomSource | undefined} random
 * @param {number} length
 * @returns {Uint8Array}
 */
export function drawRandom(random, length) {
  const bytes = (random ?? secureRandom)(length);
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, `random source must return ${length} bytes`);
  }
  // Copy, so that a caller-owned buffer is never wiped or aliased by protocol code.
  return Uint8Array.from(bytes);
}
