/**
 * Session set-up rules around X3DH: replayed initial messages, one-time prekeys spent only on success,
 * routing of repeated initial messages, limits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ErrorCode,
  MAX_BODY_LENGTH,
  MAX_PLAINTEXT_BYTES,
  acceptInitialMessage,
  bytesToText,
  decryptMessage,
  encryptMessage,
  fromBase64,
  initiateSession,
  isInitialMessageForSession,
  parseEnvelope,
  textToBytes,
  toBase64,
} from '../../static/js/crypto/index.js';
import { rejectsWithCode, rejectsWithProtocolError } from './assertions.mjs';
import { accept, bundleOf, makeParty } from './helpers.mjs';

async function firstMessage({ oneTimePrekeyId = 1, text = 'first' } = {}) {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session } = await initiateSession({
    identityKeyPair: alice.identityKeyPair,
    bundle: bundleOf(bob, oneTimePrekeyId),
  });
  const out = await encryptMessage(session, textToBytes(text));
  return { alice, bob, aliceSession: out.session, kind: out.kind, body: out.body };
}

for (const oneTimePrekeyId of [1, null]) {
  const label = oneTimePrekeyId ? 'with' : 'without';
  test(`a replayed initial message (${label} one-time prekey) cannot found a second session`, async () => {
    const { bob, kind, body } = await firstMessage({ oneTimePrekeyId });
    const accepted = await accept(bob, kind, body);
    assert.ok(bob.usedEphemeralKeys.has(accepted.ephemeralKey));
    await rejectsWithCode(accept(bob, kind, body), ErrorCode.REPLAYED_INITIAL_MESSAGE);
  });
}

test('the replay guard runs before any cryptography and needs the used-ephemeral-key set', async () => {
  const { bob, kind, body } = await firstMessage();
  const envelope = parseEnvelope(kind, body);
  await rejectsWithCode(
    acceptInitialMessage({
      identityKeyPair: bob.identityKeyPair,
      signedPrekey: null, // would fail later with UNKNOWN_SIGNED_PREKEY
      envelope,
      usedEphemeralKeys: new Set([envelope.prekey.ephemeralKey]),
    }),
    ErrorCode.REPLAYED_INITIAL_MESSAGE,
  );
  await rejectsWithCode(
    acceptInitialMessage({ identityKeyPair: bob.identityKeyPair, signedPrekey: bob.signedPrekey, envelope }),
    ErrorCode.INVALID_ARGUMENT,
  );
});

test('repeated initial messages of the same X3DH run go to the existing session; a replay is a duplicate', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session } = await initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: bundleOf(bob, 1) });
  const m0 = await encryptMessage(session, textToBytes('m0'));
  const m1 = await encryptMessage(m0.session, textToBytes('m1'));
  // m1 arrives first and founds the session; m0 must then decrypt through it, not found another.
  const accepted = await accept(bob, m1.kind, m1.body);
  assert.equal(bytesToText(accepted.plaintext), 'm1');
  const envelope = parseEnvelope(m0.kind, m0.body);
  assert.ok(isInitialMessageForSession(accepted.session, envelope));
  const { session: bobSession, plaintext } = await decryptMessage(accepted.session, envelope);
  assert.equal(bytesToText(plaintext), 'm0');
  await rejectsWithCode(decryptMessage(bobSession, envelope), ErrorCode.DUPLICATE_MESSAGE);
  await rejectsWithCode(decryptMessage(bobSession, parseEnvelope(m1.kind, m1.body)), ErrorCode.DUPLICATE_MESSAGE);
});

test('a prekey message of another X3DH run does not belong to the session', async () => {
  const first = await firstMessage();
  const accepted = await accept(first.bob, first.kind, first.body);
  const other = await firstMessage({ oneTimePrekeyId: 2, text: 'another run' });
  const envelope = parseEnvelope(other.kind, other.body);
  assert.equal(isInitialMessageForSession(accepted.session, envelope), false);
  assert.equal(isInitialMessageForSession(other.aliceSession, envelope), false, 'initiators never accept prekey messages');
  assert.equal(isInitialMessageForSession(null, envelope), false);
  await rejectsWithCode(decryptMessage(accepted.session, envelope), ErrorCode.SESSION_MISMATCH);
  await rejectsWithCode(decryptMessage(null, envelope), ErrorCode.SESSION_MISMATCH);
});

test('every single-byte change of an initial message fails without consuming the one-time prekey', async () => {
  const { bob, kind, body } = await firstMessage();
  const bytes = fromBase64(body);
  for (let position = 0; position < bytes.length; position += 1) {
    const tampered = Uint8Array.from(bytes);
    tampered[position] ^= 0x01;
    await rejectsWithProtocolError(() => accept(bob, kind, toBase64(tampered)));
    assert.equal(bob.oneTimePrekeys.size, 5, `byte ${position}: a failed attempt must not spend a prekey`);
    assert.equal(bob.usedEphemeralKeys.size, 0);
  }
  const accepted = await accept(bob, kind, body);
  assert.equal(accepted.consumedOneTimePrekeyId, 1);
  assert.equal(bob.oneTimePrekeys.size, 4);
});

test('missing or mismatched prekeys are reported by code', async () => {
  const { bob, kind, body } = await firstMessage();
  const envelope = parseEnvelope(kind, body);
  const base = { identityKeyPair: bob.identityKeyPair, envelope, usedEphemeralKeys: new Set() };
  await rejectsWithCode(acceptInitialMessage({ ...base, signedPrekey: null }), ErrorCode.UNKNOWN_SIGNED_PREKEY);
  await rejectsWithCode(
    acceptInitialMessage({ ...base, signedPrekey: { ...bob.signedPrekey, keyId: 2 } }),
    ErrorCode.UNKNOWN_SIGNED_PREKEY,
  );
  await rejectsWithCode(
    acceptInitialMessage({ ...base, signedPrekey: bob.signedPrekey, oneTimePrekey: null }),
    ErrorCode.UNKNOWN_ONE_TIME_PREKEY,
  );
  await rejectsWithCode(
    acceptInitialMessage({ ...base, signedPrekey: bob.signedPrekey, oneTimePrekey: bob.oneTimePrekeys.get(2) }),
    ErrorCode.UNKNOWN_ONE_TIME_PREKEY,
  );

  const withoutOpk = await firstMessage({ oneTimePrekeyId: null });
  const bare = parseEnvelope(withoutOpk.kind, withoutOpk.body);
  const bareBase = { identityKeyPair: withoutOpk.bob.identityKeyPair, signedPrekey: withoutOpk.bob.signedPrekey, envelope: bare, usedEphemeralKeys: new Set() };
  await rejectsWithCode(acceptInitialMessage({ ...bareBase, requireOneTimePrekey: true }), ErrorCode.ONE_TIME_PREKEY_REQUIRED);
  await rejectsWithCode(
    acceptInitialMessage({ ...bareBase, oneTimePrekey: withoutOpk.bob.oneTimePrekeys.get(1) }),
    ErrorCode.INVALID_ARGUMENT,
  );
  await rejectsWithCode(
    acceptInitialMessage({ ...bareBase, envelope: { ...bare, kind: 'message', prekey: null } }),
    ErrorCode.INVALID_ARGUMENT,
  );
});

test('plaintext limits: empty and MAX_PLAINTEXT_BYTES fit the server body limit, one more byte is refused', async () => {
  const { aliceSession } = await firstMessage();
  const empty = await encryptMessage(aliceSession, new Uint8Array(0));
  assert.equal(parseEnvelope(empty.kind, empty.body).message.ciphertext.length, 16 + 32);
  const largest = await encryptMessage(aliceSession, new Uint8Array(MAX_PLAINTEXT_BYTES));
  assert.ok(largest.body.length <= MAX_BODY_LENGTH);
  await rejectsWithCode(encryptMessage(aliceSession, new Uint8Array(MAX_PLAINTEXT_BYTES + 1)), ErrorCode.PLAINTEXT_TOO_LARGE);
  await rejectsWithCode(encryptMessage(aliceSession, 'text'), ErrorCode.INVALID_ARGUMENT);
});

test('the largest message round-trips', async () => {
  const { bob, kind, aliceSession } = await firstMessage();
  const plaintext = new Uint8Array(MAX_PLAINTEXT_BYTES).map((_, i) => i % 251);
  const out = await encryptMessage(aliceSession, plaintext);
  assert.equal(out.kind, kind);
  const accepted = await accept(bob, out.kind, out.body);
  assert.deepEqual(accepted.plaintext, plaintext);
});
