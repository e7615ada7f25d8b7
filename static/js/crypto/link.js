/**
 * Linking a device (docs/PROTOCOL.md section 18): the existing device E hands the account's identity
 * seed to the new device N through the server, which must not be able to read it.
 *
 *   N: createLinkRequest(linkId)           -> e_N, link code "sm-link:1:<link_id>:<e_N public>"
 *   E: sealIdentityForLink(seed, code)     -> e_E public, box, verification code (shown on E)
 *   N: openLinkOffer(e_N, ..., e_E, box)   -> verification code (shown on N), then open() -> seed
 *
 *   shared = X25519(e_E, e_N)                       (low-order keys rejected: invalid_key)
 *   th     = link_id || e_N public || e_E public    (16 + 32 + 32 bytes)
 *   mk     = HKDF(32 x 0x00, shared, "SecuredMessenger Link v2", 32)
 *   box    = ENCRYPT(mk, 0x01 || seed, th)          (section 5.1, the message encryption)
 *   code   = u32(HKDF(32 x 0x00, shared, "SecuredMessenger Link Verify v2" || th, 4)) mod 10^6
 *
 * Why the two-step open: the server relays e_N and e_E, so it can put its own key in place of either
 * and read or forge the box. It cannot make both devices show the same code with its own key in the
 * middle (one chance in 10^6), so N computes the code first and uses the seed only after the user
 * confirmed that both screens match: openLinkOffer returns the code and an `open()` to call after
 * that confirmation (or `discard()` when the codes differ).
 *
 * Byte arguments and results are Uint8Array; the link id arrives from the server as base64 and the link
 * code is text. Randomness (e_N, e_E) comes from the injectable source of bytes.js, for vectors.
 */
import {
  KEY_LENGTH,
  LINK_BOX_VERSION,
  LINK_CODE_PREFIX,
  LINK_CODE_VERSION,
  LINK_ID_LENGTH,
  LINK_INFO,
  LINK_VERIFY_INFO,
} from './constants.js';
import { concatBytes, equalBytes, fromBase64, readU32be, textToBytes, toBase64, wipe } from './bytes.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { generateX25519KeyPair } from './keys.js';
import { hkdfSha256, x25519PublicKey, x25519SharedSecret } from './primitives.js';
import { decryptWithMessageKey, encryptWithMessageKey } from './ratchet.js';

const ZERO_SALT = new Uint8Array(32);
const LINK_INFO_BYTES = textToBytes(LINK_INFO);
const LINK_VERIFY_INFO_BYTES = textToBytes(LINK_VERIFY_INFO);
/** The box holds the format version byte and the 32-byte Ed25519 identity seed. */
const BOX_PLAINTEXT_LENGTH = 1 + KEY_LENGTH;

/**
 * Surrounding whitespace that parseLinkCode ignores: ASCII only (TAB, LF, FF, CR, SPACE, the WHATWG
 * "ASCII whitespace"), spelled out so that the Python client strips exactly the same characters.
 */
const SURROUNDING_WHITESPACE = /^[\t\n\f\r ]+|[\t\n\f\r ]+$/g;
/** `http(s)://<anything without '#' or whitespace>#link=<code>`: the QR code's URL. */
const LINK_URL = /^[Hh][Tt][Tt][Pp][Ss]?:\/\/[^#\t\n\f\r ]*#link=([^]*)$/;

function requireBytes(value, length, what) {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, `${what} must be ${length} bytes`);
  }
}

function invalidCode(why) {
  return new ProtocolError(ErrorCode.INVALID_LINK_CODE, `not a link code: ${why}`);
}

/**
 * N's first step, once the server opened a link (`POST /api/v1/devices/links`).
 * @param {string} linkId the server's `link_id`: canonical base64 of 16 bytes (else INVALID_ARGUMENT)
 * @param {{random?: import('./bytes.js').RandomSource}} [options]
 * @returns {{ephemeral: {publicKey: Uint8Array, privateKey: Uint8Array}, code: string}} keep
 *   `ephemeral.privateKey` (SECRET) in memory until the offer is opened, then wipe it; show `code`
 */
export function createLinkRequest(linkId, { random } = {}) {
  fromBase64(linkId, { length: LINK_ID_LENGTH, what: 'link id' });
  const ephemeral = generateX25519KeyPair(random);
  return { ephemeral, code: `${LINK_CODE_PREFIX}:${LINK_CODE_VERSION}:${linkId}:${toBase64(ephemeral.publicKey)}` };
}

/**
 * Reads a link code as typed, pasted or scanned: `sm-link:1:<base64 link id>:<base64 e_N public>`, or
 * the QR code's URL `http(s)://.../#link=<code>`, with surrounding ASCII whitespace. Strict: exactly four
 * fields, version 1, canonical base64 of 16 and 32 bytes, no percent-decoding. Anything else is
 * INVALID_LINK_CODE. A low-order key parses; sealing to it fails with INVALID_KEY.
 * @param {string} text
 * @returns {{linkId: Uint8Array, publicKey: Uint8Array}}
 */
export function parseLinkCode(text) {
  if (typeof text !== 'string') throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'link code must be a string');
  let code = text.replace(SURROUNDING_WHITESPACE, '');
  const url = LINK_URL.exec(code);
  if (url) code = url[1];
  const fields = code.split(':');
  if (fields.length !== 4) throw invalidCode('expected four fields separated by ":"');
  const [prefix, version, linkId, publicKey] = fields;
  if (prefix !== LINK_CODE_PREFIX) throw invalidCode(`prefix is not ${LINK_CODE_PREFIX}`);
  if (version !== String(LINK_CODE_VERSION)) throw invalidCode('unsupported link code version');
  const options = { code: ErrorCode.INVALID_LINK_CODE };
  return {
    linkId: fromBase64(linkId, { ...options, length: LINK_ID_LENGTH, what: 'link id' }),
    publicKey: fromBase64(publicKey, { ...options, length: KEY_LENGTH, what: 'link public key' }),
  };
}

/** "012 345": six digits, zero-padded, in two groups of three. */
function formatVerificationCode(value) {
  const digits = String(value).padStart(6, '0');
  return `${digits.slice(0, 3)} ${digits.slice(3)}`;
}

/**
 * The box key and the verification code of one link run, from the DH of the two ephemeral keys.
 * The caller wipes `boxKey`.
 */
function deriveLinkSecrets(privateKey, peerPublicKey, transcript) {
  const shared = x25519SharedSecret(privateKey, peerPublicKey);
  try {
    const boxKey = hkdfSha256(shared, ZERO_SALT, LINK_INFO_BYTES, 32);
    const verify = hkdfSha256(shared, ZERO_SALT, concatBytes(LINK_VERIFY_INFO_BYTES, transcript), 4);
    return { boxKey, verificationCode: formatVerificationCode(readU32be(verify, 0) % 1_000_000) };
  } finally {
    wipe(shared);
  }
}

/**
 * E's step: seals the identity seed for the new device named by the link code. Send `ephemeralKey` and
 * `ciphertext` as the offer; show `verificationCode` to the user.
 * @param {Uint8Array} identitySeed the account's 32-byte Ed25519 identity seed (not modified)
 * @param {string} code the link code (anything parseLinkCode accepts)
 * @param {{random?: import('./bytes.js').RandomSource}} [options]
 * @returns {Promise<{linkId: Uint8Array, ephemeralKey: Uint8Array, ciphertext: Uint8Array, verificationCode: string}>}
 */
export async function sealIdentityForLink(identitySeed, code, { random } = {}) {
  requireBytes(identitySeed, KEY_LENGTH, 'identity seed');
  const { linkId, publicKey: newDeviceKey } = parseLinkCode(code);
  const ephemeral = generateX25519KeyPair(random);
  let boxKey;
  const plaintext = concatBytes(Uint8Array.of(LINK_BOX_VERSION), identitySeed);
  try {
    const transcript = concatBytes(linkId, newDeviceKey, ephemeral.publicKey);
    const secrets = deriveLinkSecrets(ephemeral.privateKey, newDeviceKey, transcript);
    boxKey = secrets.boxKey;
    const ciphertext = await encryptWithMessageKey(boxKey, plaintext, transcript);
    return { linkId, ephemeralKey: ephemeral.publicKey, ciphertext, verificationCode: secrets.verificationCode };
  } finally {
    wipe(ephemeral.privateKey, boxKey, plaintext);
  }
}

/**
 * N's step, when the offer arrived: computes the verification code without touching the box. Show the
 * code; only after the user confirmed that E shows the same one, call `open()`, which checks the tag
 * (AUTHENTICATION_FAILED) and the box format (INVALID_LINK_BOX: first byte not 0x01, or not 33 bytes)
 * and returns the 32-byte identity seed. `open()` and `discard()` each wipe the box key; after either,
 * `open()` is INVALID_ARGUMENT. The caller still checks that the seed's public key is the account's
 * identity key, and wipes `ephemeralPrivateKey` (not kept here).
 * @param {Uint8Array} ephemeralPrivateKey e_N private (32 bytes)
 * @param {Uint8Array} linkId 16 bytes
 * @param {Uint8Array} newDevicePublicKey e_N public (32 bytes), as in the link code
 * @param {Uint8Array} offererPublicKey e_E public (32 bytes) from the offer; low order: INVALID_KEY
 * @param {Uint8Array} ciphertext the offer's box
 * @returns {{verificationCode: string, open: () => Promise<Uint8Array>, discard: () => void}}
 */
export function openLinkOffer(ephemeralPrivateKey, linkId, newDevicePublicKey, offererPublicKey, ciphertext) {
  requireBytes(ephemeralPrivateKey, KEY_LENGTH, 'ephemeral private key');
  requireBytes(linkId, LINK_ID_LENGTH, 'link id');
  requireBytes(newDevicePublicKey, KEY_LENGTH, 'new device public key');
  requireBytes(offererPublicKey, KEY_LENGTH, 'offerer public key');
  if (!(ciphertext instanceof Uint8Array)) throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'ciphertext must be bytes');
  if (!equalBytes(x25519PublicKey(ephemeralPrivateKey), newDevicePublicKey)) {
    throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'new device public key does not match its private key');
  }
  const transcript = concatBytes(linkId, newDevicePublicKey, offererPublicKey);
  const box = Uint8Array.from(ciphertext);
  const { boxKey, verificationCode } = deriveLinkSecrets(ephemeralPrivateKey, offererPublicKey, transcript);
  let spent = false;

  function discard() {
    spent = true;
    wipe(boxKey);
  }

  async function open() {
    if (spent) throw new ProtocolError(ErrorCode.INVALID_ARGUMENT, 'this link offer was already opened or discarded');
    spent = true;
    let plaintext;
    try {
      plaintext = await decryptWithMessageKey(boxKey, box, transcript);
      if (plaintext.length === 0 || plaintext[0] !== LINK_BOX_VERSION) {
        throw new ProtocolError(ErrorCode.INVALID_LINK_BOX, 'link box has an unsupported format version');
      }
      if (plaintext.length !== BOX_PLAINTEXT_LENGTH) {
        throw new ProtocolError(ErrorCode.INVALID_LINK_BOX, `link box must hold ${BOX_PLAINTEXT_LENGTH} bytes`);
      }
      return plaintext.slice(1);
    } finally {
      wipe(boxKey, plaintext);
    }
  }

  return { verificationCode, open, discard };
}
