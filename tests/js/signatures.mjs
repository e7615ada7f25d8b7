/**
 * Ed25519 signatures that only a lax verifier accepts, built with the vendored library's point
 * arithmetic (test code: the app never builds such a thing). Each is made with a known key over a
 * known message, so it is exactly "valid except for one rule":
 *
 * - `torsion_r`: R = rB + T with T of order 8, S = r + H(R || A || M) a. The cofactored equation
 *   [8]SB = [8]R + [8]kA holds (the T vanishes), the cofactorless SB = R + kA does not (off by T).
 * - `small_order_r`: R = T itself, S = H(R || A || M) a: again valid only cofactored.
 * - `identity_r`: R = the identity point (r = 0), S = H(R || A || M) a. The cofactorless equation
 *   holds; only the key's owner can make it. libsodium (Python client) and this client refuse a
 *   small-order R, OpenSSL (the server) accepts it.
 * - `s_not_reduced`: a genuine signature with S + L in place of S (S must be < L; the library
 *   refuses it in every mode, the vector pins that down for both clients).
 *
 * `signatureVectors()` is deterministic; tests/js/signature_vectors.json holds its output so the
 * Python side checks the same bytes (tests/interop/test_signatures.py).
 */
import { ED25519_TORSION_SUBGROUP, ed25519 } from '../../static/vendor/noble-curves/ed25519.js';
import { sha512 } from '../../static/vendor/noble-hashes/sha2.js';
import { bytesToHex, bytesToNumberLE, concatBytes, hexToBytes, numberToBytesLE } from '../../static/vendor/noble-curves/utils.js';

const { Point } = ed25519;
const { Fn } = Point;
const L = Fn.ORDER;

const hashToScalar = (...parts) => Fn.create(bytesToNumberLE(sha512(concatBytes(...parts))));

/** Signs `message` with nonce point R = rB + `torsion` (cofactored-only when torsion is not zero). */
function signWithR(seed, message, r, torsion) {
  const { scalar, pointBytes } = ed25519.utils.getExtendedPublicKey(seed);
  const R = (r === 0n ? Point.ZERO : Point.BASE.multiply(r)).add(torsion).toBytes();
  const k = hashToScalar(R, pointBytes, message);
  return concatBytes(R, Fn.toBytes(Fn.create(r + k * scalar)));
}

export function signatureVectors() {
  const seed = sha512(new TextEncoder().encode('signature vectors: identity seed')).subarray(0, 32);
  const publicKey = ed25519.getPublicKey(seed);
  // The message is what the protocol signs: a raw 32-byte X25519 signed prekey public key.
  const message = sha512(new TextEncoder().encode('signature vectors: signed prekey')).subarray(0, 32);
  const r = hashToScalar(new TextEncoder().encode('signature vectors: nonce'));
  const order8 = Point.fromBytes(hexToBytes(ED25519_TORSION_SUBGROUP[1]));
  const valid = ed25519.sign(message, seed);
  const notReduced = concatBytes(valid.subarray(0, 32), numberToBytesLE(bytesToNumberLE(valid.subarray(32)) + L, 32));
  const hex = (bytes) => bytesToHex(bytes);
  return {
    public_key: hex(publicKey),
    message: hex(message),
    valid: hex(valid),
    torsion_r: hex(signWithR(seed, message, r, order8)),
    small_order_r: hex(signWithR(seed, message, 0n, order8)),
    identity_r: hex(signWithR(seed, message, 0n, Point.ZERO)),
    s_not_reduced: hex(notReduced),
  };
}

/** Whether the library's own cofactored verification accepts `signature`: shows that a vector is
 *  "valid except for one rule". */
export function cofactoredVerify(publicKey, message, signature) {
  return ed25519.verify(signature, message, publicKey, { zip215: true });
}
