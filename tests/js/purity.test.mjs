/**
 * static/js/crypto is pure (STYLE.md): no DOM, network, storage or console, and it imports nothing but
 * its own modules and the vendored libraries, by relative path, so the same files run in the browser
 * without an import map and in Node.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

const CRYPTO_DIR = new URL('../../static/js/crypto/', import.meta.url);
const files = readdirSync(CRYPTO_DIR).filter((name) => name.endsWith('.js'));

function codeOf(name) {
  // Strip comments: the rules are about code, and comments may mention what is forbidden.
  return readFileSync(new URL(name, CRYPTO_DIR), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

test('crypto modules exist', () => {
  for (const name of ['bytes.js', 'constants.js', 'envelope.js', 'errors.js', 'fingerprint.js', 'index.js', 'keys.js', 'link.js', 'primitives.js', 'ratchet.js', 'senderkey.js', 'session.js', 'x3dh.js']) {
    assert.ok(files.includes(name), name);
  }
});

test('no console, DOM, network or storage in static/js/crypto', () => {
  const forbidden = /\b(console|window|document|fetch|XMLHttpRequest|WebSocket|localStorage|sessionStorage|indexedDB|navigator|process|require)\b/;
  for (const name of files) {
    const match = codeOf(name).match(forbidden);
    assert.equal(match, null, `${name} uses ${match?.[0]}`);
  }
});

test('imports are relative: own modules or ../../vendor/', () => {
  for (const name of files) {
    for (const [, specifier] of codeOf(name).matchAll(/\bfrom\s*['"]([^'"]+)['"]/g)) {
      assert.ok(
        /^\.\/[a-z0-9_]+\.js$/.test(specifier) || specifier.startsWith('../../vendor/'),
        `${name} imports ${specifier}`,
      );
    }
    assert.doesNotMatch(codeOf(name), /\bimport\s*\(/, `${name} uses a dynamic import`);
  }
});
