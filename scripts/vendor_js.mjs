#!/usr/bin/env node
/**
 * Regenerates static/vendor/ from node_modules/ (installed with `npm ci` from package-lock.json).
 *
 *   node scripts/vendor_js.mjs           write static/vendor/
 *   node scripts/vendor_js.mjs --check   exit 1 if static/vendor/ differs from what would be written
 *
 * Why: the browser client runs without a build step and without an import map, so the ES modules of
 * @noble/curves and its dependency @noble/hashes (the crypto primitives) and of @paulmillr/qr (the QR code
 * of a device link, docs/PROTOCOL.md section 18) are copied verbatim, except for two mechanical changes:
 *   1. bare specifiers such as '@noble/hashes/sha2.js' become relative paths ('../noble-hashes/sha2.js'),
 *   2. `//# sourceMappingURL=` comments are dropped (the maps are not vendored),
 * and a one-line provenance header is prepended. Only the files reachable from the entry points are
 * copied (transitive closure of static imports), plus each package's licence files.
 *
 * static/vendor/MANIFEST.json records the package versions and lockfile integrity hashes together with
 * the SHA-256 of every vendored file, so tests can detect hand edits even where node_modules/ is absent.
 *
 * The output is a pure function of the installed package files: running the script twice produces
 * identical bytes, which is what `--check` (and tests/js/vendor.test.mjs) relies on.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const VENDOR_DIR = join(REPO_ROOT, 'static', 'vendor');

/** Packages that are vendored, and the directory name each gets under static/vendor/. */
export const VENDORED_PACKAGES = {
  '@noble/curves': 'noble-curves',
  '@noble/hashes': 'noble-hashes',
  '@paulmillr/qr': 'paulmillr-qr',
};

/** Licence files copied with each package (default: LICENSE); @paulmillr/qr is Apache-2.0 OR MIT. */
const LICENSE_FILES = {
  '@paulmillr/qr': ['LICENSE', 'LICENSE-MIT'],
};

/** Module entry points the client imports; everything they import is vendored too. */
export const ENTRY_POINTS = [
  '@noble/curves/ed25519.js',
  '@noble/hashes/sha2.js',
  '@noble/hashes/hmac.js',
  '@noble/hashes/hkdf.js',
  '@paulmillr/qr/esm/index.js',
];

const MANIFEST_NAME = 'MANIFEST.json';

// Matches the module specifier of top-level `import ... from '...'`, `export ... from '...'` and
// side-effect `import '...'` statements. Anchored at the start of a line so that usage examples inside
// JSDoc comments (` * import { ed25519 } from '@noble/curves/ed25519.js'`) are neither followed nor
// rewritten.
const IMPORT_SPECIFIER = /^((?:import|export)\b[^;'"]*?\bfrom\s*|import\s*)(['"])([^'"\n]+)\2/gm;
const DYNAMIC_IMPORT = /\bimport\s*\(/;

function sha256Hex(data) {
  return createHash('sha256').update(data).digest('hex');
}

function readLockfile(root) {
  const lockPath = join(root, 'package-lock.json');
  const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
  const locked = {};
  for (const name of Object.keys(VENDORED_PACKAGES)) {
    const entry = lock.packages?.[`node_modules/${name}`];
    if (!entry) throw new Error(`${name} is not in package-lock.json`);
    locked[name] = { version: entry.version, integrity: entry.integrity, resolved: entry.resolved };
  }
  return locked;
}

/** Splits '@noble/hashes/sha2.js' into the package name and the file path inside it. */
function splitBareSpecifier(specifier) {
  for (const name of Object.keys(VENDORED_PACKAGES)) {
    if (specifier.startsWith(`${name}/`)) return { name, file: specifier.slice(name.length + 1) };
  }
  throw new Error(`import of a package that is not vendored: ${specifier}`);
}

/**
 * Computes every vendored file: { 'noble-curves/ed25519.js': Buffer, ... } plus MANIFEST.json.
 * Throws if node_modules/ does not hold exactly the versions pinned in package-lock.json.
 * @param {string} [root] repository root
 * @returns {Map<string, Buffer>} path relative to static/vendor/ (posix) -> content
 */
export function buildVendorFiles(root = REPO_ROOT) {
  const locked = readLockfile(root);
  for (const [name, { version }] of Object.entries(locked)) {
    const pkgJsonPath = join(root, 'node_modules', name, 'package.json');
    if (!existsSync(pkgJsonPath)) {
      throw new Error(`node_modules/${name} is missing: run \`npm ci\` first`);
    }
    const installed = JSON.parse(readFileSync(pkgJsonPath, 'utf8')).version;
    if (installed !== version) {
      throw new Error(`node_modules/${name} is ${installed} but package-lock.json pins ${version}: run \`npm ci\``);
    }
  }

  const files = new Map();
  const pending = ENTRY_POINTS.map((specifier) => splitBareSpecifier(specifier));
  const seen = new Set();
  while (pending.length > 0) {
    const { name, file } = pending.pop();
    const key = `${name}/${file}`;
    if (seen.has(key)) continue;
    seen.add(key);

    const source = readFileSync(join(root, 'node_modules', name, file), 'utf8');
    if (DYNAMIC_IMPORT.test(source)) throw new Error(`${key} uses a dynamic import; vendoring would miss it`);
    const outPath = posix.join(VENDORED_PACKAGES[name], file);
    const rewritten = source.replace(IMPORT_SPECIFIER, (match, keyword, quote, specifier) => {
      let target;
      if (specifier.startsWith('./') || specifier.startsWith('../')) {
        target = { name, file: posix.normalize(posix.join(posix.dirname(file), specifier)) };
        pending.push(target);
        return match;
      }
      target = splitBareSpecifier(specifier);
      pending.push(target);
      let rel = posix.relative(posix.dirname(outPath), posix.join(VENDORED_PACKAGES[target.name], target.file));
      if (!rel.startsWith('.')) rel = `./${rel}`;
      return `${keyword}${quote}${rel}${quote}`;
    });
    const withoutSourceMap = rewritten.replace(/^\/\/# sourceMappingURL=.*$\n?/gm, '');
    const header = `/* Vendored from ${name}@${locked[name].version} (${file}) by scripts/vendor_js.mjs. Do not edit. */\n`;
    files.set(outPath, Buffer.from(header + withoutSourceMap, 'utf8'));
  }

  for (const [name, dir] of Object.entries(VENDORED_PACKAGES)) {
    for (const license of LICENSE_FILES[name] ?? ['LICENSE']) {
      files.set(posix.join(dir, license), readFileSync(join(root, 'node_modules', name, license)));
    }
  }

  const sortedPaths = [...files.keys()].sort();
  const manifest = {
    generator: 'scripts/vendor_js.mjs',
    packages: locked,
    files: Object.fromEntries(sortedPaths.map((path) => [path, sha256Hex(files.get(path))])),
  };
  const ordered = new Map(sortedPaths.map((path) => [path, files.get(path)]));
  ordered.set(MANIFEST_NAME, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8'));
  return ordered;
}

/** Lists the files currently under static/vendor/ (posix paths relative to it). */
export function listVendoredFiles(vendorDir = VENDOR_DIR) {
  if (!existsSync(vendorDir)) return [];
  const out = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.push(relative(vendorDir, full).split('\\').join('/'));
    }
  };
  walk(vendorDir);
  return out.sort();
}

/**
 * Compares the expected files with static/vendor/.
 * @returns {string[]} human-readable differences (empty when up to date)
 */
export function diffVendorDir(expected, vendorDir = VENDOR_DIR) {
  const problems = [];
  const present = new Set(listVendoredFiles(vendorDir));
  for (const [path, content] of expected) {
    if (!present.has(path)) problems.push(`missing: ${path}`);
    else if (!readFileSync(join(vendorDir, path)).equals(content)) problems.push(`differs: ${path}`);
    present.delete(path);
  }
  for (const path of present) problems.push(`unexpected: ${path}`);
  return problems;
}

function writeVendorDir(expected, vendorDir = VENDOR_DIR) {
  for (const dir of new Set(Object.values(VENDORED_PACKAGES))) {
    rmSync(join(vendorDir, dir), { recursive: true, force: true });
  }
  for (const [path, content] of expected) {
    const full = join(vendorDir, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
  }
}

function main(argv) {
  const expected = buildVendorFiles();
  if (argv.includes('--check')) {
    const problems = diffVendorDir(expected);
    if (problems.length > 0) {
      process.stderr.write(`static/vendor/ is out of date (run \`node scripts/vendor_js.mjs\`):\n  ${problems.join('\n  ')}\n`);
      process.exit(1);
    }
    process.stdout.write(`static/vendor/ is up to date (${expected.size} files)\n`);
    return;
  }
  writeVendorDir(expected);
  process.stdout.write(`wrote ${expected.size} files to static/vendor/\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2));
}
