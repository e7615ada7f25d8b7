#!/usr/bin/env node
/**
 * Throughput of the protocol code (static/js/crypto) in Node, next to the raw cost of the primitives it
 * is built from, measured in the same run, so the overhead of our code shows as a ratio:
 *
 *   ratio = measured time per operation / sum of the primitive calls that operation cannot avoid
 *
 * A ratio near 1 means the time goes into cryptography; what exceeds it is our code (state decoding and
 * encoding, envelope parsing, copies, base64). Each measurement runs for a fixed time budget, so the
 * whole run takes a few seconds:   node bench/crypto_bench.mjs [--budget-ms=300]
 */
import {
  acceptInitialMessage,
  decryptMessage,
  encryptMessage,
  generateIdentityKeyPair,
  generateOneTimePrekeys,
  generateSignedPrekey,
  initiateSession,
  parseEnvelope,
  publicOneTimePrekey,
  publicSignedPrekey,
} from '../static/js/crypto/index.js';
import {
  aes256CbcDecrypt,
  aes256CbcEncrypt,
  ed25519PublicKeyToX25519,
  ed25519SeedToX25519,
  ed25519Sign,
  ed25519Verify,
  hkdfSha256,
  hmacSha256,
  x25519PublicKey,
  x25519SharedSecret,
} from '../static/js/crypto/primitives.js';

const budgetArgument = process.argv.find((argument) => argument.startsWith('--budget-ms='));
const BUDGET_MS = budgetArgument ? Number(budgetArgument.split('=')[1]) : 300;
const MESSAGE = new Uint8Array(1024).map((_, i) => i & 0xff);

/**
 * Every operation is timed in ROUNDS short batches, interleaved with all the others (round 1 of every
 * operation, then round 2, ...), and its fastest batch counts. Interleaving makes the primitives and the
 * protocol operations see the same machine load, so their ratio stays meaningful on a shared machine;
 * the minimum is the best estimate of the intrinsic cost.
 */
const ROUNDS = 5;
const operations = new Map(); // name -> { run, best }

function register(name, run) {
  operations.set(name, { run, best: Infinity });
}

async function timeBatch(run, milliseconds) {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < milliseconds || calls < 2) {
    await run();
    calls += 1;
    now = performance.now();
  }
  return ((now - start) * 1000) / calls;
}

async function runAll() {
  for (const operation of operations.values()) await timeBatch(operation.run, BUDGET_MS / 10); // warm-up
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const operation of operations.values()) {
      operation.best = Math.min(operation.best, await timeBatch(operation.run, BUDGET_MS / ROUNDS));
    }
  }
  return Object.fromEntries([...operations].map(([name, { best }]) => [name, best]));
}

const rows = [];
function report(name, microseconds, extra = '') {
  rows.push([name, `${(1e6 / microseconds).toFixed(0)}/s`, `${microseconds.toFixed(1)} us`, extra]);
}

// ---------------------------------------------------------------------------------------------------
// Set-up

const key = new Uint8Array(32).fill(3);
const iv = new Uint8Array(16).fill(4);
const peer = x25519PublicKey(new Uint8Array(32).fill(5));
const identity = generateIdentityKeyPair();
const identitySeed = Buffer.from(identity.privateKey, 'base64');
const identityPublic = Buffer.from(identity.publicKey, 'base64');
const signature = ed25519Sign(identitySeed, peer);
const sealedBlock = await aes256CbcEncrypt(key, iv, MESSAGE);
// What the message HMAC covers: per-message AD (64 + 48 bytes) || 1040-byte ciphertext.
const authenticatedBytes = new Uint8Array(64 + 48 + sealedBlock.length);

const bob = generateIdentityKeyPair();
const bobSignedPrekey = generateSignedPrekey(bob, 1);
const { prekeys } = generateOneTimePrekeys(1, 1);
const bundle = {
  identity_key: bob.publicKey,
  signed_prekey: publicSignedPrekey(bobSignedPrekey),
  one_time_prekey: publicOneTimePrekey(prekeys[0]),
};

/** Both sides of X3DH with a one-time prekey, and the first 1 KiB message. */
async function handshake() {
  const { session } = await initiateSession({ identityKeyPair: identity, bundle });
  const first = await encryptMessage(session, MESSAGE);
  const accepted = await acceptInitialMessage({
    identityKeyPair: bob,
    signedPrekey: bobSignedPrekey,
    oneTimePrekey: prekeys[0],
    envelope: parseEnvelope(first.kind, first.body),
    usedEphemeralKeys: new Set(),
  });
  return { aliceSession: first.session, bobSession: accepted.session };
}

// A conversation where both have sent once, for the ratchet measurements.
let { aliceSession, bobSession } = await handshake();
{
  const reply = await encryptMessage(bobSession, MESSAGE);
  bobSession = reply.session;
  aliceSession = (await decryptMessage(aliceSession, parseEnvelope(reply.kind, reply.body))).session;
}
let turn = 0;

// ---------------------------------------------------------------------------------------------------
// Operations

register('dh', () => x25519SharedSecret(key, peer));
register('keygen', () => x25519PublicKey(key));
register('verify', () => ed25519Verify(identityPublic, peer, signature));
register('edToX', () => ed25519PublicKeyToX25519(identityPublic));
register('seedToX', () => ed25519SeedToX25519(identitySeed));
register('hkdf', () => hkdfSha256(key, key, key, 80));
register('hmacSmall', () => hmacSha256(key, Uint8Array.of(1)));
register('hmacMessage', () => hmacSha256(key, authenticatedBytes));
register('aesEncrypt', () => aes256CbcEncrypt(key, iv, MESSAGE));
register('aesDecrypt', () => aes256CbcDecrypt(key, iv, sealedBlock));
register('handshake', handshake);
register('sameDirection', async () => {
  const out = await encryptMessage(aliceSession, MESSAGE);
  aliceSession = out.session;
  bobSession = (await decryptMessage(bobSession, parseEnvelope(out.kind, out.body))).session;
});
register('alternating', async () => {
  const aliceSends = turn % 2 === 0;
  turn += 1;
  const out = await encryptMessage(aliceSends ? aliceSession : bobSession, MESSAGE);
  const received = await decryptMessage(aliceSends ? bobSession : aliceSession, parseEnvelope(out.kind, out.body));
  if (aliceSends) [aliceSession, bobSession] = [out.session, received.session];
  else [bobSession, aliceSession] = [out.session, received.session];
});

const t = await runAll();

// ---------------------------------------------------------------------------------------------------
// Report

// Per message: 2 chain steps (2 small HMACs each), 2 message-key HKDFs, AES + HMAC seal and open.
const sealPlusOpen = t.aesEncrypt + t.aesDecrypt + 2 * t.hmacMessage;
const symmetricFloor = 4 * t.hmacSmall + 2 * t.hkdf + sealPlusOpen;
// A DH ratchet step on receipt: 2 DH, 1 key generation, 2 root-chain HKDFs.
const dhStepFloor = 2 * t.dh + t.keygen + 2 * t.hkdf;
// X3DH both sides with a one-time prekey, and the first 1 KiB message:
// initiator: verify, Ed->X of IK_B, seed->X of IK_A, EK keygen, 4 DH, HKDF, ratchet keygen + DH + HKDF;
// responder: Ed->X of IK_A, seed->X of IK_B, 4 DH, HKDF, then a DH ratchet step to decrypt.
const handshakeFloor =
  t.verify + 2 * t.edToX + 2 * t.seedToX + 2 * t.keygen + 9 * t.dh + 3 * t.hkdf + dhStepFloor + symmetricFloor;
const ratio = (measured, floor) => `ratio ${(measured / floor).toFixed(2)}`;

report('X25519 DH (noble)', t.dh);
report('X25519 key generation (noble)', t.keygen);
report('Ed25519 verify, strict (noble)', t.verify);
report('Ed25519 -> X25519 public key (noble)', t.edToX);
report('HKDF-SHA-256, 80 bytes out (noble)', t.hkdf);
report('HMAC-SHA-256, 1 byte (noble)', t.hmacSmall);
report('HMAC-SHA-256, AD + 1 KiB (noble)', t.hmacMessage);
report('AES-256-CBC encrypt 1 KiB (WebCrypto)', t.aesEncrypt);
report('AES-256-CBC decrypt 1 KiB (WebCrypto)', t.aesDecrypt);
report('= AES-CBC + HMAC seal and open, 1 KiB', sealPlusOpen, 'sum of the rows above');
report('X3DH handshake, both sides + first 1 KiB message', t.handshake, ratio(t.handshake, handshakeFloor));
report('Double Ratchet encrypt+decrypt 1 KiB, same direction', t.sameDirection, ratio(t.sameDirection, symmetricFloor));
report(
  'Double Ratchet encrypt+decrypt 1 KiB, alternating (DH step each)',
  t.alternating,
  ratio(t.alternating, symmetricFloor + dhStepFloor),
);

const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column].length)));
process.stdout.write(`crypto_bench (Node ${process.version}, ~${BUDGET_MS} ms per row, fastest of ${ROUNDS} interleaved batches)\n`);
for (const row of rows) {
  process.stdout.write(
    `${row[0].padEnd(widths[0])}  ${row[1].padStart(widths[1])}  ${row[2].padStart(widths[2])}  ${row[3]}\n`,
  );
}
process.stdout.write(
  'ratio = measured / sum of the unavoidable primitive calls (see the comments in bench/crypto_bench.mjs)\n',
);
