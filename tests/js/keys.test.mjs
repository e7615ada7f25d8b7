import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ErrorCode,
  MAX_KEY_ID,
  fromBase64,
  generateIdentityKeyPair,
  generateOneTimePrekeys,
  generateSignedPrekey,
  identityKeyPairFromSeed,
  registrationKeys,
  verifySignedPrekey,
} from '../../static/js/crypto/index.js';
import { throwsWithCode } from './assertions.mjs';
import { seededRandom } from './helpers.mjs';

test('identity key pair: 32-byte Ed25519 public key and seed, base64', () => {
  const identity = generateIdentityKeyPair();
  assert.equal(fromBase64(identity.publicKey).length, 32);
  assert.equal(fromBase64(identity.privateKey).length, 32);
  assert.notEqual(generateIdentityKeyPair().publicKey, identity.publicKey);
});

test('key generation is reproducible with injected randomness', () => {
  const a = generateIdentityKeyPair({ random: seededRandom('same') });
  const b = generateIdentityKeyPair({ random: seededRandom('same') });
  assert.deepEqual(a, b);
});

test('the identity key pair of a received seed is the one generated from it, and the seed is kept intact', () => {
  const identity = generateIdentityKeyPair({ random: seededRandom('seed') });
  const seed = fromBase64(identity.privateKey);
  assert.deepEqual(identityKeyPairFromSeed(seed), identity);
  assert.deepEqual(seed, fromBase64(identity.privateKey));
  const signedPrekey = generateSignedPrekey(identityKeyPairFromSeed(seed), 1);
  assert.ok(verifySignedPrekey(identity.publicKey, signedPrekey));
  for (const bad of [new Uint8Array(31), new Uint8Array(33), identity.privateKey, null]) {
    throwsWithCode(() => identityKeyPairFromSeed(bad), ErrorCode.INVALID_ARGUMENT);
  }
});

test('signed prekey is signed over its raw public key and verifies; a changed key does not', () => {
  const identity = generateIdentityKeyPair();
  const signedPrekey = generateSignedPrekey(identity, 1);
  assert.equal(signedPrekey.keyId, 1);
  assert.equal(fromBase64(signedPrekey.signature).length, 64);
  assert.ok(verifySignedPrekey(identity.publicKey, signedPrekey));

  const other = generateSignedPrekey(identity, 2);
  assert.equal(verifySignedPrekey(identity.publicKey, { ...signedPrekey, publicKey: other.publicKey }), false);
  assert.equal(verifySignedPrekey(generateIdentityKeyPair().publicKey, signedPrekey), false);
  assert.equal(verifySignedPrekey(identity.publicKey, { ...signedPrekey, signature: 'not base64' }), false);
});

test('one-time prekey ids continue from the persisted next id and never repeat across refills', () => {
  const first = generateOneTimePrekeys(1, 100);
  assert.deepEqual(
    first.prekeys.map((prekey) => prekey.keyId),
    Array.from({ length: 100 }, (_, i) => i + 1),
  );
  assert.equal(first.nextKeyId, 101);
  const refill = generateOneTimePrekeys(first.nextKeyId, 50);
  const ids = new Set([...first.prekeys, ...refill.prekeys].map((prekey) => prekey.keyId));
  assert.equal(ids.size, 150, 'a refill never re-uses an id');
  assert.equal(refill.nextKeyId, 151);
  const publicKeys = new Set([...first.prekeys, ...refill.prekeys].map((prekey) => prekey.publicKey));
  assert.equal(publicKeys.size, 150);
});

test('one-time prekey batches are bounded and ids cannot overflow', () => {
  throwsWithCode(() => generateOneTimePrekeys(1, 0), ErrorCode.INVALID_ARGUMENT);
  throwsWithCode(() => generateOneTimePrekeys(1, 101), ErrorCode.INVALID_ARGUMENT);
  throwsWithCode(() => generateOneTimePrekeys(0, 1), ErrorCode.INVALID_ARGUMENT);
  throwsWithCode(() => generateOneTimePrekeys(1.5, 1), ErrorCode.INVALID_ARGUMENT);
  throwsWithCode(() => generateOneTimePrekeys(MAX_KEY_ID, 2), ErrorCode.KEY_ID_EXHAUSTED);
  assert.equal(generateOneTimePrekeys(MAX_KEY_ID, 1).nextKeyId, MAX_KEY_ID + 1);
  throwsWithCode(() => generateSignedPrekey(generateIdentityKeyPair(), 0), ErrorCode.INVALID_ARGUMENT);
});

test('registration keys carry public keys only', () => {
  const identityKeyPair = generateIdentityKeyPair();
  const signedPrekey = generateSignedPrekey(identityKeyPair, 1);
  const { prekeys } = generateOneTimePrekeys(1, 3);
  const payload = registrationKeys({ identityKeyPair, signedPrekey, oneTimePrekeys: prekeys });
  assert.deepEqual(Object.keys(payload).sort(), ['identity_key', 'one_time_prekeys', 'signed_prekey']);
  assert.deepEqual(Object.keys(payload.signed_prekey).sort(), ['key_id', 'public_key', 'signature']);
  assert.deepEqual(Object.keys(payload.one_time_prekeys[0]).sort(), ['key_id', 'public_key']);
  const text = JSON.stringify(payload);
  for (const secret of [identityKeyPair.privateKey, signedPrekey.privateKey, ...prekeys.map((p) => p.privateKey)]) {
    assert.ok(!text.includes(secret), 'no private key in the registration payload');
  }
});
