// Linking in the browser client (static/js/linking.js, ui/qr.js): both devices against a fake
// server that relays the offer as the real one does (docs/PROTOCOL.md section 18), the keys the new
// device writes, what leaves it, a declined or expired link, the `#link=` fragment and the QR code.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { ApiError } from '../../static/js/api.js';
import {
  ErrorCode,
  generateIdentityKeyPair,
  ProtocolError,
  toBase64,
  verifySignedPrekey,
} from '../../static/js/crypto/index.js';
import {
  DECLINED_MESSAGE,
  linkErrorMessage,
  linkUrl,
  NewDeviceLink,
  offerLink,
  takeLinkFragment,
} from '../../static/js/linking.js';
import { qrModules, qrPath } from '../../static/js/ui/qr.js';

const LINK_ID = toBase64(new Uint8Array(16).fill(7));

globalThis.document ??= {};
globalThis.navigator ??= { userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0 Safari/537.36' };

/** The server's link mailbox for one account, as keys/links.py keeps it. */
function fakeServer({ identityKey }) {
  const calls = [];
  const link = { offer: null, open: true };
  const routes = {
    'POST /api/v1/devices/links': () => [201, { link_id: LINK_ID, expires_at: '2026-12-02T05:10:00Z', offer: null }],
    'POST /api/v1/devices/links/poll': () => (link.open ? [200, { link_id: LINK_ID, offer: link.offer }] : [404, { code: 'not_found' }]),
    'POST /api/v1/devices/links/offer': (body) => {
      if (!link.open) return [404, { code: 'not_found' }];
      if (link.offer) return [409, { code: 'link_already_offered', detail: 'Answered.' }];
      link.offer = { ephemeral_key: body.ephemeral_key, ciphertext: body.ciphertext };
      return [204, null];
    },
    'POST /api/v1/devices/links/cancel': () => {
      if (!link.open) return [404, { code: 'not_found' }];
      link.open = false;
      return [204, null];
    },
    'POST /api/v1/devices': (body) => {
      if (!link.open) return [404, { code: 'not_found' }];
      if (body.identity_key !== identityKey) return [409, { code: 'identity_key_mismatch', detail: 'Not the key.' }];
      link.open = false;
      return [201, { id: 1, email: 'me@example.org', device: { id: 3, name: body.device_name } }];
    },
  };
  globalThis.document.cookie = 'csrftoken=test';
  globalThis.fetch = async (url, options) => {
    const key = `${options.method} ${url}`;
    const body = options.body === undefined ? undefined : JSON.parse(options.body);
    calls.push({ key, body });
    const [status, answer] = routes[key] ? routes[key](body) : [404, { code: 'not_found' }];
    return new Response(answer === null ? null : JSON.stringify(answer), { status });
  };
  return { calls, link };
}

/** The store of a browser: getKey and write, recording the writes. */
function memoryStore(keys = {}) {
  return {
    writes: [],
    async getKey(name) {
      return keys[name] ?? null;
    },
    async write(operations) {
      this.writes.push(...operations);
    },
  };
}

test('a full link: both devices show the same code, the new one gets the identity key and registers fresh keys', async () => {
  const identity = generateIdentityKeyPair();
  const server = fakeServer({ identityKey: identity.publicKey });
  const existing = memoryStore({ identity });
  const fresh = memoryStore();

  const run = await NewDeviceLink.open();
  assert.match(run.code, /^sm-link:1:/);
  assert.equal(run.expiresAt, Date.parse('2026-12-02T05:10:00Z'));
  assert.equal(await run.poll(), null, 'no answer yet');

  const shownOnExisting = await offerLink(existing, ` ${linkUrl('https://chat.example', run.code)}\n`);
  assert.match(shownOnExisting, /^\d{3} \d{3}$/);
  assert.equal(await run.poll(), shownOnExisting);
  assert.equal(await run.poll(), shownOnExisting, 'asked again: the same code, no new request');
  assert.equal(server.calls.filter((c) => c.key.endsWith('/poll')).length, 2);

  const answer = await run.confirm(fresh);
  assert.deepEqual(answer.device, { id: 3, name: 'Chrome on Linux' });
  assert.ok(run.ephemeral.privateKey.every((byte) => byte === 0), 'the ephemeral private key is zeroed');

  const complete = server.calls.find((c) => c.key === 'POST /api/v1/devices').body;
  assert.deepEqual(Object.keys(complete).sort(), ['device_name', 'identity_key', 'link_id', 'one_time_prekeys', 'signed_prekey']);
  assert.equal(complete.link_id, LINK_ID);
  assert.equal(complete.identity_key, identity.publicKey);
  const { public_key: publicKey, signature } = complete.signed_prekey;
  assert.ok(verifySignedPrekey(identity.publicKey, { publicKey, signature }));
  assert.equal(complete.one_time_prekeys.length, 100);
  const sent = JSON.stringify(server.calls);
  assert.ok(!sent.includes(identity.privateKey), 'the identity seed never travels in the clear');

  const stored = Object.fromEntries(fresh.writes.filter((w) => w.put).map((w) => [`${w.put}:${w.value.name}`, w.value.value]));
  assert.deepEqual(stored['signalKeys:identity'], identity);
  assert.equal(stored['meta:deviceId'], 3);
  assert.equal(stored['signalKeys:spk:1'].publicKey, complete.signed_prekey.public_key);
  assert.ok(fresh.writes.some((w) => w.clear === 'signalSessions'), 'whatever was here before is forgotten first');
});

test('"They don\'t match": the answer is not opened, the link is cancelled, nothing is written', async () => {
  const identity = generateIdentityKeyPair();
  const server = fakeServer({ identityKey: identity.publicKey });
  const run = await NewDeviceLink.open();
  await offerLink(memoryStore({ identity }), run.code);
  assert.match(await run.poll(), /^\d{3} \d{3}$/);
  await run.decline();
  assert.equal(server.link.open, false);
  assert.equal(await run.poll(), null, 'a finished run asks nothing more');
  await assert.rejects(run.confirm(memoryStore()), (error) => error instanceof ProtocolError);
  assert.ok(!server.calls.some((c) => c.key === 'POST /api/v1/devices'));
  assert.match(DECLINED_MESSAGE, /nothing was linked/);
});

test('a key that is not the account\'s is refused by the server and nothing is written', async () => {
  const server = fakeServer({ identityKey: generateIdentityKeyPair().publicKey });
  const run = await NewDeviceLink.open();
  await offerLink(memoryStore({ identity: generateIdentityKeyPair() }), run.code);
  await run.poll();
  const fresh = memoryStore();
  await assert.rejects(run.confirm(fresh), (error) => {
    assert.match(linkErrorMessage(error), /does not hold your account's identity key/);
    return true;
  });
  assert.deepEqual(fresh.writes, []);
  assert.equal(server.link.open, true);
});

test('an expired or cancelled link, a bad code, a second answer: each has a sentence for the user', async () => {
  const identity = generateIdentityKeyPair();
  const server = fakeServer({ identityKey: identity.publicKey });
  const run = await NewDeviceLink.open();
  const existing = memoryStore({ identity });
  for (const bad of ['', 'sm-link:1:abc', `sm-link:2:${LINK_ID}:${toBase64(new Uint8Array(32))}`, 'https://x/#link=%20']) {
    await assert.rejects(offerLink(existing, bad), (error) => {
      assert.equal(error.code, ErrorCode.INVALID_LINK_CODE);
      assert.match(linkErrorMessage(error), /not a link code/);
      return true;
    });
  }
  assert.equal(server.calls.length, 1, 'a bad code never reaches the server');
  await offerLink(existing, run.code);
  await assert.rejects(offerLink(existing, run.code), (error) => /Another device has already answered/.test(linkErrorMessage(error)));
  await run.cancel();
  await run.cancel(); // once only on the server; gone already is fine
  assert.equal(server.calls.filter((c) => c.key.endsWith('/cancel')).length, 1);
  await assert.rejects(offerLink(existing, run.code), (error) => /expired or was cancelled/.test(linkErrorMessage(error)));
  const other = await NewDeviceLink.open();
  await assert.rejects(other.poll(), (error) => error instanceof ApiError && /expired/.test(linkErrorMessage(error)));
  await assert.rejects(offerLink(memoryStore(), other.code), (error) => /no keys/.test(linkErrorMessage(error)));
  assert.match(linkErrorMessage(new ApiError(409, { code: 'too_many_devices' })), /as many devices as it may have/);
  assert.match(linkErrorMessage(new ApiError(409, { code: 'too_many_links' })), /too many link codes/);
  assert.match(linkErrorMessage(new ProtocolError(ErrorCode.AUTHENTICATION_FAILED, 'x')), /changed on the way/);
});

test('an offer the server garbled is refused before any code is shown', async () => {
  const server = fakeServer({ identityKey: 'unused' });
  const run = await NewDeviceLink.open();
  server.link.offer = { ephemeral_key: 'not base64!', ciphertext: toBase64(new Uint8Array(48)) };
  await assert.rejects(run.poll(), (error) => error.code === ErrorCode.INVALID_KEY);
  server.link.offer = { ephemeral_key: toBase64(new Uint8Array(32)), ciphertext: toBase64(new Uint8Array(48)) };
  await assert.rejects(run.poll(), (error) => error.code === ErrorCode.INVALID_KEY, 'a low-order key');
});

test('the #link= fragment is read once and removed from the address bar', () => {
  const replaced = [];
  // As in a browser: replacing the URL changes what `location` says at once.
  const at = (url) => {
    const parsed = new URL(url, 'https://chat.example');
    return { pathname: parsed.pathname, search: parsed.search, hash: parsed.hash };
  };
  let location;
  const history = {
    state: { kept: true },
    replaceState: (state, unused, url) => {
      replaced.push([state, unused, url]);
      Object.assign(location, at(url));
    },
  };
  const code = `sm-link:1:${LINK_ID}:${toBase64(new Uint8Array(32).fill(9))}`;
  location = at(`/?a=1#link=${code}`);
  assert.equal(takeLinkFragment(location, history), code);
  assert.deepEqual(replaced, [[{ kept: true }, '', '/?a=1']]);
  assert.equal(location.hash, '');
  assert.equal(takeLinkFragment(location, history), null, 'read once');
  location = at('/#link=');
  assert.equal(takeLinkFragment(location, history), null);
  assert.equal(replaced.length, 2, 'an empty code is removed too');
  for (const other of ['/#other', '/']) assert.equal(takeLinkFragment(at(other), history), null);
  assert.equal(replaced.length, 2, 'other fragments stay');
  assert.equal(linkUrl('https://chat.example', code), `https://chat.example/#link=${code}`);
});

test('the QR path draws exactly the dark modules, one run at a time', () => {
  assert.equal(qrPath([[false, true, true], [true, false, true]]), 'M1 0h2v1h-2zM0 1h1v1h-1zM2 1h1v1h-1z');
  const rows = qrModules(`https://chat.example/#link=sm-link:1:${LINK_ID}:${toBase64(new Uint8Array(32))}`);
  assert.ok(rows.length >= 29 && rows.every((row) => row.length === rows.length));
  assert.ok(rows[0].every((dark) => !dark) && rows.at(-1).every((dark) => !dark), 'a white quiet zone');
});

const decoder = new URL('../../node_modules/@paulmillr/qr/esm/decode.js', import.meta.url);
test(
  'the QR code decodes to the link URL (checked with the decoder of @paulmillr/qr)',
  { skip: existsSync(decoder) ? false : 'node_modules/ not installed' },
  async () => {
    // Fixed keys: that decoder, reading a picture, misses about one valid code in 50 (zbarimg reads
    // those), so a random key would make this test flaky without telling anything about the encoder.
    const { default: decodeQR } = await import(decoder);
    const key = toBase64(Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) % 256));
    const url = `https://chat.example/#link=sm-link:1:${LINK_ID}:${key}`;
    const rows = qrModules(url);
    const scale = 4;
    const size = rows.length * scale;
    const data = new Uint8Array(size * size * 3).fill(255);
    for (let py = 0; py < size; py += 1) {
      for (let px = 0; px < size; px += 1) {
        const pixel = (py * size + px) * 3;
        if (rows[Math.floor(py / scale)][Math.floor(px / scale)]) data.fill(0, pixel, pixel + 3);
      }
    }
    assert.equal(decodeQR({ width: size, height: size, data }), url);
  },
);
