/**
 * Behaviours docs/PROTOCOL.md pins down explicitly, one test each: the last message number of a
 * chain, key ids after exhaustion, a bundle without a one-time prekey field, what a repeated prekey
 * envelope's header still means once a session exists, which code a replay gets on the current
 * chain and on an old one, the order of the envelope parse checks, what is stored per skipped
 * message key, and which X25519 encodings count as low order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ErrorCode,
  MAX_BODY_LENGTH,
  MAX_KEY_ID,
  bytesToText,
  decryptMessage,
  encryptMessage,
  generateOneTimePrekeys,
  generateSignedPrekey,
  initiateSession,
  isInitialMessageForSession,
  parseBundle,
  parseEnvelope,
  textToBytes,
  toBase64,
} from '../../static/js/crypto/index.js';
import { encodeEnvelope } from '../../static/js/crypto/envelope.js';
import { x25519SharedSecret } from '../../static/js/crypto/primitives.js';
import { rejectsWithCode, throwsWithCode } from './assertions.mjs';
import { accept, bundleOf, establishedPair, makeParty, receive, send } from './helpers.mjs';

const MAX_MESSAGE_NUMBER = 2 ** 32 - 1;

test('a sending chain carries 2^32 - 1 messages: the last has n = 2^32 - 2', async () => {
  const { aliceSession } = await establishedPair();
  const nearEnd = structuredClone(aliceSession);
  nearEnd.ratchet.sendingMessageNumber = MAX_MESSAGE_NUMBER - 1;
  const [after, envelope] = await send(nearEnd, 'the last one');
  assert.equal(envelope.message.messageNumber, MAX_MESSAGE_NUMBER - 1);
  await rejectsWithCode(() => encryptMessage(after, textToBytes('one too many')), ErrorCode.CHAIN_EXHAUSTED);
});

test('after the last one-time prekey id the next id is 2^31, and asking for more gives key_id_exhausted', () => {
  const { prekeys, nextKeyId } = generateOneTimePrekeys(MAX_KEY_ID - 1, 2);
  assert.deepEqual(
    prekeys.map((p) => p.keyId),
    [MAX_KEY_ID - 1, MAX_KEY_ID],
  );
  assert.equal(nextKeyId, MAX_KEY_ID + 1);
  throwsWithCode(() => generateOneTimePrekeys(nextKeyId, 1), ErrorCode.KEY_ID_EXHAUSTED);
  // Anything beyond the "used up" value is a caller's mistake, not a state a client can reach.
  throwsWithCode(() => generateOneTimePrekeys(MAX_KEY_ID + 2, 1), ErrorCode.INVALID_ARGUMENT);
});

test('after the last signed prekey id, the next one gives key_id_exhausted', () => {
  const { identityKeyPair } = makeParty('spk ids');
  assert.equal(generateSignedPrekey(identityKeyPair, MAX_KEY_ID).keyId, MAX_KEY_ID);
  throwsWithCode(() => generateSignedPrekey(identityKeyPair, MAX_KEY_ID + 1), ErrorCode.KEY_ID_EXHAUSTED);
  throwsWithCode(() => generateSignedPrekey(identityKeyPair, MAX_KEY_ID + 2), ErrorCode.INVALID_ARGUMENT);
});

test('a bundle without a one_time_prekey field means no one-time prekey, like null', async () => {
  const bob = makeParty('bob');
  const bundle = bundleOf(bob, null);
  delete bundle.one_time_prekey;
  assert.equal(parseBundle(bundle).oneTimePrekey, null);
  const { session } = await initiateSession({ identityKeyPair: makeParty('alice').identityKeyPair, bundle });
  const out = await encryptMessage(session, textToBytes('no one-time prekey'));
  assert.equal(parseEnvelope(out.kind, out.body).prekey.oneTimePrekeyId, null);
});

test("a repeated prekey envelope's prekey ids and flag are not authenticated once the session exists", async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session } = await initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: bundleOf(bob, 1) });
  const first = await encryptMessage(session, textToBytes('first'));
  const second = await encryptMessage(first.session, textToBytes('second'));
  const accepted = await accept(bob, first.kind, first.body);

  // Someone on the path changes the ids and drops the one-time prekey flag of the second message.
  const original = parseEnvelope(second.kind, second.body);
  const changed = encodeEnvelope({ ...original, prekey: { ...original.prekey, signedPrekeyId: 99, oneTimePrekeyId: null } });
  const envelope = parseEnvelope(changed.kind, changed.body);
  // Same (IK_A, EK_A): it goes to the existing session, whose ratchet never looks at those fields.
  assert.ok(isInitialMessageForSession(accepted.session, envelope));
  const [, plaintext] = await receive(accepted.session, envelope);
  assert.equal(bytesToText(plaintext), 'second');
});

test('a replay on the current receiving chain is duplicate_message, on an older chain authentication_failed', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session } = await initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: bundleOf(bob, 1) });
  let [aliceSession, m1, m1Wire] = await send(session, 'm1 on chain 1');
  let bobSession = (await accept(bob, m1Wire.kind, m1Wire.body)).session;
  let reply;
  [bobSession, reply] = await send(bobSession, 'reply');
  [aliceSession] = await receive(aliceSession, reply);
  let m2;
  [aliceSession, m2] = await send(aliceSession, 'm2 on chain 2');
  [bobSession] = await receive(bobSession, m2);

  await rejectsWithCode(() => decryptMessage(bobSession, m2), ErrorCode.DUPLICATE_MESSAGE);
  // m1's chain is no longer Bob's receiving chain and its key is not stored: a trial DH ratchet
  // step on a copy, and the MAC fails.
  await rejectsWithCode(() => decryptMessage(bobSession, m1), ErrorCode.AUTHENTICATION_FAILED);
});

test('envelope checks run in the documented order', () => {
  const prekey = (bytes) => toBase64(Uint8Array.from(bytes));
  const cases = [
    // [kind, body, code]: each body breaks a later rule too, so the first failing rule names the code.
    ['other', '!', ErrorCode.KIND_MISMATCH],
    ['message', 42, ErrorCode.MALFORMED_ENVELOPE],
    ['message', '!'.repeat(MAX_BODY_LENGTH + 1), ErrorCode.BODY_TOO_LARGE],
    ['message', 'AgE', ErrorCode.MALFORMED_ENVELOPE], // not canonical base64 (no padding)
    ['message', prekey([2]), ErrorCode.MALFORMED_ENVELOPE], // one byte: truncated before the version
    ['message', prekey([2, 1]), ErrorCode.UNSUPPORTED_VERSION], // version 2 and the prekey type
    ['message', prekey([1, 1]), ErrorCode.KIND_MISMATCH], // type byte contradicts kind, and truncated
    ['prekey', prekey([1, 1, ...new Uint8Array(68), 0x02]), ErrorCode.MALFORMED_ENVELOPE], // reserved flag bit
  ];
  for (const [kind, body, code] of cases) throwsWithCode(() => parseEnvelope(kind, body), code);
});

test('each skipped message key is stored as (ratchet key, n) -> message key, in the order derived', async () => {
  let { aliceSession, bobSession } = await establishedPair();
  const sent = [];
  for (const text of ['a', 'b', 'c', 'd']) {
    let envelope;
    [aliceSession, envelope] = await send(aliceSession, text);
    sent.push(envelope);
  }
  [bobSession] = await receive(bobSession, sent[3]);
  const skipped = bobSession.ratchet.skippedMessageKeys;
  assert.deepEqual(
    skipped.map((entry) => [entry.ratchetKey, entry.messageNumber]),
    [0, 1, 2].map((i) => [sent[i].message.ratchetKey, sent[i].message.messageNumber]),
  );
  for (const entry of skipped) {
    assert.deepEqual(Object.keys(entry).sort(), ['messageKey', 'messageNumber', 'ratchetKey']);
    assert.equal(Buffer.from(entry.messageKey, 'base64').length, 32);
  }
});

test('low-order X25519 keys are refused in every encoding that decodes to them, and only those', () => {
  const p = 2n ** 255n - 19n;
  const topBit = 2n ** 255n;
  const littleEndian = (n) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  const lowOrder = [
    0n,
    1n,
    p - 1n,
    325606250916557431795983626356110631294008115727848805560023387167927233504n,
    39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  ];
  const privateKey = new Uint8Array(32).fill(7);
  const refused = [...lowOrder, ...lowOrder.map((u) => u + topBit), p, p + 1n];
  for (const u of refused) throwsWithCode(() => x25519SharedSecret(privateKey, littleEndian(u)), ErrorCode.INVALID_KEY);
  // A non-canonical encoding of a point that is not of low order decodes (mod p, bit 255 ignored).
  for (const [encoded, canonical] of [
    [p + 9n, 9n],
    [9n + topBit, 9n],
  ]) {
    assert.deepEqual(x25519SharedSecret(privateKey, littleEndian(encoded)), x25519SharedSecret(privateKey, littleEndian(canonical)));
  }
});
