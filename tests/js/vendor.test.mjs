/**
 * The vendored libraries under static/vendor/ are exactly what scripts/vendor_js.mjs produces from the
 * versions pinned in package-lock.json.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  REPO_ROOT,
  VENDORED_PACKAGES,
  VENDOR_DIR,
  buildVendorFiles,
  diffVendorDir,
  listVendoredFiles,
} from '../../scripts/vendor_js.mjs';

const manifest = JSON.parse(readFileSync(join(VENDOR_DIR, 'MANIFEST.json'), 'utf8'));
const lockfile = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8'));
const packageJson = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));

test('package.json pins exact versions', () => {
  for (const [name, version] of Object.entries(packageJson.dependencies ?? {})) {
    assert.match(version, /^\d+\.\d+\.\d+$/, `${name} must be pinned exactly`);
    assert.equal(lockfile.packages[`node_modules/${name}`].version, version);
  }
});

test('the vendor manifest names the versions and integrity hashes of package-lock.json', () => {
  for (const name of Object.keys(VENDORED_PACKAGES)) {
    const locked = lockfile.packages[`node_modules/${name}`];
    assert.equal(manifest.packages[name].version, locked.version);
    assert.equal(manifest.packages[name].integrity, locked.integrity);
  }
});

test('every vendored file matches its manifest hash, and nothing else is there', () => {
  const expected = Object.keys(manifest.files).concat('MANIFEST.json').sort();
  assert.deepEqual(listVendoredFiles(), expected);
  for (const [path, sha256] of Object.entries(manifest.files)) {
    const actual = createHash('sha256').update(readFileSync(join(VENDOR_DIR, path))).digest('hex');
    assert.equal(actual, sha256, `${path} was edited by hand; run node scripts/vendor_js.mjs`);
  }
});

const installed = Object.keys(VENDORED_PACKAGES).every((name) => existsSync(join(REPO_ROOT, 'node_modules', name)));

test(
  'static/vendor/ is byte-for-byte what scripts/vendor_js.mjs generates from node_modules',
  { skip: installed ? false : 'node_modules/ not installed (run `npm ci` to enable this check)' },
  () => {
    assert.deepEqual(diffVendorDir(buildVendorFiles()), []);
  },
);
