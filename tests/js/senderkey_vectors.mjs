/**
 * Known-answer vectors of sender keys (docs/PROTOCOL.md section 22): a sender key made from fixed draws,
 * its distribution, three messages (the second delivered last, so its key is a skipped one), then a new
 * sender key whose distribution moves the first one to "previous", and a message on it.
 *
 *   node tests/js/senderkey_vectors.mjs --write   regenerate tests/js/senderkey_vectors.json
 *   (only after a deliberate change)
 *
 * senderkey.test.mjs recomputes every output with static/js/crypto/senderkey.js; tests/interop/
 * test_senderkey.py recomputes them with messenger_client/protocol/senderkey.py from the same draws (same
 * bodies, same states and records as JSON) and decrypts these bodies, which is what makes the vectors
 * evidence rather than a snapshot.
 *
 * Randomness, in draw order: createSenderKey draws CK, then SIG's seed.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  createSenderKey,
  decryptGroupMessage,
  encodeGroupSettings,
  encodeGroupText,
  encryptGroupMessage,
  parseSenderKeyDistribution,
  receivedSenderKeys,
  senderKeyDistribution,
  toBase64,
} from '../../static/js/crypto/index.js';
import { ed25519PublicKey } from '../../static/js/crypto/primitives.js';
import { fromHex, hex, scriptedRandom } from './helpers.mjs';

export const SENDER_KEY_VECTORS_PATH = fileURLToPath(new URL('./senderkey_vectors.json', import.meta.url));

const label = (text) => createHash('sha256').update(`SecuredMessenger test vector: ${text}`).digest();

/** The group id as the server writes it: a version-4 UUID made from a label. */
function groupIdFromLabel(text) {
  const bytes = label(text).subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const digits = bytes.toString('hex');
  return `${digits.slice(0, 8)}-${digits.slice(8, 12)}-${digits.slice(12, 16)}-${digits.slice(16, 20)}-${digits.slice(20)}`;
}

export function senderKeyInputs() {
  return {
    group_id: groupIdFromLabel('sender key group id'),
    sender_identity_seed: label('sender key sender identity').toString('hex'),
    sender_device: 3,
    first_key_draws: [label('sender key 1 chain key').toString('hex'), label('sender key 1 signing seed').toString('hex')],
    second_key_draws: [label('sender key 2 chain key').toString('hex'), label('sender key 2 signing seed').toString('hex')],
    // Plaintexts in hex (type byte first): a text, the group's settings, a text; then one on the new key.
    messages: [
      hex(encodeGroupText('Hello, group')),
      hex(encodeGroupSettings({ name: 'Ünïcödé "group" 🔐' })),
      hex(encodeGroupText('third message')),
    ],
    second_key_message: hex(encodeGroupText('after the new sender key')),
    // Message numbers in the order the receiver gets them: 1 arrives last (a stored skipped key).
    delivery_order: [0, 2, 1],
  };
}

/** Makes, uses and receives the two sender keys; returns every observable value and the JSON records. */
export async function computeSenderKeyVectors(inputs) {
  const { group_id: groupId, sender_device: senderDevice } = inputs;
  const senderIdentityKey = toBase64(ed25519PublicKey(fromHex(inputs.sender_identity_seed)));
  const labels = { groupId, senderIdentityKey, senderDevice };

  let state = createSenderKey({ random: scriptedRandom(...inputs.first_key_draws) });
  const created = state;
  const distribution = senderKeyDistribution(state, groupId);
  const messages = [];
  for (const plaintext of inputs.messages) {
    const result = await encryptGroupMessage(state, { ...labels, plaintext: fromHex(plaintext) });
    state = result.state;
    messages.push({ body: result.body, state_after: state });
  }

  let record = receivedSenderKeys(null, parseSenderKeyDistribution(distribution, groupId));
  const receptions = [{ step: 'distribution 1', record }];
  for (const number of inputs.delivery_order) {
    const result = await decryptGroupMessage(record, { ...labels, body: messages[number].body });
    if (hex(result.plaintext) !== inputs.messages[number]) throw new Error(`message ${number} decrypted wrongly`);
    record = result.record;
    receptions.push({ step: `message ${number}`, record });
  }

  const second = createSenderKey({ random: scriptedRandom(...inputs.second_key_draws) });
  const secondDistribution = senderKeyDistribution(second, groupId);
  const secondMessage = await encryptGroupMessage(second, { ...labels, plaintext: fromHex(inputs.second_key_message) });
  record = receivedSenderKeys(record, parseSenderKeyDistribution(secondDistribution, groupId));
  receptions.push({ step: 'distribution 2', record });
  const last = await decryptGroupMessage(record, { ...labels, body: secondMessage.body });
  if (hex(last.plaintext) !== inputs.second_key_message) throw new Error('second key message decrypted wrongly');
  receptions.push({ step: 'second key message 0', record: last.record });

  return {
    sender_identity_key: senderIdentityKey,
    sender_key: created,
    distribution: hex(distribution),
    messages,
    second_sender_key: second,
    second_distribution: hex(secondDistribution),
    second_key_message: secondMessage,
    receptions,
  };
}

export function readSenderKeyVectors() {
  return JSON.parse(readFileSync(SENDER_KEY_VECTORS_PATH, 'utf8'));
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  const inputs = senderKeyInputs();
  const vectors = {
    description:
      'Known-answer vectors of sender keys (docs/PROTOCOL.md section 22). Hex for draws, plaintexts and ' +
      'distributions; states, records and bodies as stored and sent. Generated by tests/js/senderkey_vectors.mjs; ' +
      'verified by tests/js/senderkey.test.mjs (JavaScript) and tests/interop/test_senderkey.py (Python).',
    inputs,
    outputs: await computeSenderKeyVectors(inputs),
  };
  writeFileSync(SENDER_KEY_VECTORS_PATH, `${JSON.stringify(vectors, null, 2)}\n`);
  process.stdout.write(`wrote ${SENDER_KEY_VECTORS_PATH}\n`);
}
