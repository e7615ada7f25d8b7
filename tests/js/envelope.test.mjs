import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, MAX_BODY_LENGTH, fromBase64, parseEnvelope, toBase64 } from '../../static/js/crypto/index.js';
import { encodeEnvelope } from '../../static/js/crypto/envelope.js';
import { throwsWithCode } from './assertions.mjs';

const key = (byte) => toBase64(new Uint8Array(32).fill(byte));
const sealed = (blocks = 1) => new Uint8Array(16 * blocks + 32).fill(7);

const message = { ratchetKey: key(1), messageNumber: 5, previousChainLength: 3, ciphertext: sealed(2) };
const prekeyHeader = { identityKey: key(2), ephemeralKey: key(3), signedPrekeyId: 9, oneTimePrekeyId: 258 };

test('"message" envelope layout: version, type, ratchet key, n, pn, ciphertext||tag', () => {
  const { kind, body } = encodeEnvelope({ kind: 'message', prekey: null, message });
  assert.equal(kind, 'message');
  const bytes = fromBase64(body);
  assert.deepEqual([...bytes.subarray(0, 2)], [1, 2]);
  assert.deepEqual(bytes.subarray(2, 34), fromBase64(message.ratchetKey));
  assert.deepEqual([...bytes.subarray(34, 42)], [0, 0, 0, 5, 0, 0, 0, 3]);
  assert.equal(bytes.length, 2 + 32 + 8 + 64);
  assert.deepEqual(parseEnvelope(kind, body), { kind, prekey: null, message });
});

test('"prekey" envelope layout: X3DH header with ids, then the ratchet message', () => {
  const { kind, body } = encodeEnvelope({ kind: 'prekey', prekey: prekeyHeader, message });
  const bytes = fromBase64(body);
  assert.deepEqual([...bytes.subarray(0, 2)], [1, 1]);
  assert.deepEqual(bytes.subarray(2, 34), fromBase64(prekeyHeader.identityKey));
  assert.deepEqual(bytes.subarray(34, 66), fromBase64(prekeyHeader.ephemeralKey));
  assert.deepEqual([...bytes.subarray(66, 75)], [0, 0, 0, 9, 1, 0, 0, 1, 2]);
  assert.deepEqual(parseEnvelope(kind, body), { kind, prekey: prekeyHeader, message });

  const withoutOpk = encodeEnvelope({ kind: 'prekey', prekey: { ...prekeyHeader, oneTimePrekeyId: null }, message });
  const short = fromBase64(withoutOpk.body);
  assert.equal(short[70], 0);
  assert.equal(short.length, bytes.length - 4);
  assert.equal(parseEnvelope('prekey', withoutOpk.body).prekey.oneTimePrekeyId, null);
});

test('malformed bodies are rejected with a typed error, never a raw exception', () => {
  const good = encodeEnvelope({ kind: 'prekey', prekey: prekeyHeader, message }).body;
  const bytes = fromBase64(good);
  const variant = (mutate) => {
    const copy = Uint8Array.from(bytes);
    mutate(copy);
    return toBase64(copy);
  };
  const cases = [
    ['prekey', 'not base64!', ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', `${good}\n`, ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', good.replace(/=+$/, ''), ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', '', ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', 'AQ==', ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', 42, ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', 'A'.repeat(MAX_BODY_LENGTH + 4), ErrorCode.BODY_TOO_LARGE],
    ['prekey', variant((b) => (b[0] = 2)), ErrorCode.UNSUPPORTED_VERSION],
    ['message', good, ErrorCode.KIND_MISMATCH],
    ['ciphertext', good, ErrorCode.KIND_MISMATCH],
    ['prekey', variant((b) => (b[70] = 3)), ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', variant((b) => b.fill(0, 66, 70)), ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', variant((b) => b.fill(0xff, 66, 70)), ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', variant((b) => b.fill(0, 71, 75)), ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', toBase64(bytes.subarray(0, 60)), ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', toBase64(bytes.subarray(0, bytes.length - 1)), ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', toBase64(bytes.subarray(0, bytes.length - 48)), ErrorCode.MALFORMED_ENVELOPE],
    ['prekey', toBase64(bytes.subarray(0, bytes.length - 64)), ErrorCode.MALFORMED_ENVELOPE],
  ];
  for (const [kind, body, code] of cases) throwsWithCode(() => parseEnvelope(kind, body), code);
});

test('base64 with non-zero padding bits (a second spelling of the same bytes) is rejected', () => {
  const good = encodeEnvelope({ kind: 'message', prekey: null, message }).body;
  // 106 bytes -> the last quantum encodes 1 byte ("xx=="); flipping a low bit of its 2nd character
  // keeps the decoded bytes identical.
  const chars = [...good];
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const index = good.length - 3;
  chars[index] = alphabet[alphabet.indexOf(chars[index]) ^ 1];
  throwsWithCode(() => parseEnvelope('message', chars.join('')), ErrorCode.MALFORMED_ENVELOPE);
});

test('encoding refuses values the format cannot carry', () => {
  throwsWithCode(
    () => encodeEnvelope({ kind: 'message', prekey: null, message: { ...message, messageNumber: 2 ** 32 } }),
    ErrorCode.INVALID_ARGUMENT,
  );
  throwsWithCode(
    () => encodeEnvelope({ kind: 'prekey', prekey: { ...prekeyHeader, signedPrekeyId: 0 }, message }),
    ErrorCode.INVALID_ARGUMENT,
  );
  throwsWithCode(
    () => encodeEnvelope({ kind: 'message', prekey: null, message: { ...message, ciphertext: new Uint8Array(40) } }),
    ErrorCode.INVALID_ARGUMENT,
  );
  throwsWithCode(() => encodeEnvelope({ kind: 'other', prekey: null, message }), ErrorCode.KIND_MISMATCH);
});
