/**
 * The feature modules of static/js/client/ (drawn at the top of static/js/client.js) get each other
 * only from the facade, through their constructors: none imports a sibling but the pure status.js,
 * fanout.js and groupkey.js, and none imports the UI, the state model or the storage (they are handed state and store).
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

const CLIENT_DIR = new URL('../../static/js/client/', import.meta.url);
const ALLOWED = new Set(['./status.js', './fanout.js', './groupkey.js', '../api.js', '../receipts.js', '../session.js', '../socket.js']);

test('client/ modules import only status.js, fanout.js and groupkey.js among themselves, and no UI, state or storage', () => {
  const files = readdirSync(CLIENT_DIR).filter((name) => name.endsWith('.js'));
  assert.ok(files.length >= 10, files.join(', '));
  for (const name of files) {
    const code = readFileSync(new URL(name, CLIENT_DIR), 'utf8');
    for (const [, specifier] of code.matchAll(/\bfrom\s*['"]([^'"]+)['"]/g)) {
      assert.ok(ALLOWED.has(specifier), `${name} imports ${specifier}`);
    }
    assert.doesNotMatch(code, /\bimport\s*\(/, `${name} uses a dynamic import`);
  }
});
