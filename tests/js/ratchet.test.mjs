/**
 * Double Ratchet behaviour through the public session API: round trips, DH steps, out-of-order delivery,
 * skip bounds, tampering, replay, serialisation, and "commit only on success".
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ErrorCode,
  MAX_SKIP,
  MAX_STORED_SKIPPED_KEYS,
  bytesToText,
  decryptMessage,
  encryptMessage,
  fromBase64,
  parseEnvelope,
  textToBytes,
  toBase64,
} from '../../static/js/crypto/index.js';
import { deepFreeze, rejectsWithCode, rejectsWithProtocolError } from './assertions.mjs';
import { establishedPair, receive, send } from './helpers.mjs';

/** A pair that has exchanged one message each way, so both have sending and receiving chains. */
async function talkingPair() {
  const pair = await establishedPair();
  let [bobSession, reply] = await send(pair.bobSession, 'hello alice');
  let [aliceSession, text] = await receive(pair.aliceSession, reply);
  assert.equal(bytesToText(text), 'hello alice');
  return { ...pair, aliceSession, bobSession };
}

/** Sends `count` messages from `session`; returns [session, envelopes]. */
async function sendMany(session, count, prefix = 'm') {
  const envelopes = [];
  let current = session;
  for (let i = 0; i < count; i += 1) {
    const [next, envelope] = await send(current, `${prefix}${i}`);
    current = next;
    envelopes.push(envelope);
  }
  return [current, envelopes];
}

test('messages round-trip both ways, and the first reply switches the initiator to "message" envelopes', async () => {
  const { aliceSession, bobSession } = await talkingPair();
  const out = await encryptMessage(aliceSession, textToBytes('now without X3DH header'));
  assert.equal(out.kind, 'message');
  assert.equal(out.session.pendingPrekey, null);
  const { plaintext } = await decryptMessage(bobSession, parseEnvelope(out.kind, out.body));
  assert.equal(bytesToText(plaintext), 'now without X3DH header');
});

test('the initiator repeats its X3DH header until the first reply', async () => {
  const { aliceSession } = await establishedPair();
  const [, envelopes] = await sendMany(aliceSession, 3);
  assert.deepEqual(
    envelopes.map((envelope) => envelope.kind),
    ['prekey', 'prekey', 'prekey'],
  );
});

test('many DH ratchet steps in both directions, with bursts, keep decrypting', async () => {
  let { aliceSession, bobSession } = await talkingPair();
  const ratchetKeys = new Set();
  for (let round = 0; round < 40; round += 1) {
    const aliceBurst = (round % 3) + 1;
    let envelopes;
    [aliceSession, envelopes] = await sendMany(aliceSession, aliceBurst, `a${round}-`);
    for (const [i, envelope] of envelopes.entries()) {
      ratchetKeys.add(envelope.message.ratchetKey);
      let text;
      [bobSession, text] = await receive(bobSession, envelope);
      assert.equal(bytesToText(text), `a${round}-${i}`);
    }
    [bobSession, envelopes] = await sendMany(bobSession, (round % 2) + 1, `b${round}-`);
    for (const [i, envelope] of envelopes.entries()) {
      ratchetKeys.add(envelope.message.ratchetKey);
      let text;
      [aliceSession, text] = await receive(aliceSession, envelope);
      assert.equal(bytesToText(text), `b${round}-${i}`);
    }
  }
  assert.equal(ratchetKeys.size, 80, 'every turn uses a fresh ratchet key pair (one DH step per turn)');
});

test('out-of-order delivery within MAX_SKIP decrypts every message exactly once', async () => {
  let { aliceSession, bobSession } = await talkingPair();
  let envelopes;
  [aliceSession, envelopes] = await sendMany(aliceSession, 30);
  const order = [29, 0, 15, 3, 2, 1, ...Array.from({ length: 30 }, (_, i) => i).filter((i) => ![29, 0, 15, 3, 2, 1].includes(i))];
  for (const index of order) {
    let text;
    [bobSession, text] = await receive(bobSession, envelopes[index]);
    assert.equal(bytesToText(text), `m${index}`);
  }
  assert.equal(bobSession.ratchet.skippedMessageKeys.length, 0, 'used skipped keys are deleted');
  for (const envelope of envelopes) await rejectsWithCode(receive(bobSession, envelope), ErrorCode.DUPLICATE_MESSAGE);
});

test('messages of a previous chain still decrypt after the DH ratchet moved on', async () => {
  let { aliceSession, bobSession } = await talkingPair();
  let oldChain;
  [aliceSession, oldChain] = await sendMany(aliceSession, 3, 'old');
  [bobSession] = await receive(bobSession, oldChain[2]);
  let reply;
  [bobSession, reply] = await send(bobSession, 'turn');
  [aliceSession] = await receive(aliceSession, reply);
  let newChain;
  [aliceSession, newChain] = await sendMany(aliceSession, 2, 'new');
  [bobSession] = await receive(bobSession, newChain[1]);
  for (const [envelope, expected] of [
    [oldChain[0], 'old0'],
    [newChain[0], 'new0'],
    [oldChain[1], 'old1'],
  ]) {
    let text;
    [bobSession, text] = await receive(bobSession, envelope);
    assert.equal(bytesToText(text), expected);
  }
});

test('exactly MAX_SKIP skipped messages are accepted; one more is rejected and changes nothing', async () => {
  const { aliceSession, bobSession } = await talkingPair();
  const [, envelopes] = await sendMany(aliceSession, MAX_SKIP + 2);
  const before = JSON.stringify(bobSession);

  await rejectsWithCode(receive(bobSession, envelopes[MAX_SKIP + 1]), ErrorCode.TOO_MANY_SKIPPED_MESSAGES);
  assert.equal(JSON.stringify(bobSession), before);

  const [afterSkip, text] = await receive(bobSession, envelopes[MAX_SKIP]);
  assert.equal(bytesToText(text), `m${MAX_SKIP}`);
  assert.equal(afterSkip.ratchet.skippedMessageKeys.length, MAX_SKIP);
  const [, first] = await receive(afterSkip, envelopes[0]);
  assert.equal(bytesToText(first), 'm0');
});

test('a forged previous-chain length beyond MAX_SKIP is rejected before any key is derived', async () => {
  let { aliceSession, bobSession } = await talkingPair();
  let envelope;
  [aliceSession, envelope] = await send(aliceSession, 'your turn');
  [bobSession] = await receive(bobSession, envelope);
  const [, [reply]] = await sendMany(bobSession, 1); // first message of Bob's new chain: a DH step for Alice
  const forged = structuredClone(reply);
  forged.message.previousChainLength = MAX_SKIP + 5;
  await rejectsWithCode(receive(aliceSession, forged), ErrorCode.TOO_MANY_SKIPPED_MESSAGES);
});

test('stored skipped keys are bounded in total, oldest evicted first', async () => {
  let { aliceSession, bobSession } = await talkingPair();
  const chains = [];
  for (let chain = 0; chain < 3; chain += 1) {
    let envelopes;
    [aliceSession, envelopes] = await sendMany(aliceSession, chain < 2 ? MAX_SKIP + 1 : 2, `c${chain}-`);
    chains.push(envelopes);
    [bobSession] = await receive(bobSession, envelopes.at(-1)); // skips all the others
    let reply;
    [bobSession, reply] = await send(bobSession, 'turn');
    [aliceSession] = await receive(aliceSession, reply);
  }
  assert.equal(bobSession.ratchet.skippedMessageKeys.length, MAX_STORED_SKIPPED_KEYS);
  // Chain 2 skipped one key, evicting the oldest stored key: chain 0, message 0.
  await rejectsWithProtocolError(receive(bobSession, chains[0][0]));
  const [, text] = await receive(bobSession, chains[0][1]);
  assert.equal(bytesToText(text), 'c0-1');
  const [, latest] = await receive(bobSession, chains[2][0]);
  assert.equal(bytesToText(latest), 'c2-0');
});

test('every single-byte change of a message is rejected and leaves the session unchanged', async () => {
  const { aliceSession, bobSession } = await talkingPair();
  const out = await encryptMessage(aliceSession, textToBytes('integrity matters'));
  const bytes = fromBase64(out.body);
  deepFreeze(bobSession); // any mutation of the caller's state would throw
  const before = JSON.stringify(bobSession);
  for (let position = 0; position < bytes.length; position += 1) {
    for (const mask of [0x01, 0x80]) {
      const tampered = Uint8Array.from(bytes);
      tampered[position] ^= mask;
      await rejectsWithProtocolError(async () => decryptMessage(bobSession, parseEnvelope(out.kind, toBase64(tampered))));
    }
  }
  assert.equal(JSON.stringify(bobSession), before);
  const { plaintext } = await decryptMessage(bobSession, parseEnvelope(out.kind, out.body));
  assert.equal(bytesToText(plaintext), 'integrity matters');
});

test('truncated or extended messages are rejected', async () => {
  const { aliceSession, bobSession } = await talkingPair();
  const out = await encryptMessage(aliceSession, textToBytes('length'));
  const bytes = fromBase64(out.body);
  for (const variant of [bytes.subarray(0, bytes.length - 1), bytes.subarray(0, bytes.length - 16), new Uint8Array([...bytes, ...new Uint8Array(16)])]) {
    await rejectsWithProtocolError(async () => decryptMessage(bobSession, parseEnvelope(out.kind, toBase64(variant))));
  }
});

test('a replayed message is rejected, also after out-of-order use of its skipped key', async () => {
  let { aliceSession, bobSession } = await talkingPair();
  let envelopes;
  [aliceSession, envelopes] = await sendMany(aliceSession, 3);
  [bobSession] = await receive(bobSession, envelopes[2]);
  await rejectsWithCode(receive(bobSession, envelopes[2]), ErrorCode.DUPLICATE_MESSAGE);
  [bobSession] = await receive(bobSession, envelopes[0]);
  await rejectsWithProtocolError(receive(bobSession, envelopes[0]));
});

test('decryption never mutates its input and a failure leaves a usable session', async () => {
  const { aliceSession, bobSession } = await talkingPair();
  deepFreeze(aliceSession);
  deepFreeze(bobSession);
  const out = await encryptMessage(aliceSession, textToBytes('frozen inputs'));
  const envelope = parseEnvelope(out.kind, out.body);
  const wrong = structuredClone(envelope);
  wrong.message.ciphertext[0] ^= 1;
  await rejectsWithCode(decryptMessage(bobSession, wrong), ErrorCode.AUTHENTICATION_FAILED);
  const { plaintext } = await decryptMessage(bobSession, envelope);
  assert.equal(bytesToText(plaintext), 'frozen inputs');
});

test('sessions are plain JSON: a JSON.stringify/parse round trip at every step changes nothing', async () => {
  let { aliceSession, bobSession } = await talkingPair();
  const viaJson = (value) => JSON.parse(JSON.stringify(value));
  for (let round = 0; round < 10; round += 1) {
    assert.deepEqual(viaJson(aliceSession), aliceSession);
    let envelope;
    [aliceSession, envelope] = await send(viaJson(aliceSession), `a${round}`);
    let text;
    [bobSession, text] = await receive(viaJson(bobSession), envelope);
    assert.equal(bytesToText(text), `a${round}`);
    [bobSession, envelope] = await send(viaJson(bobSession), `b${round}`);
    [aliceSession, text] = await receive(viaJson(aliceSession), envelope);
    assert.equal(bytesToText(text), `b${round}`);
  }
});

test('corrupted session state is refused with INVALID_SESSION_STATE', async () => {
  const { aliceSession } = await talkingPair();
  const corruptions = [
    (s) => ({ ...s, version: 2 }),
    (s) => ({ ...s, role: 'observer' }),
    (s) => ({ ...s, associatedData: s.associatedData.replace(/^./, s.associatedData[0] === 'A' ? 'B' : 'A') }),
    (s) => ({ ...s, ratchet: { ...s.ratchet, rootKey: 'short' } }),
    (s) => ({ ...s, ratchet: { ...s.ratchet, sendingMessageNumber: -1 } }),
    (s) => ({ ...s, ratchet: { ...s.ratchet, skippedMessageKeys: [{ ratchetKey: 'x', messageNumber: 0, messageKey: 'y' }] } }),
    (s) => ({ ...s, ratchet: null }),
    () => null,
  ];
  for (const corrupt of corruptions) {
    await rejectsWithCode(encryptMessage(corrupt(structuredClone(aliceSession)), textToBytes('x')), ErrorCode.INVALID_SESSION_STATE);
  }
});

test('a header naming the responder\'s signed prekey as ratchet key cannot reach an initiator', async () => {
  const { aliceSession, bob } = await establishedPair();
  const out = await encryptMessage(aliceSession, textToBytes('x'));
  const envelope = parseEnvelope(out.kind, out.body);
  const forged = { kind: 'message', prekey: null, message: { ...envelope.message, ratchetKey: bob.signedPrekey.publicKey } };
  await rejectsWithCode(decryptMessage(aliceSession, forged), ErrorCode.AUTHENTICATION_FAILED);
});
