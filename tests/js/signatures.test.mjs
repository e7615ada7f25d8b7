/**
 * Signed-prekey signatures are verified strictly (docs/PROTOCOL.md section 2): the cofactorless
 * equation SB = R + kA, canonical encodings, S < L, A and R of prime order. The server
 * (OpenSSL through `cryptography`) and the Python client (libxeddsa) accept exactly that; a
 * cofactored verifier would also take the `torsion_r` and `small_order_r` signatures, and a client
 * that did would start sessions the other implementations refuse.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { toBase64, verifySignedPrekey } from '../../static/js/crypto/index.js';
import { ed25519Verify } from '../../static/js/crypto/primitives.js';
import { cofactoredVerify, signatureVectors } from './signatures.mjs';

const VECTORS = JSON.parse(readFileSync(new URL('./signature_vectors.json', import.meta.url), 'utf8'));
const hex = (text) => Uint8Array.from(Buffer.from(text, 'hex'));
const publicKey = hex(VECTORS.public_key);
const message = hex(VECTORS.message);

test('the committed signature vectors are what the helper builds', () => {
  assert.deepEqual(signatureVectors(), VECTORS);
});

test('a genuine signature verifies', () => {
  assert.equal(ed25519Verify(publicKey, message, hex(VECTORS.valid)), true);
  assert.equal(
    verifySignedPrekey(toBase64(publicKey), { publicKey: toBase64(message), signature: toBase64(hex(VECTORS.valid)) }),
    true,
  );
});

for (const name of ['torsion_r', 'small_order_r']) {
  test(`a signature valid only under cofactored verification is refused (${name})`, () => {
    const signature = hex(VECTORS[name]);
    assert.equal(cofactoredVerify(publicKey, message, signature), true, 'the vector is cofactored-valid');
    assert.equal(ed25519Verify(publicKey, message, signature), false);
    assert.equal(
      verifySignedPrekey(toBase64(publicKey), { publicKey: toBase64(message), signature: toBase64(signature) }),
      false,
    );
  });
}

test('a signature whose R is the identity point is refused, though its equation holds', () => {
  const signature = hex(VECTORS.identity_r);
  assert.equal(cofactoredVerify(publicKey, message, signature), true);
  assert.equal(ed25519Verify(publicKey, message, signature), false);
});

test('a signature whose S is not reduced modulo L is refused', () => {
  assert.equal(ed25519Verify(publicKey, message, hex(VECTORS.s_not_reduced)), false);
});

test('a small-order public key is refused even with a signature that fits it', () => {
  // A = identity, R = identity, S = 0: SB = R + kA holds for every message.
  const identity = hex('0100000000000000000000000000000000000000000000000000000000000000');
  const signature = new Uint8Array(64);
  signature.set(identity, 0);
  assert.equal(ed25519Verify(identity, message, signature), false);
});
