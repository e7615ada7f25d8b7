// This browser as a device (static/js/devices.js) and the account's devices in the client
// (static/js/client/devices.js, client/keys.js onPrekeysLow): names from the user agent, the number
// a sign-in sends, what an unlinked device forgets, and which events concern this device.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Devices, deviceNameInput } from '../../static/js/client/devices.js';
import { Keys } from '../../static/js/client/keys.js';
import { deviceIdOf, deviceNameFor, forgetDeviceWrites, rememberDeviceWrite } from '../../static/js/devices.js';
import { parts } from './client_parts.mjs';

const ME = 'me@example.org';

test('device names from the browser\'s own brands and platform, else from the user agent text', () => {
  const cases = [
    [{ brands: [{ brand: 'Not:A-Brand' }, { brand: 'Chromium' }], platform: 'Linux' }, 'Chromium on Linux'],
    [{ brands: [{ brand: 'Chromium' }, { brand: 'Google Chrome' }], platform: 'Windows' }, 'Chrome on Windows'],
    [{ brands: [{ brand: 'Chromium' }, { brand: 'Microsoft Edge' }], platform: 'macOS' }, 'Edge on macOS'],
    [{ brands: [{ brand: 'Chromium' }], platform: 'Chrome OS' }, 'Chromium on ChromeOS'],
    [
      { userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0' },
      'Firefox on macOS',
    ],
    [
      {
        userAgent:
          'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
      },
      'Safari on iOS',
    ],
    [
      { userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36' },
      'Chrome on Android',
    ],
    [
      { userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36' },
      'Chrome on Linux',
    ],
    [{ userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0' }, 'Edge on Windows'],
    [{ userAgent: 'curl/8.5' }, 'Browser'],
    [{}, 'Browser'],
    [{ brands: null, platform: null, userAgent: '' }, 'Browser'],
  ];
  for (const [agent, name] of cases) assert.equal(deviceNameFor(agent), name, JSON.stringify(agent));
});

test('a device name never carries the user agent\'s own text', () => {
  const hostile = { userAgent: `Evil\u202e${'x'.repeat(500)}`, brands: [{ brand: 'x'.repeat(500) }], platform: 'Plan 9\u0000' };
  const name = deviceNameFor(hostile);
  assert.equal(name, 'Browser');
  assert.ok(name.length <= 64);
});

test('the number a sign-in sends: the stored one; 1 for keys from before devices; null without keys', () => {
  assert.equal(deviceIdOf({ deviceId: 4, hasKeys: true }), 4);
  assert.equal(deviceIdOf({ deviceId: null, hasKeys: true }), 1);
  assert.equal(deviceIdOf({ deviceId: 0, hasKeys: true }), 1);
  assert.equal(deviceIdOf({ deviceId: '3', hasKeys: true }), 1);
  assert.equal(deviceIdOf({ deviceId: 4, hasKeys: false }), null);
  assert.equal(deviceIdOf({ deviceId: null, hasKeys: false }), null);
  assert.equal(deviceIdOf(), null);
  assert.deepEqual(rememberDeviceWrite({ id: 7, name: 'Laptop' }), { put: 'meta', value: { name: 'deviceId', value: 7 } });
});

test('an unlinked device forgets its keys, sessions, outbox and number, and keeps history, contacts and identities', () => {
  const writes = forgetDeviceWrites();
  const cleared = writes.filter((w) => w.clear).map((w) => w.clear).sort();
  assert.deepEqual(cleared, ['ephemeralKeys', 'outbox', 'signalKeys', 'signalSessions']);
  const metaGone = writes.filter((w) => w.delete === 'meta').map((w) => w.key[0]).sort();
  assert.deepEqual(metaGone, ['deviceId', 'nextOneTimePrekeyId', 'nextSignedPrekeyId', 'signedPrekey']);
  for (const kept of ['messages', 'contacts', 'identities', 'contactRequests']) {
    assert.ok(!writes.some((w) => w.clear === kept || w.delete === kept || w.put === kept), kept);
  }
});

test('device names typed in the panel: trimmed, 1 to 64 characters counted by code point', () => {
  assert.equal(deviceNameInput('  Work laptop '), 'Work laptop');
  assert.throws(() => deviceNameInput('   '), /Enter a name/);
  assert.throws(() => deviceNameInput(undefined), /Enter a name/);
  assert.equal(deviceNameInput('😀'.repeat(64)), '😀'.repeat(64)); // 128 UTF-16 units, 64 characters
  assert.throws(() => deviceNameInput('a'.repeat(65)), /at most 64/);
});

// --- the client's part -------------------------------------------------------------------------

function signedIn(p, deviceId = 1) {
  p.state.setMe({ id: 1, email: ME, device: { id: deviceId, name: 'Chromium on Linux' } });
  return p;
}

test('prekeys_low: acted on for this device or none named, ignored for another device', () => {
  const p = signedIn(parts(), 2);
  const keys = new Keys({ ...p, report: (error) => assert.fail(error) });
  let upkeeps = 0;
  keys.upkeep = () => {
    upkeeps += 1;
  };
  keys.onPrekeysLow({ type: 'prekeys_low', device_id: 1, remaining: 3 });
  assert.equal(upkeeps, 0, "another device's event");
  keys.onPrekeysLow({ type: 'prekeys_low', device_id: 2, remaining: 3 });
  assert.equal(upkeeps, 1);
  keys.onPrekeysLow({ type: 'prekeys_low', remaining: 3 });
  assert.equal(upkeeps, 2, 'a server from before devices names none');
});

/** fetch stand-in: answers by method and path, records the calls. */
function fakeServer(routes) {
  const calls = [];
  globalThis.document.cookie = 'csrftoken=test';
  globalThis.fetch = async (url, options) => {
    const key = `${options.method} ${url}`;
    calls.push({ key, body: options.body === undefined ? undefined : JSON.parse(options.body) });
    const [status, body] = routes[key] ? routes[key]() : [404, { code: 'not_found', detail: 'No such device.' }];
    return new Response(body === null ? null : JSON.stringify(body), { status });
  };
  return calls;
}

const LIST = (ids) => () => [
  200,
  {
    devices: ids.map((id) => ({ id, name: `Device ${id}`, created_at: '2026-01-01T00:00:00Z', last_seen_at: null, current: id === 1 })),
    max: 5,
  },
];

test("devices_changed: the account's own list is read again; a contact's is quiet; gone devices' sessions are dropped", async () => {
  const p = signedIn(parts());
  const lists = { 'bob@example.org': [1, 3], [ME]: [1, 2] };
  const calls = fakeServer({
    'GET /api/v1/devices': LIST([1, 2]),
    'POST /api/v1/keys/devices': () => [200, { identity_key: 'K', device_ids: lists[calls.at(-1).body.email.toLowerCase()] }],
  });
  const session = (email, device) => ({ put: 'signalSessions', value: { email, device, current: {}, archived: [] } });
  await p.store.write([session('bob@example.org', 1), session('bob@example.org', 2), session('bob@example.org', 3), session(ME, 2), session(ME, 4)]);
  const notices = [];
  const devices = new Devices({ ...p, report: (error) => notices.push(error), onUnlinked: () => assert.fail() });
  await devices.onChanged({ type: 'devices_changed', email: 'bob@example.org' });
  assert.deepEqual(calls.map((c) => c.key), ['POST /api/v1/keys/devices']);
  assert.equal(p.state.devices, null);
  const sessions = async (email) => (await p.store.all('signalSessions', { prefix: [email] })).map((r) => r.device);
  assert.deepEqual(await sessions('bob@example.org'), [1, 3]);
  await devices.onChanged({ type: 'devices_changed', email: 'ME@example.org' });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls.map((c) => c.key).sort(), ['GET /api/v1/devices', 'POST /api/v1/keys/devices', 'POST /api/v1/keys/devices']);
  assert.deepEqual(p.state.devices.list.map((d) => d.id), [1, 2]);
  assert.equal(p.state.devices.max, 5);
  assert.deepEqual(await sessions(ME), [2]);
  assert.deepEqual(notices, []);
  assert.equal(p.state.contacts.get('bob@example.org').identity, null, 'no identity change noted');
});

test('unlinking another device reads the list again; unlinking this one hands over to onUnlinked', async () => {
  const p = signedIn(parts());
  let remaining = [1, 2];
  const calls = fakeServer({
    'GET /api/v1/devices': () => LIST(remaining)(),
    'DELETE /api/v1/devices/2': () => {
      remaining = [1];
      return [204, null];
    },
    'DELETE /api/v1/devices/1': () => [204, null],
  });
  let unlinked = 0;
  const devices = new Devices({ state: p.state, report: (error) => assert.fail(error), onUnlinked: () => (unlinked += 1) });
  await devices.unlink(2);
  assert.equal(unlinked, 0);
  assert.deepEqual(p.state.devices.list.map((d) => d.id), [1]);
  await devices.unlink(1);
  assert.equal(unlinked, 1);
  assert.deepEqual(calls.map((c) => c.key), ['DELETE /api/v1/devices/2', 'GET /api/v1/devices', 'DELETE /api/v1/devices/1']);
  await assert.rejects(devices.unlink(9), (error) => error.status === 404 && /No such device/.test(error.userMessage));
});

test("renaming: the server's answer is shown, its refusal is thrown with the server's reason", async () => {
  const p = signedIn(parts());
  const calls = fakeServer({
    'GET /api/v1/devices': LIST([1, 2]),
    'PATCH /api/v1/devices/1': () => [200, { id: 1, name: 'Work laptop' }],
    'PATCH /api/v1/devices/2': () => [
      400,
      { code: 'invalid', detail: 'Invalid input.', errors: { name: ['A device name may not contain control or invisible characters.'] } },
    ],
  });
  const devices = new Devices({ state: p.state, report: (error) => assert.fail(error), onUnlinked: () => assert.fail() });
  await devices.load();
  await devices.rename(1, '  Work laptop ');
  assert.deepEqual(calls.at(-1), { key: 'PATCH /api/v1/devices/1', body: { name: 'Work laptop' } });
  assert.equal(p.state.devices.list[0].name, 'Work laptop');
  assert.equal(p.state.me.device.name, 'Work laptop');
  await assert.rejects(devices.rename(2, 'bad\u202ename'), (error) => /control or invisible/.test(error.userMessage));
  await assert.rejects(devices.rename(2, ' '), /Enter a name/);
  assert.equal(calls.length, 3, 'an empty name never reaches the server');
});
