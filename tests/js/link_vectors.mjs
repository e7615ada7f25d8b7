/**
 * Known-answer vectors of device linking (docs/PROTOCOL.md section 18): fixed link id, ephemeral keys
 * and identity seed in, fixed link code, box and verification code out; plus link-code texts that must
 * parse (with what they parse to) and texts that must be refused.
 *
 *   node tests/js/link_vectors.mjs --write   regenerate tests/js/link_vectors.json (only after a deliberate change)
 *
 * link.test.mjs recomputes every output with static/js/crypto/link.js; tests/interop/test_link.py
 * recomputes them with messenger_client/protocol/link.py (on `cryptography`), which is what makes these
 * vectors evidence rather than a snapshot.
 *
 * Randomness, in draw order: createLinkRequest draws e_N's private key, sealIdentityForLink draws e_E's.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  createLinkRequest,
  openLinkOffer,
  parseLinkCode,
  sealIdentityForLink,
  toBase64,
} from '../../static/js/crypto/index.js';
import { concatBytes, textToBytes } from '../../static/js/crypto/bytes.js';
import { LINK_INFO } from '../../static/js/crypto/constants.js';
import { ed25519PublicKey, hkdfSha256, x25519SharedSecret } from '../../static/js/crypto/primitives.js';
import { encryptWithMessageKey } from '../../static/js/crypto/ratchet.js';
import { fromHex, hex, scriptedRandom } from './helpers.mjs';

export const LINK_VECTORS_PATH = fileURLToPath(new URL('./link_vectors.json', import.meta.url));

const label = (text) => createHash('sha256').update(`SecuredMessenger test vector: ${text}`).digest();

/** Inputs of one linking run; `variant` changes e_E only (used to find a zero-padded code). */
function caseInputs(variant) {
  return {
    link_id: toBase64(label('link id').subarray(0, 16)),
    identity_seed: label('link identity seed').toString('hex'),
    new_device_ephemeral_private: label('link new device ephemeral').toString('hex'),
    existing_device_ephemeral_private: label(`link existing device ephemeral ${variant}`).toString('hex'),
  };
}

/** Runs one linking with scripted randomness and returns every observable (and some internal) value. */
export async function computeLinkCase(inputs) {
  const seed = fromHex(inputs.identity_seed);
  const request = createLinkRequest(inputs.link_id, {
    random: scriptedRandom(inputs.new_device_ephemeral_private),
  });
  const offer = await sealIdentityForLink(seed, request.code, {
    random: scriptedRandom(inputs.existing_device_ephemeral_private),
  });
  const { linkId, publicKey } = parseLinkCode(request.code);
  const opening = openLinkOffer(request.ephemeral.privateKey, linkId, publicKey, offer.ephemeralKey, offer.ciphertext);
  if (opening.verificationCode !== offer.verificationCode) throw new Error('the two devices disagree on the code');
  if (hex(await opening.open()) !== inputs.identity_seed) throw new Error('the opened seed differs');

  // Internal values, computed directly, for debugging another implementation step by step.
  const shared = x25519SharedSecret(fromHex(inputs.existing_device_ephemeral_private), publicKey);
  const transcript = concatBytes(linkId, publicKey, offer.ephemeralKey);
  const boxKey = hkdfSha256(shared, new Uint8Array(32), textToBytes(LINK_INFO), 32);
  return {
    new_device_ephemeral_public: toBase64(request.ephemeral.publicKey),
    link_code: request.code,
    existing_device_ephemeral_public: toBase64(offer.ephemeralKey),
    shared_secret: hex(shared),
    transcript: hex(transcript),
    box_key: hex(boxKey),
    box: toBase64(offer.ciphertext),
    verification_code: offer.verificationCode,
    identity_key: toBase64(ed25519PublicKey(seed)),
    // Boxes that authenticate under the right key but do not hold 0x01 || 32-byte seed: invalid_link_box.
    box_version_2: toBase64(await encryptWithMessageKey(boxKey, concatBytes(Uint8Array.of(0x02), seed), transcript)),
    box_short_seed: toBase64(
      await encryptWithMessageKey(boxKey, concatBytes(Uint8Array.of(0x01), seed.subarray(0, 31)), transcript),
    ),
  };
}

/** Link-code texts around one valid code: accepted ones (with what they parse to) and refused ones. */
export function parseCases(code) {
  const [, , linkId, key] = code.split(':');
  const parsed = { link_id: linkId, public_key: key };
  const accepted = [
    code,
    `  ${code}\n`,
    `\t\r\n${code} \f`,
    `https://messenger.example/#link=${code}`,
    `http://localhost:8000/#link=${code}`,
    `HTTPS://messenger.example#link=${code}`,
    `https://messenger.example/app/?from=qr#link=${code}\r\n`,
  ].map((text) => ({ text, ...parsed }));
  const unpadded = linkId.replace(/=+$/, '');
  const otherTrailingBits = `${linkId.slice(0, 21)}${linkId[21] === 'B' ? 'C' : 'B'}==`;
  const rejected = [
    ['empty', ''],
    ['whitespace only', ' \n'],
    ['three fields', `sm-link:1:${linkId}`],
    ['five fields', `${code}:extra`],
    ['trailing colon', `${code}:`],
    ['prefix in capitals', code.replace('sm-link', 'SM-LINK')],
    ['other prefix', code.replace('sm-link', 'sm-lnk')],
    ['version 2', code.replace('sm-link:1:', 'sm-link:2:')],
    ['version 01', code.replace('sm-link:1:', 'sm-link:01:')],
    ['empty version', code.replace('sm-link:1:', 'sm-link::')],
    ['link id without padding', `sm-link:1:${unpadded}:${key}`],
    ['link id with non-zero trailing bits', `sm-link:1:${otherTrailingBits}:${key}`],
    ['link id in the URL-safe alphabet', `sm-link:1:${'-_'.repeat(10)}AA==:${key}`],
    ['link id of 15 bytes', `sm-link:1:${toBase64(new Uint8Array(15))}:${key}`],
    ['link id of 17 bytes', `sm-link:1:${toBase64(new Uint8Array(17))}:${key}`],
    ['key of 31 bytes', `sm-link:1:${linkId}:${toBase64(new Uint8Array(31))}`],
    ['key of 33 bytes', `sm-link:1:${linkId}:${toBase64(new Uint8Array(33))}`],
    ['key with a character outside base64', `sm-link:1:${linkId}:${key.slice(0, 10)}*${key.slice(11)}`],
    ['whitespace inside', `sm-link:1: ${linkId}:${key}`],
    ['surrounded by a no-break space', `\u00a0${code}\u00a0`],
    ['preceded by a vertical tab', `\u000b${code}`],
    ['fragment without a URL', `#link=${code}`],
    ['query instead of fragment', `https://messenger.example/?link=${code}`],
    ['fragment name in capitals', `https://messenger.example/#LINK=${code}`],
    ['other URL scheme', `ftp://messenger.example/#link=${code}`],
    ['percent-encoded code', `https://messenger.example/#link=${code.replaceAll(':', '%3A')}`],
    ['something after the code in the fragment', `https://messenger.example/#link=${code}&x=1`],
    ['a URL inside the fragment', `https://a.example/#link=https://b.example/#link=${code}`],
  ].map(([why, text]) => ({ why, text }));
  return { accepted, rejected };
}

/** The whole vector file's content from its inputs. */
export async function computeLinkVectors(cases) {
  const computed = [];
  for (const { name, inputs } of cases) computed.push({ name, inputs, outputs: await computeLinkCase(inputs) });
  return { cases: computed, parse: parseCases(computed[0].outputs.link_code) };
}

export function readLinkVectors() {
  return JSON.parse(readFileSync(LINK_VECTORS_PATH, 'utf8'));
}

/** The first variant (>= 1) whose verification code starts with 0, so zero-padding is pinned too. */
async function zeroPaddedCase() {
  for (let variant = 1; ; variant += 1) {
    const inputs = caseInputs(variant);
    if ((await computeLinkCase(inputs)).verification_code.startsWith('0')) return inputs;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  const cases = [
    { name: 'link', inputs: caseInputs(0) },
    { name: 'verification code with a leading zero', inputs: await zeroPaddedCase() },
  ];
  const vectors = {
    description:
      'Known-answer vectors of device linking (docs/PROTOCOL.md section 18). Hex for private inputs and ' +
      'internal values, base64 and text as on the wire. Generated by tests/js/link_vectors.mjs; verified ' +
      'by tests/js/link.test.mjs (JavaScript) and tests/interop/test_link.py (Python).',
    ...(await computeLinkVectors(cases)),
  };
  writeFileSync(LINK_VECTORS_PATH, `${JSON.stringify(vectors, null, 2)}\n`);
  process.stdout.write(`wrote ${LINK_VECTORS_PATH}\n`);
}
