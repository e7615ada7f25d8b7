/**
 * Known-answer vectors: fixed keys and randomness in, fixed bytes out.
 *
 *   node tests/js/vectors.mjs --write   regenerate tests/js/vectors.json (only after a deliberate change)
 *
 * vectors.test.mjs recomputes the outputs from the stored inputs with the JavaScript implementation;
 * tests/interop/test_vectors.py recomputes the same outputs with the Python libraries (x3dh,
 * doubleratchet, xeddsa), which is what makes these vectors evidence rather than a snapshot.
 *
 * Scenario: Bob has identity key, signed prekey (id 1) and one-time prekey (id 7). Alice initiates with the
 * one-time prekey (EK_A, then her first ratchet key), sends two prekey messages, Bob replies (his first
 * ratchet key drawn on receipt), Alice answers after her DH ratchet step (second ratchet key).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  acceptInitialMessage,
  decryptMessage,
  encryptMessage,
  generateIdentityKeyPair,
  generateOneTimePrekeys,
  generateSignedPrekey,
  identityKeyDigits,
  initiateSession,
  parseEnvelope,
  publicOneTimePrekey,
  publicSignedPrekey,
  safetyNumber,
  textToBytes,
} from '../../static/js/crypto/index.js';
import { ed25519PublicKeyToX25519, ed25519SeedToX25519, x25519SharedSecret } from '../../static/js/crypto/primitives.js';
import { fromHex, hex, scriptedRandom } from './helpers.mjs';

export const VECTORS_PATH = fileURLToPath(new URL('./vectors.json', import.meta.url));

const label = (text) => createHash('sha256').update(`SecuredMessenger test vector: ${text}`).digest('hex');

export const DEFAULT_INPUTS = {
  alice_identity_seed: label('alice identity'),
  bob_identity_seed: label('bob identity'),
  bob_signed_prekey_id: 1,
  bob_signed_prekey_private: label('bob signed prekey'),
  bob_one_time_prekey_id: 7,
  bob_one_time_prekey_private: label('bob one-time prekey'),
  alice_ephemeral_private: label('alice ephemeral'),
  alice_ratchet_private_1: label('alice ratchet 1'),
  bob_ratchet_private_1: label('bob ratchet 1'),
  alice_ratchet_private_2: label('alice ratchet 2'),
  plaintexts: ['Hello Bob, this is Alice.', 'A second message before any reply.', 'Hi Alice!', 'Ratchet step done.'],
};

const b64ToHex = (text) => Buffer.from(text, 'base64').toString('hex');

/** Runs the scenario with scripted randomness and returns every observable output. */
export async function computeVectors(inputs) {
  const alice = generateIdentityKeyPair({ random: scriptedRandom(inputs.alice_identity_seed) });
  const bob = generateIdentityKeyPair({ random: scriptedRandom(inputs.bob_identity_seed) });
  const signedPrekey = generateSignedPrekey(bob, inputs.bob_signed_prekey_id, {
    random: scriptedRandom(inputs.bob_signed_prekey_private),
  });
  const {
    prekeys: [oneTimePrekey],
  } = generateOneTimePrekeys(inputs.bob_one_time_prekey_id, 1, { random: scriptedRandom(inputs.bob_one_time_prekey_private) });
  const bundle = {
    identity_key: bob.publicKey,
    signed_prekey: publicSignedPrekey(signedPrekey),
    one_time_prekey: publicOneTimePrekey(oneTimePrekey),
  };

  // The four DH outputs, computed directly, for debugging another implementation step by step.
  const ek = fromHex(inputs.alice_ephemeral_private);
  const spk = Buffer.from(signedPrekey.publicKey, 'base64');
  const dh = [
    x25519SharedSecret(ed25519SeedToX25519(fromHex(inputs.alice_identity_seed)), spk),
    x25519SharedSecret(ek, ed25519PublicKeyToX25519(Buffer.from(bob.publicKey, 'base64'))),
    x25519SharedSecret(ek, spk),
    x25519SharedSecret(ek, Buffer.from(oneTimePrekey.publicKey, 'base64')),
  ].map(hex);

  let { session: aliceSession } = await initiateSession({
    identityKeyPair: alice,
    bundle,
    random: scriptedRandom(inputs.alice_ephemeral_private, inputs.alice_ratchet_private_1),
  });
  const aliceAfterX3dh = aliceSession.ratchet;
  const [p0, p1, p2, p3] = inputs.plaintexts.map(textToBytes);
  const first = await encryptMessage(aliceSession, p0);
  const second = await encryptMessage(first.session, p1);
  aliceSession = second.session;

  const accepted = await acceptInitialMessage({
    identityKeyPair: bob,
    signedPrekey,
    oneTimePrekey,
    envelope: parseEnvelope(first.kind, first.body),
    usedEphemeralKeys: new Set(),
    random: scriptedRandom(inputs.bob_ratchet_private_1),
  });
  let bobSession = (await decryptMessage(accepted.session, parseEnvelope(second.kind, second.body))).session;
  const reply = await encryptMessage(bobSession, p2);
  bobSession = reply.session;

  const aliceReceived = await decryptMessage(aliceSession, parseEnvelope(reply.kind, reply.body), {
    random: scriptedRandom(inputs.alice_ratchet_private_2),
  });
  const answer = await encryptMessage(aliceReceived.session, p3);

  return {
    alice_identity_key: alice.publicKey,
    bob_identity_key: bob.publicKey,
    bob_signed_prekey: { public_key: signedPrekey.publicKey, signature: signedPrekey.signature },
    bob_one_time_prekey: oneTimePrekey.publicKey,
    x3dh: {
      dh1: dh[0],
      dh2: dh[1],
      dh3: dh[2],
      dh4: dh[3],
      associated_data: b64ToHex(aliceSession.associatedData),
      // After KDF_RK(SK, DH(alice ratchet 1, SPK_B)): the root key and Alice's first sending chain key.
      root_key_after_first_step: b64ToHex(aliceAfterX3dh.rootKey),
      alice_first_sending_chain_key: b64ToHex(aliceAfterX3dh.sendingChainKey),
    },
    messages: [
      { from: 'alice', kind: first.kind, body: first.body },
      { from: 'alice', kind: second.kind, body: second.body },
      { from: 'bob', kind: reply.kind, body: reply.body },
      { from: 'alice', kind: answer.kind, body: answer.body },
    ],
    safety_number: safetyNumber(alice.publicKey, bob.publicKey),
    alice_safety_digits: identityKeyDigits(alice.publicKey),
  };
}

export function readVectors() {
  return JSON.parse(readFileSync(VECTORS_PATH, 'utf8'));
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  const inputs = DEFAULT_INPUTS;
  const vectors = {
    description:
      'Known-answer vectors of docs/PROTOCOL.md. Hex for private inputs and internal values, base64 as on the ' +
      'wire. Generated by tests/js/vectors.mjs; verified by tests/js/vectors.test.mjs (JavaScript) and ' +
      'tests/interop/test_vectors.py (Python libraries).',
    inputs,
    outputs: await computeVectors(inputs),
  };
  writeFileSync(VECTORS_PATH, `${JSON.stringify(vectors, null, 2)}\n`);
  process.stdout.write(`wrote ${VECTORS_PATH}\n`);
}
