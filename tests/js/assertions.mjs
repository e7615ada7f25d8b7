import assert from 'node:assert/strict';
import { ProtocolError } from '../../static/js/crypto/index.js';

/** Asserts that `action` (a function or promise) fails with ProtocolError `code`. */
export async function rejectsWithCode(action, code) {
  await assert.rejects(typeof action === 'function' ? action : () => action, (error) => {
    assert.ok(error instanceof ProtocolError, `expected ProtocolError, got ${error?.name}: ${error?.message}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** Asserts that `action` fails with some ProtocolError (never another exception type). */
export async function rejectsWithProtocolError(action) {
  await assert.rejects(typeof action === 'function' ? action : () => action, (error) => {
    assert.ok(error instanceof ProtocolError, `expected ProtocolError, got ${error?.name}: ${error?.message}`);
    return true;
  });
}

/** Synchronous variant of rejectsWithCode. */
export function throwsWithCode(action, code) {
  assert.throws(action, (error) => {
    assert.ok(error instanceof ProtocolError, `expected ProtocolError, got ${error?.name}: ${error?.message}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** Freezes an object graph, so any mutation by the code under test throws (ES modules are strict). */
export function deepFreeze(value) {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
