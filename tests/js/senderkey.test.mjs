/**
 * Sender keys (docs/PROTOCOL.md section 22): known-answer vectors, and every rule of section 22: the
 * labels in AD, forgery by a member who holds CK, replays, the skip limit and eviction, distributions
 * (parsing, replays, rotation), plaintext types and limits. Inputs are frozen: nothing may be mutated.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  ErrorCode,
  MAX_PLAINTEXT_BYTES,
  createSenderKey,
  decodeGroupPlaintext,
  decryptGroupMessage,
  encodeGroupSettings,
  encodeGroupText,
  encryptGroupMessage,
  fromBase64,
  generateIdentityKeyPair,
  parseSenderKeyDistribution,
  receivedSenderKeys,
  senderKeyDistribution,
  textToBytes,
  toBase64,
} from '../../static/js/crypto/index.js';
import { ed25519 } from '../../static/vendor/noble-curves/ed25519.js';
import { concatBytes, u32be } from '../../static/js/crypto/bytes.js';
import { ed25519PublicKey, ed25519Sign } from '../../static/js/crypto/primitives.js';
import { encryptWithMessageKey, messageChainStep } from '../../static/js/crypto/ratchet.js';
import { deepFreeze, rejectsWithCode, throwsWithCode } from './assertions.mjs';
import { fromHex, hex, scriptedRandom, seededRandom } from './helpers.mjs';
import { computeSenderKeyVectors, readSenderKeyVectors } from './senderkey_vectors.mjs';

const vectors = readSenderKeyVectors();
const GROUP = '2f1c0a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6';
const OTHER_GROUP = '2f1c0a3e-1b2c-4d5e-8f90-a1b2c3d4e5f7';
const alice = generateIdentityKeyPair({ random: seededRandom('senderkey alice') });
const mallory = generateIdentityKeyPair({ random: seededRandom('senderkey mallory') });
const LABELS = Object.freeze({ groupId: GROUP, senderIdentityKey: alice.publicKey, senderDevice: 2 });
const text = (value) => encodeGroupText(value);

/** A sender key, its first receiver's record, and helpers to send and receive with frozen inputs. */
function newSender(label = 'sender key', labels = LABELS) {
  let state = deepFreeze(createSenderKey({ random: seededRandom(label) }));
  const distribution = () => senderKeyDistribution(state, labels.groupId);
  return {
    get state() {
      return state;
    },
    set state(value) {
      state = deepFreeze(value);
    },
    distribution,
    record: () => deepFreeze(receivedSenderKeys(null, parseSenderKeyDistribution(distribution(), labels.groupId))),
    async send(plaintext = text('hello')) {
      const result = await encryptGroupMessage(state, { ...labels, plaintext });
      state = deepFreeze(result.state);
      return result.body;
    },
  };
}

async function receive(record, body, labels = LABELS) {
  const result = await decryptGroupMessage(record, { ...labels, body });
  deepFreeze(result.record);
  return result;
}

/** The sender state `count` messages later, as if they had been sent (KDF_CK steps only). */
function advanced(state, count) {
  let chainKey = fromBase64(state.chainKey);
  for (let i = 0; i < count; i += 1) chainKey = messageChainStep(chainKey).chainKey;
  return { ...state, chainKey: toBase64(chainKey), iteration: state.iteration + count };
}

const seedOf = (label) => createHash('sha256').update(`SecuredMessenger test vector: ${label}`).digest();

// -------------------------------------------------------------------------------------------------
// Vectors

test('known-answer vectors: the fixed draws give the stored key, distribution, bodies, states and records', async () => {
  assert.deepEqual(await computeSenderKeyVectors(vectors.inputs), vectors.outputs);
});

test('the vectors follow the layouts of section 22', () => {
  const { outputs } = vectors;
  const distribution = fromHex(outputs.distribution);
  assert.equal(distribution.length, 89);
  assert.equal(distribution[0], 1);
  assert.equal(hex(distribution.subarray(1, 17)), vectors.inputs.group_id.replaceAll('-', ''));
  const signingKey = ed25519PublicKey(fromHex(vectors.inputs.first_key_draws[1]));
  assert.deepEqual(distribution.subarray(57), signingKey);
  assert.deepEqual(distribution.subarray(25, 57), fromHex(vectors.inputs.first_key_draws[0]));
  const keyId = 1 + (new DataView(signingKey.buffer).getUint32(0) % (2 ** 31 - 1));
  assert.equal(outputs.sender_key.keyId, keyId);
  outputs.messages.forEach(({ body }, n) => {
    const bytes = fromBase64(body);
    assert.deepEqual(bytes.subarray(0, 9), concatBytes(Uint8Array.of(1), u32be(keyId), u32be(n)));
    const plaintextLength = fromHex(vectors.inputs.messages[n]).length;
    assert.equal(bytes.length, 9 + (Math.floor(plaintextLength / 16) + 1) * 16 + 32 + 64);
  });
  // Message 1 arrived last: it was decrypted with a stored skipped key, which is then gone.
  const steps = outputs.receptions.map(({ step }) => step);
  assert.deepEqual(steps, [
    'distribution 1',
    'message 0',
    'message 2',
    'message 1',
    'distribution 2',
    'second key message 0',
  ]);
  assert.deepEqual(outputs.receptions[2].record.current.skippedMessageKeys.map(({ iteration }) => iteration), [1]);
  assert.deepEqual(outputs.receptions[3].record.current.skippedMessageKeys, []);
  assert.equal(outputs.receptions[4].record.previous.keyId, keyId);
});

// -------------------------------------------------------------------------------------------------
// Sending and receiving

test('a message decrypts for every holder of the distribution, and inputs are never mutated', async () => {
  const sender = newSender();
  const record = sender.record();
  const otherRecord = sender.record();
  const body = await sender.send(text('to the group'));
  const first = await receive(record, body);
  const second = await receive(otherRecord, body);
  assert.deepEqual(decodeGroupPlaintext(first.plaintext), { type: 'text', text: 'to the group' });
  assert.deepEqual(first.plaintext, second.plaintext);
  assert.equal(first.record.current.iteration, 1);
  assert.equal(record.current.iteration, 0);
});

test('the AD binds group, sender identity and device: relabelled messages are invalid_signature', async () => {
  const sender = newSender();
  const record = sender.record();
  const body = await sender.send();
  for (const labels of [
    { ...LABELS, groupId: OTHER_GROUP },
    { ...LABELS, senderIdentityKey: mallory.publicKey },
    { ...LABELS, senderDevice: 3 },
  ]) {
    await rejectsWithCode(receive(record, body, labels), ErrorCode.INVALID_SIGNATURE);
  }
  // Nothing was consumed: the right labels still decrypt.
  assert.deepEqual((await receive(record, body)).plaintext, text('hello'));
});

test('a tampered message re-signed by someone without SIG is invalid_signature', async () => {
  const sender = newSender();
  const record = sender.record();
  const bytes = fromBase64(await sender.send());
  const header = bytes.subarray(0, 9);
  const sealed = Uint8Array.from(bytes.subarray(9, bytes.length - 64));
  sealed[0] ^= 1;
  const ad = concatBytes(fromHex(GROUP.replaceAll('-', '')), fromBase64(alice.publicKey), u32be(2), header);
  for (const seed of [fromBase64(mallory.privateKey), fromBase64(alice.privateKey)]) {
    const forged = concatBytes(header, sealed, ed25519Sign(seed, concatBytes(ad, sealed)));
    await rejectsWithCode(receive(record, toBase64(forged)), ErrorCode.INVALID_SIGNATURE);
  }
  const unsigned = concatBytes(header, sealed, bytes.subarray(bytes.length - 64));
  await rejectsWithCode(receive(record, toBase64(unsigned)), ErrorCode.INVALID_SIGNATURE);
});

test('a member who holds CK but not SIG cannot forge a message of the sender', async () => {
  const sender = newSender();
  const record = sender.record();
  // The member derives the next message key from the chain key it received and writes a valid message.
  const { messageKey } = messageChainStep(fromBase64(record.current.chainKey));
  const header = concatBytes(Uint8Array.of(1), u32be(record.current.keyId), u32be(0));
  const ad = concatBytes(fromHex(GROUP.replaceAll('-', '')), fromBase64(alice.publicKey), u32be(2), header);
  const sealed = await encryptWithMessageKey(messageKey, text('forged'), ad);
  const signature = ed25519Sign(fromBase64(mallory.privateKey), concatBytes(ad, sealed));
  await rejectsWithCode(receive(record, toBase64(concatBytes(header, sealed, signature))), ErrorCode.INVALID_SIGNATURE);
  // The sender's genuine message 0 still decrypts: the forgery consumed nothing.
  assert.deepEqual((await receive(record, await sender.send(text('genuine')))).plaintext, text('genuine'));
});

test('a replay is duplicate_message, on the current chain and for a used skipped key', async () => {
  const sender = newSender();
  let record = sender.record();
  const bodies = [await sender.send(text('0')), await sender.send(text('1')), await sender.send(text('2'))];
  ({ record } = await receive(record, bodies[0]));
  await rejectsWithCode(receive(record, bodies[0]), ErrorCode.DUPLICATE_MESSAGE);
  ({ record } = await receive(record, bodies[2]));
  assert.deepEqual(record.current.skippedMessageKeys.map(({ iteration }) => iteration), [1]);
  ({ record } = await receive(record, bodies[1]));
  await rejectsWithCode(receive(record, bodies[1]), ErrorCode.DUPLICATE_MESSAGE);
  await rejectsWithCode(receive(record, bodies[2]), ErrorCode.DUPLICATE_MESSAGE);
});

test('skip limit: MAX_SKIP (1000) keys may be derived for one message, 1001 are too_many_skipped_messages', async () => {
  const sender = newSender();
  const record = sender.record();
  const start = sender.state;
  sender.state = advanced(start, 1001);
  await rejectsWithCode(receive(record, await sender.send()), ErrorCode.TOO_MANY_SKIPPED_MESSAGES);
  sender.state = advanced(start, 1000);
  const { record: after } = await receive(record, await sender.send());
  assert.equal(after.current.iteration, 1001);
  assert.equal(after.current.skippedMessageKeys.length, 1000);
});

test('eviction: at most 2000 skipped keys per sender key, the first stored evicted first', async () => {
  const sender = newSender();
  let record = sender.record();
  const start = sender.state;
  const sendAt = async (n) => {
    sender.state = advanced(start, n);
    return sender.send(text(String(n)));
  };
  const early = await sendAt(0);
  const kept = await sendAt(1001);
  for (const n of [1000, 2001, 3002]) ({ record } = await receive(record, await sendAt(n)));
  const stored = record.current.skippedMessageKeys.map(({ iteration }) => iteration);
  assert.equal(stored.length, 2000);
  assert.equal(stored[0], 1001);
  assert.equal(stored.at(-1), 3001);
  await rejectsWithCode(receive(record, early), ErrorCode.DUPLICATE_MESSAGE);
  assert.deepEqual((await receive(record, kept)).plaintext, text('1001'));
});

test('an unknown key id, or no record at all, is unknown_sender_key', async () => {
  const sender = newSender();
  const other = newSender('another sender key');
  await rejectsWithCode(receive(sender.record(), await other.send()), ErrorCode.UNKNOWN_SENDER_KEY);
  await rejectsWithCode(receive(null, await sender.send()), ErrorCode.UNKNOWN_SENDER_KEY);
});

test('a replayed distribution never moves a chain back', async () => {
  const sender = newSender();
  const distribution = sender.distribution();
  let record = sender.record();
  const first = await sender.send(text('first'));
  ({ record } = await receive(record, first));
  const replayed = receivedSenderKeys(record, parseSenderKeyDistribution(distribution, GROUP));
  assert.deepEqual(replayed, record);
  await rejectsWithCode(receive(replayed, first), ErrorCode.DUPLICATE_MESSAGE);
  // A later distribution of the same key (a higher n) does not move it either, nor drop skipped keys.
  const skipped = await sender.send(text('skipped'));
  const later = await sender.send(text('later'));
  ({ record } = await receive(record, later));
  assert.deepEqual(receivedSenderKeys(record, parseSenderKeyDistribution(sender.distribution(), GROUP)), record);
  assert.deepEqual((await receive(record, skipped)).plaintext, text('skipped'));
});

test('after a new distribution the previous key still decrypts; the one before is forgotten', async () => {
  const first = newSender('first key');
  const second = newSender('second key');
  const third = newSender('third key');
  let record = first.record();
  const late = await first.send(text('sent before the rotation'));
  record = receivedSenderKeys(record, parseSenderKeyDistribution(second.distribution(), GROUP));
  assert.equal(record.current.keyId, second.state.keyId);
  assert.equal(record.previous.keyId, first.state.keyId);
  assert.deepEqual((await receive(record, late)).plaintext, text('sent before the rotation'));
  assert.deepEqual((await receive(record, await second.send(text('new')))).plaintext, text('new'));
  // Replaying the first key's distribution now does not push the second key out.
  assert.deepEqual(receivedSenderKeys(record, parseSenderKeyDistribution(first.distribution(), GROUP)), record);
  record = receivedSenderKeys(record, parseSenderKeyDistribution(third.distribution(), GROUP));
  assert.equal(record.previous.keyId, second.state.keyId);
  await rejectsWithCode(receive(record, await first.send()), ErrorCode.UNKNOWN_SENDER_KEY);
});

test('a removed member keeps its old sender keys but cannot read a message of the new one', async () => {
  const old = newSender('key before the removal');
  const removedMembersRecord = old.record();
  const remaining = newSender('key after the removal');
  let membersRecord = receivedSenderKeys(old.record(), parseSenderKeyDistribution(remaining.distribution(), GROUP));
  const body = await remaining.send(text('after the removal'));
  await rejectsWithCode(receive(removedMembersRecord, body), ErrorCode.UNKNOWN_SENDER_KEY);
  ({ record: membersRecord } = await receive(membersRecord, body));
  assert.equal(membersRecord.current.iteration, 1);
});

test('the same key id with another signing key is invalid_sender_key', async () => {
  // Two seeds whose public keys give the same key id (found once by search, 1 in 2^31 by chance).
  const [a, b] = [72748, 89510].map((i) => seedOf(`key id collision ${i}`));
  const make = (seed) => createSenderKey({ random: scriptedRandom(new Uint8Array(32), seed) });
  const [one, two] = [make(a), make(b)];
  assert.equal(one.keyId, two.keyId);
  assert.notEqual(one.signingSeed, two.signingSeed);
  const record = receivedSenderKeys(null, parseSenderKeyDistribution(senderKeyDistribution(one, GROUP), GROUP));
  throwsWithCode(
    () => receivedSenderKeys(record, parseSenderKeyDistribution(senderKeyDistribution(two, GROUP), GROUP)),
    ErrorCode.INVALID_SENDER_KEY,
  );
});

test('distributions: anything but 89 bytes of 0x01, this group, a valid signing key and its key id is refused', () => {
  const sender = newSender();
  const good = sender.distribution();
  const parsed = parseSenderKeyDistribution(good, GROUP);
  assert.deepEqual(parsed, {
    keyId: sender.state.keyId,
    iteration: 0,
    chainKey: sender.state.chainKey,
    signingKey: toBase64(ed25519PublicKey(fromBase64(sender.state.signingSeed))),
  });
  const variant = (edit) => {
    const bytes = Uint8Array.from(good);
    edit(bytes);
    return bytes;
  };
  // A signing key with the key id it determines, so that only the key's validity is at stake.
  const withKey = (key) =>
    variant((bytes) => {
      bytes.set(key, 57);
      bytes.set(u32be(1 + (new DataView(key.buffer).getUint32(0) % (2 ** 31 - 1))), 17);
    });
  const genuine = ed25519.Point.fromBytes(ed25519PublicKey(fromBase64(sender.state.signingSeed)));
  const orderEight = ed25519.Point.fromBytes(fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'));
  const refused = [
    good.subarray(0, 88),
    concatBytes(good, Uint8Array.of(0)),
    new Uint8Array(0),
    variant((bytes) => (bytes[0] = 2)),
    variant((bytes) => (bytes[17] ^= 1)), // key id
    withKey(fromHex('0000000000000000000000000000000000000000000000000000000000000080')), // small order
    withKey(orderEight.toBytes()), // order 8
    withKey(genuine.add(orderEight).toBytes()), // a valid key with a torsion component
    withKey(fromHex('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')), // identity, non-canonical
    withKey(fromHex('f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')), // non-canonical, torsion
    withKey(fromHex('f1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff')), // non-canonical, sign bit
    withKey(fromHex('0100000000000000000000000000000000000000000000000000000000000000')), // the identity
  ];
  // The genuine key with its own key id parses: the refusals above are about the keys alone.
  assert.equal(parseSenderKeyDistribution(withKey(genuine.toBytes()), GROUP).keyId, sender.state.keyId);
  for (const bytes of refused) throwsWithCode(() => parseSenderKeyDistribution(bytes, GROUP), ErrorCode.INVALID_SENDER_KEY);
  throwsWithCode(() => parseSenderKeyDistribution(good, OTHER_GROUP), ErrorCode.INVALID_SENDER_KEY);
  throwsWithCode(() => parseSenderKeyDistribution(Array.from(good), GROUP), ErrorCode.INVALID_ARGUMENT);
  throwsWithCode(() => parseSenderKeyDistribution(good, GROUP.toUpperCase()), ErrorCode.INVALID_ARGUMENT);
  throwsWithCode(() => receivedSenderKeys(null, { ...parsed, keyId: parsed.keyId + 1 }), ErrorCode.INVALID_SENDER_KEY);
  throwsWithCode(() => receivedSenderKeys(null, { ...parsed, iteration: -1 }), ErrorCode.INVALID_ARGUMENT);
  throwsWithCode(() => receivedSenderKeys(null, 'distribution'), ErrorCode.INVALID_ARGUMENT);
});

// -------------------------------------------------------------------------------------------------
// Bodies, limits, arguments and stored states

test('malformed bodies: body_too_large, malformed_envelope and unsupported_version before any key', async () => {
  const sender = newSender();
  const record = sender.record();
  const bytes = fromBase64(await sender.send());
  const cases = [
    ['A'.repeat(65_537), ErrorCode.BODY_TOO_LARGE],
    [42, ErrorCode.MALFORMED_ENVELOPE],
    ['not base64!', ErrorCode.MALFORMED_ENVELOPE],
    [toBase64(bytes).replace(/=*$/, ''), ErrorCode.MALFORMED_ENVELOPE],
    [toBase64(bytes.subarray(0, 120)), ErrorCode.MALFORMED_ENVELOPE],
    [toBase64(concatBytes(bytes, Uint8Array.of(0))), ErrorCode.MALFORMED_ENVELOPE],
    [toBase64(concatBytes(Uint8Array.of(2), bytes.subarray(1))), ErrorCode.UNSUPPORTED_VERSION],
    [toBase64(concatBytes(bytes.subarray(0, 5), u32be(2 ** 32 - 1), bytes.subarray(9))), ErrorCode.MALFORMED_ENVELOPE],
  ];
  for (const [body, code] of cases) await rejectsWithCode(receive(record, body), code);
  // The shortest possible body (one block) is well-formed and reaches the key lookup.
  const shortest = concatBytes(Uint8Array.of(1), u32be(1), u32be(0), new Uint8Array(16 + 32 + 64));
  await rejectsWithCode(receive(record, toBase64(shortest)), ErrorCode.UNKNOWN_SENDER_KEY);
});

test('plaintext_too_large and empty plaintexts are refused before the state is touched', async () => {
  const sender = newSender();
  const record = sender.record();
  const largest = concatBytes(Uint8Array.of(1), new Uint8Array(MAX_PLAINTEXT_BYTES - 1).fill(0x61));
  const start = sender.state;
  await rejectsWithCode(
    encryptGroupMessage(start, { ...LABELS, plaintext: concatBytes(largest, Uint8Array.of(0x61)) }),
    ErrorCode.PLAINTEXT_TOO_LARGE,
  );
  await rejectsWithCode(encryptGroupMessage(start, { ...LABELS, plaintext: new Uint8Array(0) }), ErrorCode.INVALID_ARGUMENT);
  const body = await sender.send(largest);
  assert.ok(body.length <= 65_536);
  assert.deepEqual((await receive(record, body)).plaintext, largest);
});

test('chain_exhausted: the last message has n = 2^32 - 2; at n = 2^32 - 1 nothing more is sent', async () => {
  const sender = newSender();
  sender.state = { ...sender.state, iteration: 2 ** 32 - 2 };
  const record = sender.record();
  const body = await sender.send(text('last'));
  assert.equal(sender.state.iteration, 2 ** 32 - 1);
  assert.deepEqual((await receive(record, body)).plaintext, text('last'));
  await rejectsWithCode(sender.send(), ErrorCode.CHAIN_EXHAUSTED);
  // Its distribution still parses (n = 2^32 - 1 fits u32); the receiver can read nothing more of it.
  assert.equal(parseSenderKeyDistribution(sender.distribution(), GROUP).iteration, 2 ** 32 - 1);
});

test('invalid arguments and corrupt states are refused with a code, never a crash', async () => {
  const sender = newSender();
  const record = sender.record();
  const body = await sender.send();
  const badLabels = [
    { ...LABELS, groupId: GROUP.toUpperCase() },
    { ...LABELS, groupId: GROUP.replaceAll('-', '') },
    { ...LABELS, groupId: undefined },
    { ...LABELS, senderIdentityKey: toBase64(new Uint8Array(31)) },
    { ...LABELS, senderDevice: 0 },
    { ...LABELS, senderDevice: 2 ** 31 },
    { ...LABELS, senderDevice: '2' },
  ];
  for (const labels of badLabels) {
    await rejectsWithCode(receive(record, body, labels), ErrorCode.INVALID_ARGUMENT);
    await rejectsWithCode(
      encryptGroupMessage(sender.state, { ...labels, plaintext: text('x') }),
      ErrorCode.INVALID_ARGUMENT,
    );
  }
  const corruptStates = [
    null,
    { ...sender.state, version: 2 },
    { ...sender.state, keyId: sender.state.keyId + 1 },
    { ...sender.state, iteration: 2 ** 32 },
    { ...sender.state, chainKey: 'AAAA' },
  ];
  for (const state of corruptStates) {
    await rejectsWithCode(encryptGroupMessage(state, { ...LABELS, plaintext: text('x') }), ErrorCode.INVALID_SESSION_STATE);
    throwsWithCode(() => senderKeyDistribution(state, GROUP), ErrorCode.INVALID_SESSION_STATE);
  }
  const current = record.current;
  const corruptRecords = [
    { ...record, version: 2 },
    { ...record, previous: undefined },
    { ...record, previous: current },
    { ...record, current: { ...current, keyId: current.keyId + 1 } },
    { ...record, current: { ...current, skippedMessageKeys: [{ iteration: 0, messageKey: current.chainKey }] } },
    { ...record, current: { ...current, skippedMessageKeys: 'none' } },
    {
      ...record,
      current: { ...current, iteration: 1, skippedMessageKeys: [{ iteration: 0, messageKey: [current.chainKey] }] },
    },
  ];
  for (const corrupt of corruptRecords) {
    await rejectsWithCode(receive(corrupt, body), ErrorCode.INVALID_SESSION_STATE);
  }
});

test('the random source must keep its contract', () => {
  throwsWithCode(() => createSenderKey({ random: () => new Uint8Array(31) }), ErrorCode.INVALID_ARGUMENT);
});

// -------------------------------------------------------------------------------------------------
// Group plaintexts

test('group plaintexts: text, settings and unknown types', () => {
  assert.deepEqual(encodeGroupText('hi'), Uint8Array.of(1, 0x68, 0x69));
  assert.deepEqual(decodeGroupPlaintext(encodeGroupText('')), { type: 'text', text: '' });
  assert.deepEqual(decodeGroupPlaintext(encodeGroupText('héllo 🔐')), { type: 'text', text: 'héllo 🔐' });
  assert.deepEqual(encodeGroupSettings({ name: 'a"b' }), concatBytes(Uint8Array.of(2), textToBytes('{"name":"a\\"b"}')));
  const sixtyFour = '🔐'.repeat(64); // 64 characters, 128 UTF-16 units
  assert.deepEqual(decodeGroupPlaintext(encodeGroupSettings({ name: sixtyFour })), { type: 'settings', name: sixtyFour });
  const withExtra = concatBytes(Uint8Array.of(2), textToBytes('{"topic":1,"name":"Team"}'));
  assert.deepEqual(decodeGroupPlaintext(withExtra), { type: 'settings', name: 'Team' });
  assert.deepEqual(decodeGroupPlaintext(Uint8Array.of(3, 1, 2)), { type: 'unknown', typeByte: 3 });
  assert.deepEqual(decodeGroupPlaintext(Uint8Array.of(0)), { type: 'unknown', typeByte: 0 });
});

test('group plaintexts: names break the rule, broken contents are decryption_failed', () => {
  const refused = ['', 'a'.repeat(65), '🔐'.repeat(65), 'tab\there', 'bell\u0007', 'del\u007f', 'c1\u0085', 'lone\ud800'];
  for (const name of [...refused, 42, undefined]) {
    throwsWithCode(() => encodeGroupSettings({ name }), ErrorCode.INVALID_ARGUMENT);
  }
  throwsWithCode(() => encodeGroupText('lone \udc00'), ErrorCode.INVALID_ARGUMENT);
  throwsWithCode(() => encodeGroupText(7), ErrorCode.INVALID_ARGUMENT);
  const settings = (json) => concatBytes(Uint8Array.of(2), textToBytes(json));
  const broken = [
    new Uint8Array(0),
    Uint8Array.of(1, 0xff),
    Uint8Array.of(2, 0xc3),
    settings('{"name":"x"'),
    settings('["x"]'),
    settings('null'),
    settings('{"name":7}'),
    settings('{}'),
    settings('{"name":""}'),
    settings('{"name":"\\u0001"}'),
    settings('{"name":"\\ud800"}'),
    settings(`{"name":"${'a'.repeat(65)}"}`),
    settings('{"name":"x","n":NaN}'),
  ];
  for (const bytes of broken) throwsWithCode(() => decodeGroupPlaintext(bytes), ErrorCode.DECRYPTION_FAILED);
  throwsWithCode(() => decodeGroupPlaintext('text'), ErrorCode.INVALID_ARGUMENT);
});
