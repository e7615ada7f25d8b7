/**
 * Safety numbers: what two people read to each other (or compare side by side) to detect a server that
 * substituted keys. Same construction as Signal's numeric fingerprint, with an empty
 * stable identifier:
 *
 *   h_0     = 0x00 0x00 (version, u16 BE) || IK          (IK: raw 32-byte Ed25519 identity key)
 *   h_(i+1) = SHA-512(h_i || IK)       for i = 0 .. 5199
 *   digits  = for each of the six 5-byte chunks c of h_5200[0:30]:
 *             (c read as a 40-bit big-endian integer) mod 100000, written with 5 digits
 *
 * Each identity key gives 30 digits; the safety number is the two 30-digit strings in ascending order,
 * concatenated (60 digits), so both people compute the same number whoever computes it. The iterations
 * make a brute-force search for a colliding key ~5200 times more expensive per guess.
 */
import { KEY_LENGTH, SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_VERSION } from './constants.js';
import { concatBytes, fromBase64 } from './bytes.js';
import { sha512Digest } from './primitives.js';

/**
 * The 30 digits contributed by one identity key.
 * @param {string} identityKey Ed25519 public key (base64)
 * @returns {string}
 */
export function identityKeyDigits(identityKey) {
  const key = fromBase64(identityKey, { length: KEY_LENGTH, what: 'identity key' });
  let hash = concatBytes(Uint8Array.of(SAFETY_NUMBER_VERSION >> 8, SAFETY_NUMBER_VERSION & 0xff), key);
  for (let i = 0; i < SAFETY_NUMBER_ITERATIONS; i += 1) hash = sha512Digest(concatBytes(hash, key));
  let digits = '';
  for (let offset = 0; offset < 30; offset += 5) {
    let chunk = 0;
    for (let i = 0; i < 5; i += 1) chunk = chunk * 256 + hash[offset + i]; // < 2^40, exact in a double
    digits += String(chunk % 100000).padStart(5, '0');
  }
  return digits;
}

/**
 * The 60-digit safety number of a conversation between two identity keys; symmetric in its arguments.
 * @param {string} identityKeyA base64 Ed25519 public key
 * @param {string} identityKeyB base64 Ed25519 public key
 * @returns {string} 60 digits
 */
export function safetyNumber(identityKeyA, identityKeyB) {
  const parts = [identityKeyDigits(identityKeyA), identityKeyDigits(identityKeyB)].sort();
  return parts.join('');
}

/**
 * Formats a safety number for display: twelve groups of five digits separated by spaces.
 * @param {string} digits
 * @returns {string}
 */
export function formatSafetyNumber(digits) {
  return digits.match(/.{1,5}/g).join(' ');
}
