import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeVectors, readVectors } from './vectors.mjs';

test('known-answer vectors: fixed keys and randomness give the stored bytes', async () => {
  const { inputs, outputs } = readVectors();
  const computed = await computeVectors(inputs);
  assert.deepEqual(computed, outputs);
});

test('known-answer vectors cover both envelope kinds and a DH ratchet step', () => {
  const { outputs } = readVectors();
  assert.deepEqual(
    outputs.messages.map((message) => message.kind),
    ['prekey', 'prekey', 'message', 'message'],
  );
  assert.equal(outputs.safety_number.length, 60);
});
