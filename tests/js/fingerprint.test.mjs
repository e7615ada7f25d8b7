import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  ErrorCode,
  formatSafetyNumber,
  fromBase64,
  generateIdentityKeyPair,
  identityKeyDigits,
  safetyNumber,
} from '../../static/js/crypto/index.js';
import { throwsWithCode } from './assertions.mjs';

test('the safety number is the same whoever computes it, 60 digits shown in 12 groups of 5', () => {
  const alice = generateIdentityKeyPair().publicKey;
  const bob = generateIdentityKeyPair().publicKey;
  const number = safetyNumber(alice, bob);
  assert.equal(number, safetyNumber(bob, alice));
  assert.match(number, /^\d{60}$/);
  const shown = formatSafetyNumber(number);
  assert.match(shown, /^(\d{5} ){11}\d{5}$/);
});

test('a different identity key gives a different safety number', () => {
  const alice = generateIdentityKeyPair().publicKey;
  const bob = generateIdentityKeyPair().publicKey;
  const mallory = generateIdentityKeyPair().publicKey;
  assert.notEqual(safetyNumber(alice, bob), safetyNumber(alice, mallory));
});

test('digits per key follow the documented construction (checked against node:crypto SHA-512)', () => {
  const identityKey = generateIdentityKeyPair().publicKey;
  const key = Buffer.from(fromBase64(identityKey));
  let hash = Buffer.concat([Buffer.from([0, 0]), key]);
  for (let i = 0; i < 5200; i += 1) hash = createHash('sha512').update(hash).update(key).digest();
  let expected = '';
  for (let offset = 0; offset < 30; offset += 5) expected += String(hash.readUIntBE(offset, 5) % 100000).padStart(5, '0');
  assert.equal(identityKeyDigits(identityKey), expected);
});

test('invalid identity keys are refused', () => {
  throwsWithCode(() => safetyNumber('short', generateIdentityKeyPair().publicKey), ErrorCode.INVALID_ARGUMENT);
});
