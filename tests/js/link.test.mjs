/**
 * Device linking (docs/PROTOCOL.md section 18): known-answer vectors, link-code parsing, and every way
 * the offer can be refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ErrorCode,
  createLinkRequest,
  fromBase64,
  openLinkOffer,
  parseLinkCode,
  sealIdentityForLink,
  toBase64,
} from '../../static/js/crypto/index.js';
import { rejectsWithCode, throwsWithCode } from './assertions.mjs';
import { computeLinkVectors, readLinkVectors } from './link_vectors.mjs';
import { hex, scriptedRandom, seededRandom } from './helpers.mjs';

const vectors = readLinkVectors();
const [basic] = vectors.cases;
const b64 = (text) => fromBase64(text);
const LINK_ID = basic.inputs.link_id;

/** The five low-order X25519 points in every encoding that decodes to them (PROTOCOL.md section 1). */
function lowOrderEncodings() {
  const p = 2n ** 255n - 19n;
  const topBit = 2n ** 255n;
  const littleEndian = (n) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  const points = [
    0n,
    1n,
    p - 1n,
    325606250916557431795983626356110631294008115727848805560023387167927233504n,
    39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  ];
  return [...points, ...points.map((u) => u + topBit), p, p + 1n].map(littleEndian);
}

/** A complete, honest run with real randomness: N's request, E's offer, N's opening. */
async function honestRun(seed = seededRandom('link seed')(32)) {
  const request = createLinkRequest(LINK_ID);
  const offer = await sealIdentityForLink(seed, request.code);
  const { linkId, publicKey } = parseLinkCode(request.code);
  return { seed, request, offer, linkId, publicKey };
}

function openerFor({ request, linkId, publicKey }, ephemeralKey, ciphertext) {
  return openLinkOffer(request.ephemeral.privateKey, linkId, publicKey, ephemeralKey, ciphertext);
}

test('known-answer vectors: fixed link id, keys and seed give the stored code, box and verification code', async () => {
  const computed = await computeLinkVectors(vectors.cases.map(({ name, inputs }) => ({ name, inputs })));
  assert.deepEqual(computed, { cases: vectors.cases, parse: vectors.parse });
});

test('the vectors pin a zero-padded verification code and an 80-byte box', () => {
  for (const { outputs } of vectors.cases) {
    assert.match(outputs.verification_code, /^\d{3} \d{3}$/);
    assert.equal(b64(outputs.box).length, 80);
  }
  assert.ok(vectors.cases.some(({ outputs }) => outputs.verification_code.startsWith('0')));
});

test('the new device opens the stored box after computing the same verification code', async () => {
  for (const { inputs, outputs } of vectors.cases) {
    const { linkId, publicKey } = parseLinkCode(outputs.link_code);
    const opening = openLinkOffer(
      Buffer.from(inputs.new_device_ephemeral_private, 'hex'),
      linkId,
      publicKey,
      b64(outputs.existing_device_ephemeral_public),
      b64(outputs.box),
    );
    assert.equal(opening.verificationCode, outputs.verification_code);
    assert.equal(hex(await opening.open()), inputs.identity_seed);
  }
});

test('link codes: whitespace and the QR URL are accepted, to exactly the same bytes', () => {
  for (const { text, link_id: linkId, public_key: publicKey } of vectors.parse.accepted) {
    const parsed = parseLinkCode(text);
    assert.deepEqual([toBase64(parsed.linkId), toBase64(parsed.publicKey)], [linkId, publicKey], JSON.stringify(text));
  }
});

test('link codes: anything else is invalid_link_code', () => {
  for (const { why, text } of vectors.parse.rejected) {
    assert.throws(
      () => parseLinkCode(text),
      (error) => error.code === ErrorCode.INVALID_LINK_CODE,
      why,
    );
  }
});

test('a link code that is not a string is a caller error', () => {
  for (const value of [undefined, null, 42, new Uint8Array(4), { code: basic.outputs.link_code }]) {
    throwsWithCode(() => parseLinkCode(value), ErrorCode.INVALID_ARGUMENT);
  }
});

test('createLinkRequest validates the server link id and draws exactly one key', () => {
  for (const linkId of ['', 'Y/nb6pwRz1phj9eXX5Kzsw', 'Y/nb6pwRz1phj9eXX5KzsB==', toBase64(new Uint8Array(15)), 16, null]) {
    throwsWithCode(() => createLinkRequest(linkId), ErrorCode.INVALID_ARGUMENT);
  }
  const random = scriptedRandom(basic.inputs.new_device_ephemeral_private);
  const request = createLinkRequest(LINK_ID, { random });
  assert.equal(request.code, basic.outputs.link_code);
  assert.equal(hex(request.ephemeral.privateKey), basic.inputs.new_device_ephemeral_private);
  assert.throws(() => random(32), /no more values/);
});

test('an honest link: both devices show the same code and the new device gets the seed', async () => {
  const run = await honestRun();
  assert.deepEqual(run.offer.linkId, run.linkId);
  const opening = openerFor(run, run.offer.ephemeralKey, run.offer.ciphertext);
  assert.equal(opening.verificationCode, run.offer.verificationCode);
  assert.deepEqual(await opening.open(), run.seed);
});

test('sealing reads the code from the QR URL too, and modifies neither the seed nor the code', async () => {
  const seed = seededRandom('link seed')(32);
  const copy = Uint8Array.from(seed);
  const request = createLinkRequest(LINK_ID);
  const offer = await sealIdentityForLink(seed, ` https://messenger.example/#link=${request.code}\n`);
  assert.deepEqual(seed, copy);
  const { linkId, publicKey } = parseLinkCode(request.code);
  const opening = openLinkOffer(request.ephemeral.privateKey, linkId, publicKey, offer.ephemeralKey, offer.ciphertext);
  assert.deepEqual(await opening.open(), seed);
});

test('a tampered box is authentication_failed (the code is still shown, since it does not depend on the box)', async () => {
  const run = await honestRun();
  const { ciphertext } = run.offer;
  const tampered = [
    Uint8Array.from(ciphertext, (byte, i) => (i === 0 ? byte ^ 1 : byte)),
    Uint8Array.from(ciphertext, (byte, i) => (i === 47 ? byte ^ 0x80 : byte)),
    Uint8Array.from(ciphertext, (byte, i) => (i === ciphertext.length - 1 ? byte ^ 1 : byte)),
    ciphertext.subarray(0, 64),
    ciphertext.subarray(16),
    new Uint8Array([...ciphertext, 0]),
    new Uint8Array(0),
  ];
  for (const box of tampered) {
    const opening = openerFor(run, run.offer.ephemeralKey, box);
    assert.equal(opening.verificationCode, run.offer.verificationCode);
    await rejectsWithCode(opening.open(), ErrorCode.AUTHENTICATION_FAILED);
  }
});

test('a box for another e_N, or read with another link id, gives another code and does not open', async () => {
  const run = await honestRun();
  const other = createLinkRequest(LINK_ID);
  const wrongKey = openLinkOffer(
    other.ephemeral.privateKey,
    run.linkId,
    other.ephemeral.publicKey,
    run.offer.ephemeralKey,
    run.offer.ciphertext,
  );
  assert.notEqual(wrongKey.verificationCode, run.offer.verificationCode);
  await rejectsWithCode(wrongKey.open(), ErrorCode.AUTHENTICATION_FAILED);

  const otherLinkId = Uint8Array.from(run.linkId, (byte, i) => (i === 15 ? byte ^ 1 : byte));
  const wrongLink = openLinkOffer(
    run.request.ephemeral.privateKey,
    otherLinkId,
    run.publicKey,
    run.offer.ephemeralKey,
    run.offer.ciphertext,
  );
  assert.notEqual(wrongLink.verificationCode, run.offer.verificationCode);
  await rejectsWithCode(wrongLink.open(), ErrorCode.AUTHENTICATION_FAILED);
});

test('a server that answers with its own e_E and box makes the new device show a different code', async () => {
  const run = await honestRun();
  const forged = await sealIdentityForLink(seededRandom('server seed')(32), run.request.code);
  const opening = openerFor(run, forged.ephemeralKey, forged.ciphertext);
  // The box opens (the server made it for N's real key): only the code comparison catches this.
  assert.equal(opening.verificationCode, forged.verificationCode);
  assert.notEqual(opening.verificationCode, run.offer.verificationCode);
  // The genuine box under the server's e_E does not open.
  await rejectsWithCode(openerFor(run, forged.ephemeralKey, run.offer.ciphertext).open(), ErrorCode.AUTHENTICATION_FAILED);
});

test('a private key that does not match e_N in the code is a caller error', async () => {
  const run = await honestRun();
  const other = createLinkRequest(LINK_ID);
  throwsWithCode(
    () => openLinkOffer(other.ephemeral.privateKey, run.linkId, run.publicKey, run.offer.ephemeralKey, run.offer.ciphertext),
    ErrorCode.INVALID_ARGUMENT,
  );
});

test('low-order e_N in the code: sealing is invalid_key; low-order e_E in the offer: invalid_key before any code', async () => {
  const seed = seededRandom('link seed')(32);
  const request = createLinkRequest(LINK_ID);
  const { linkId, publicKey } = parseLinkCode(request.code);
  const box = b64(basic.outputs.box);
  for (const key of lowOrderEncodings()) {
    await rejectsWithCode(sealIdentityForLink(seed, `sm-link:1:${LINK_ID}:${toBase64(key)}`), ErrorCode.INVALID_KEY);
    throwsWithCode(() => openLinkOffer(request.ephemeral.privateKey, linkId, publicKey, key, box), ErrorCode.INVALID_KEY);
  }
});

test('an authentic box that is not 0x01 || 32-byte seed is invalid_link_box', async () => {
  for (const { inputs, outputs } of vectors.cases) {
    const { linkId, publicKey } = parseLinkCode(outputs.link_code);
    for (const box of [outputs.box_version_2, outputs.box_short_seed]) {
      const opening = openLinkOffer(
        Buffer.from(inputs.new_device_ephemeral_private, 'hex'),
        linkId,
        publicKey,
        b64(outputs.existing_device_ephemeral_public),
        b64(box),
      );
      assert.equal(opening.verificationCode, outputs.verification_code);
      await rejectsWithCode(opening.open(), ErrorCode.INVALID_LINK_BOX);
    }
  }
});

test('open() works once; after it or after discard() it is a caller error', async () => {
  const run = await honestRun();
  const opening = openerFor(run, run.offer.ephemeralKey, run.offer.ciphertext);
  assert.deepEqual(await opening.open(), run.seed);
  await rejectsWithCode(opening.open(), ErrorCode.INVALID_ARGUMENT);
  const discarded = openerFor(run, run.offer.ephemeralKey, run.offer.ciphertext);
  discarded.discard();
  await rejectsWithCode(discarded.open(), ErrorCode.INVALID_ARGUMENT);
  const failed = openerFor(run, run.offer.ephemeralKey, new Uint8Array(80));
  await rejectsWithCode(failed.open(), ErrorCode.AUTHENTICATION_FAILED);
  await rejectsWithCode(failed.open(), ErrorCode.INVALID_ARGUMENT);
});

test('the offer is read from a copy: changing the caller buffer after openLinkOffer changes nothing', async () => {
  const run = await honestRun();
  const box = Uint8Array.from(run.offer.ciphertext);
  const opening = openerFor(run, run.offer.ephemeralKey, box);
  box.fill(0);
  assert.deepEqual(await opening.open(), run.seed);
});

test('wrong lengths and types are invalid_argument', async () => {
  const run = await honestRun();
  const k = run.request.ephemeral.privateKey;
  const e = run.offer.ephemeralKey;
  const c = run.offer.ciphertext;
  await rejectsWithCode(sealIdentityForLink(new Uint8Array(31), run.request.code), ErrorCode.INVALID_ARGUMENT);
  await rejectsWithCode(sealIdentityForLink(toBase64(run.seed), run.request.code), ErrorCode.INVALID_ARGUMENT);
  for (const args of [
    [k.subarray(1), run.linkId, run.publicKey, e, c],
    [k, run.linkId.subarray(1), run.publicKey, e, c],
    [k, new Uint8Array(17), run.publicKey, e, c],
    [k, run.linkId, run.publicKey.subarray(1), e, c],
    [k, run.linkId, run.publicKey, e.subarray(1), c],
    [k, run.linkId, run.publicKey, new Uint8Array(33), c],
    [k, run.linkId, run.publicKey, e, toBase64(c)],
    [toBase64(k), run.linkId, run.publicKey, e, c],
  ]) {
    throwsWithCode(() => openLinkOffer(...args), ErrorCode.INVALID_ARGUMENT);
  }
});

test('sealing draws exactly one random value, e_E', async () => {
  const random = scriptedRandom(basic.inputs.existing_device_ephemeral_private);
  const offer = await sealIdentityForLink(Buffer.from(basic.inputs.identity_seed, 'hex'), basic.outputs.link_code, {
    random,
  });
  assert.equal(toBase64(offer.ephemeralKey), basic.outputs.existing_device_ephemeral_public);
  assert.equal(toBase64(offer.ciphertext), basic.outputs.box);
  assert.throws(() => random(32), /no more values/);
});
