import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ErrorCode,
  acceptInitialMessage,
  bytesToText,
  encryptMessage,
  fromBase64,
  generateIdentityKeyPair,
  initiateSession,
  parseBundle,
  parseEnvelope,
  textToBytes,
  toBase64,
} from '../../static/js/crypto/index.js';
import { ed25519PublicKeyToX25519 } from '../../static/js/crypto/primitives.js';
import { rejectsWithCode, throwsWithCode } from './assertions.mjs';
import { accept, bundleOf, makeParty, scriptedRandom } from './helpers.mjs';

test('initiator with a one-time prekey: the responder derives the same session and spends the prekey', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session, remoteIdentityKey } = await initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: bundleOf(bob, 3) });
  assert.equal(remoteIdentityKey, bob.identityKeyPair.publicKey);
  assert.deepEqual(session.pendingPrekey, { signedPrekeyId: 1, oneTimePrekeyId: 3 });
  assert.equal(
    session.associatedData,
    toBase64(new Uint8Array([...fromBase64(alice.identityKeyPair.publicKey), ...fromBase64(bob.identityKeyPair.publicKey)])),
    'AD = IK_A || IK_B',
  );

  const first = await encryptMessage(session, textToBytes('hi'));
  const envelope = parseEnvelope(first.kind, first.body);
  assert.equal(envelope.prekey.oneTimePrekeyId, 3);
  assert.equal(envelope.prekey.signedPrekeyId, 1);
  assert.equal(envelope.prekey.identityKey, alice.identityKeyPair.publicKey);
  assert.equal(envelope.prekey.ephemeralKey, session.initialEphemeralKey);

  const accepted = await accept(bob, first.kind, first.body);
  assert.equal(bytesToText(accepted.plaintext), 'hi');
  assert.equal(accepted.consumedOneTimePrekeyId, 3);
  assert.equal(accepted.remoteIdentityKey, alice.identityKeyPair.publicKey);
  assert.equal(accepted.session.associatedData, session.associatedData);
  assert.ok(!bob.oneTimePrekeys.has(3));
});

test('initiator without a one-time prekey (bundle exhausted) still agrees on a session', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session } = await initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: bundleOf(bob, null) });
  assert.equal(session.pendingPrekey.oneTimePrekeyId, null);
  const first = await encryptMessage(session, textToBytes('no opk'));
  const accepted = await accept(bob, first.kind, first.body);
  assert.equal(bytesToText(accepted.plaintext), 'no opk');
  assert.equal(accepted.consumedOneTimePrekeyId, null);
  assert.equal(bob.oneTimePrekeys.size, 5);
});

test('DH4 is part of the key: the same message with a different one-time prekey does not decrypt', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session } = await initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: bundleOf(bob, 2) });
  const first = await encryptMessage(session, textToBytes('x'));
  const envelope = parseEnvelope(first.kind, first.body);
  await rejectsWithCode(
    acceptInitialMessage({
      identityKeyPair: bob.identityKeyPair,
      signedPrekey: bob.signedPrekey,
      oneTimePrekey: { ...bob.oneTimePrekeys.get(4), keyId: 2 },
      envelope,
      usedEphemeralKeys: new Set(),
    }),
    ErrorCode.AUTHENTICATION_FAILED,
  );
});

test('a bad signed prekey signature aborts X3DH before any key is generated or DH computed', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const bundle = bundleOf(bob, 1);
  const signature = fromBase64(bundle.signed_prekey.signature);
  signature[0] ^= 1;
  bundle.signed_prekey.signature = toBase64(signature);
  // The scripted source has no values: drawing the ephemeral key would throw a plain Error instead.
  await rejectsWithCode(
    initiateSession({ identityKeyPair: alice.identityKeyPair, bundle, random: scriptedRandom() }),
    ErrorCode.INVALID_SIGNATURE,
  );
});

test('a substituted identity key or signed prekey is caught by the signature (server key substitution)', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const mallory = makeParty('mallory');
  const withMalloryIdentity = { ...bundleOf(bob, 1), identity_key: mallory.identityKeyPair.publicKey };
  await rejectsWithCode(
    initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: withMalloryIdentity }),
    ErrorCode.INVALID_SIGNATURE,
  );
  const withMallorySignedPrekey = bundleOf(bob, 1);
  withMallorySignedPrekey.signed_prekey.public_key = mallory.signedPrekey.publicKey;
  await rejectsWithCode(
    initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: withMallorySignedPrekey }),
    ErrorCode.INVALID_SIGNATURE,
  );
});

test('malformed bundles are rejected with INVALID_BUNDLE', () => {
  const bob = makeParty('bob');
  const good = bundleOf(bob, 1);
  const variants = [
    null,
    'bundle',
    {},
    { ...good, identity_key: undefined },
    { ...good, identity_key: good.identity_key.slice(0, -4) },
    { ...good, identity_key: ` ${good.identity_key}` },
    { ...good, signed_prekey: { ...good.signed_prekey, key_id: 0 } },
    { ...good, signed_prekey: { ...good.signed_prekey, key_id: '1' } },
    { ...good, signed_prekey: { ...good.signed_prekey, signature: good.signed_prekey.public_key } },
    { ...good, one_time_prekey: 'x' },
    { ...good, one_time_prekey: { key_id: 1 } },
    { ...good, one_time_prekey: { ...good.one_time_prekey, key_id: -5 } },
  ];
  for (const bundle of variants) throwsWithCode(() => parseBundle(bundle), ErrorCode.INVALID_BUNDLE);
  assert.equal(parseBundle({ ...good, one_time_prekey: null }).oneTimePrekey, null);
  assert.equal(parseBundle({ ...good, extra: 'ignored' }).signedPrekey.keyId, 1);
});

test('small-order and non-canonical identity keys cannot enter Diffie-Hellman', () => {
  const smallOrder = new Uint8Array(32);
  smallOrder[0] = 1; // the identity point
  throwsWithCode(() => ed25519PublicKeyToX25519(smallOrder), ErrorCode.INVALID_KEY);
  throwsWithCode(() => ed25519PublicKeyToX25519(new Uint8Array(32).fill(0xff)), ErrorCode.INVALID_KEY);
});

test('an initial message with a low-order ephemeral key is rejected and consumes nothing', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const { session } = await initiateSession({ identityKeyPair: alice.identityKeyPair, bundle: bundleOf(bob, 1) });
  const first = await encryptMessage(session, textToBytes('x'));
  const bytes = fromBase64(first.body);
  bytes.fill(0, 34, 66); // EK_A := 0, a low-order point
  await rejectsWithCode(accept(bob, first.kind, toBase64(bytes)), ErrorCode.INVALID_KEY);
  assert.ok(bob.oneTimePrekeys.has(1));
  assert.equal(bob.usedEphemeralKeys.size, 0);
});

test('an identity key pair whose halves do not match is refused', async () => {
  const alice = makeParty('alice');
  const bob = makeParty('bob');
  const mixed = { publicKey: alice.identityKeyPair.publicKey, privateKey: generateIdentityKeyPair().privateKey };
  await rejectsWithCode(initiateSession({ identityKeyPair: mixed, bundle: bundleOf(bob, 1) }), ErrorCode.INVALID_ARGUMENT);
});
