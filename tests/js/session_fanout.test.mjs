// static/js/session.js with several devices per account (docs/PROTOCOL.md sections 16, 17 and 19),
// on the in-memory store: one session per device pair, bundles only for devices without one, a
// corrected frame that keeps the ciphertexts made, the identity checks of device lists and
// bundles, and copies decrypted per sender device (our own devices only under our own key).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decryptBatchFrom, dropSessionsExcept, encryptFor, IdentityChangedError } from '../../static/js/session.js';
import { Conversations } from '../../static/js/client/conversations.js';
import { Keys } from '../../static/js/client/keys.js';
import { Outbox } from '../../static/js/client/outbox.js';
import { Receipts } from '../../static/js/client/receipts.js';
import { bundlesOf, deviceOf, MemoryStore, parts, storeOf } from './client_parts.mjs';
import { makeParty } from './helpers.mjs';

const ME = 'me@example.org';
const BOB = 'bob@example.org';

function setUp() {
  const me = makeParty('me');
  const bob = makeParty('bob');
  const devices = { bob1: deviceOf(bob, 1), bob2: deviceOf(bob, 2), bob3: deviceOf(bob, 3), me2: deviceOf(me, 2) };
  const store = storeOf(deviceOf(me, 1));
  const asked = [];
  const fetchBundles = async (email, ids) => {
    asked.push([email, ids]);
    const all = email === BOB ? [devices.bob1, devices.bob2, devices.bob3] : [devices.me2];
    return bundlesOf(all.filter((d) => ids.includes(d.id)));
  };
  return { me, bob, devices, store, asked, fetchBundles };
}

const frameWrites = (frames) => (frame) => {
  frames.push(frame);
  return [{ put: 'outbox', value: { clientId: 'c1', seq: 1, to: BOB, ...frame } }];
};

async function decryptAt(device, from, fromDevice, copy, { own = false } = {}) {
  const store = storeOf(device);
  const frame = { id: 100 + device.id, message_id: 50, from, from_device: fromDevice, kind: copy.kind, body: copy.body, sent_at: '2026-01-01T00:00:00Z' };
  const [result] = await decryptBatchFrom(store, { email: from, device: fromDevice, own }, [frame], {
    recordId: (f) => `in:${f.id}`,
    messageRecord: (f, { text, failed }) => ({ id: `in:${f.id}`, text, failed }),
  });
  return result.message;
}

test('one copy per device of the recipient and per other device of ours, each from its own session', async () => {
  const { devices, store, asked, fetchBundles, bob } = setUp();
  const frames = [];
  const targets = { to: [2, 1], own: [2], identityKey: bob.identityKeyPair.publicKey };
  const frame = await encryptFor(store, { to: BOB, self: ME }, 'hello all', { targets, fetchBundles, writesFor: frameWrites(frames) });
  assert.deepEqual(frame.copies.map((c) => c.device), [1, 2]);
  assert.deepEqual(frame.own.map((c) => c.device), [2]);
  assert.deepEqual(asked, [[BOB, [1, 2]], [ME, [2]]]);
  assert.deepEqual(await store.get('outbox', 'c1'), { clientId: 'c1', seq: 1, to: BOB, ...frame });
  const sessions = (await store.all('signalSessions')).map((r) => [r.email, r.device]);
  assert.deepEqual(sessions.sort(), [[BOB, 1], [BOB, 2], [ME, 2]]);
  assert.equal((await store.get('identities', BOB)).identityKey, bob.identityKeyPair.publicKey);
  // Every device reads its own copy; our other device files it under our own key.
  assert.equal((await decryptAt(devices.bob1, ME, 1, frame.copies[0])).text, 'hello all');
  assert.equal((await decryptAt(devices.bob2, ME, 1, frame.copies[1])).text, 'hello all');
  assert.equal((await decryptAt(devices.me2, ME, 1, frame.own[0], { own: true })).text, 'hello all');
  // A copy for one device does not open at another.
  assert.ok((await decryptAt(devices.bob2, ME, 1, frame.copies[0])).failed);

  // The next message needs no bundle: the sessions are there.
  asked.length = 0;
  await encryptFor(store, { to: BOB, self: ME }, 'again', { targets, fetchBundles, writesFor: frameWrites(frames) });
  assert.deepEqual(asked, []);
});

test('after a mismatch the stored copies are kept, only new devices are encrypted for, removed ones lose their session', async () => {
  const { devices, store, asked, fetchBundles, bob } = setUp();
  const frames = [];
  const writesFor = frameWrites(frames);
  const first = await encryptFor(store, { to: BOB, self: ME }, 'hi', {
    targets: { to: [1, 2], own: [2], identityKey: bob.identityKeyPair.publicKey },
    fetchBundles,
    writesFor,
  });
  const before = await store.get('signalSessions', BOB, 1);
  asked.length = 0;
  const corrected = await encryptFor(store, { to: BOB, self: ME }, 'hi', {
    targets: { to: [1, 3], own: [] },
    drop: { to: [2], own: [2] },
    fetchBundles,
    reuse: () => store.get('outbox', 'c1'),
    writesFor,
  });
  assert.deepEqual(asked, [[BOB, [3]]]);
  assert.deepEqual(corrected.copies[0], first.copies[0], 'the copy for device 1 is the one already made');
  assert.deepEqual(corrected.copies.map((c) => c.device), [1, 3]);
  assert.deepEqual(corrected.own, []);
  assert.deepEqual(await store.get('signalSessions', BOB, 1), before, 'no message key spent twice');
  assert.equal(await store.get('signalSessions', BOB, 2), null);
  assert.equal(await store.get('signalSessions', ME, 2), null);
  assert.equal((await decryptAt(devices.bob3, ME, 1, corrected.copies[1])).text, 'hi');
});

test("a device list or bundles under another identity key stop the send; our own devices' bundles must carry our key", async () => {
  const { store, fetchBundles, bob } = setUp();
  const writesFor = frameWrites([]);
  await encryptFor(store, { to: BOB, self: ME }, 'hi', { targets: { to: [1], own: [], identityKey: bob.identityKeyPair.publicKey }, fetchBundles, writesFor });
  const other = makeParty('mallory').identityKeyPair.publicKey;
  await assert.rejects(
    encryptFor(store, { to: BOB, self: ME }, 'hi', { targets: { to: [1], own: [], identityKey: other }, fetchBundles, writesFor }),
    IdentityChangedError,
  );
  assert.equal((await store.get('identities', BOB)).changedTo, other);

  const fresh = setUp();
  const mallory = makeParty('mallory');
  const forged = async (email, ids) => (email === ME ? bundlesOf([deviceOf(mallory, 2)]) : fresh.fetchBundles(email, ids));
  await assert.rejects(
    encryptFor(fresh.store, { to: BOB, self: ME }, 'hi', { targets: { to: [1], own: [2] }, fetchBundles: forged, writesFor }),
    (error) => error.code === 'invalid_bundle',
  );
  assert.deepEqual(await fresh.store.all('signalSessions'), [], 'nothing stored');
  await assert.rejects(
    encryptFor(fresh.store, { to: BOB, self: ME }, 'hi', {
      targets: { to: [1], own: [], ownIdentityKey: other },
      fetchBundles: fresh.fetchBundles,
      writesFor,
    }),
    /replaced on another device/,
  );
});

test("a copy labelled as our own device's but made under another identity key is not read", async () => {
  const { devices } = setUp();
  // Bob's client sends to "me": a real copy, but the server labels it as from my own account.
  const bobStore = storeOf(devices.bob1);
  const meDevice = deviceOf(makeParty('me'), 1);
  const frame = await encryptFor(bobStore, { to: ME, self: BOB }, 'pretend', {
    targets: { to: [1], own: [] },
    fetchBundles: async () => bundlesOf([meDevice]),
    writesFor: () => [],
  });
  const message = await decryptAt(meDevice, ME, 2, frame.copies[0], { own: true });
  assert.equal(message.text, null);
  assert.equal(message.failed, 'authentication_failed');
});

test("devices no longer listed lose their sessions; the others' stay", async () => {
  const { store, fetchBundles, bob } = setUp();
  await encryptFor(store, { to: BOB, self: ME }, 'hi', { targets: { to: [1, 2, 3], own: [], identityKey: bob.identityKeyPair.publicKey }, fetchBundles, writesFor: () => [] });
  assert.deepEqual(await dropSessionsExcept(store, BOB, [1, 3]), [2]);
  assert.deepEqual((await store.all('signalSessions', { prefix: [BOB] })).map((r) => r.device), [1, 3]);
});

// --- the outbox around it (client/outbox.js), with the server's key routes faked ------------------

/** fetch stand-in for keys/devices and keys/bundles; `server` says what they answer now. */
function fakeKeyServer(server) {
  const calls = [];
  globalThis.document.cookie = 'csrftoken=test';
  globalThis.fetch = async (url, options) => {
    const body = JSON.parse(options.body);
    calls.push([url, body.email, body.device_ids]);
    const devices = server[body.email];
    const answer = url.endsWith('/keys/devices')
      ? { identity_key: devices[0].identityKeyPair.publicKey, device_ids: devices.map((d) => d.id) }
      : bundlesOf(devices.filter((d) => body.device_ids.includes(d.id)));
    return new Response(JSON.stringify(answer), { status: 200 });
  };
  return calls;
}

function outboxOn(store) {
  const p = { ...parts(), store };
  p.state.setMe({ id: 1, email: ME, device: { id: 1, name: 'Browser' } });
  const conversations = new Conversations(p);
  const keys = new Keys({ ...p, report: (error) => assert.fail(error) });
  return { ...p, outbox: new Outbox({ ...p, conversations, keys, receipts: new Receipts(p) }) };
}

test('the outbox sends one frame for all devices, corrects it after a mismatch with the same client_id, and re-reads a list kept from before an identity change', async () => {
  const { devices, store } = setUp();
  const server = { [BOB]: [devices.bob1, devices.bob2], [ME]: [{ id: 1, identityKeyPair: devices.me2.identityKeyPair }, devices.me2] };
  const { transport, outbox: box } = outboxOn(store);
  const calls = fakeKeyServer(server);

  await box.send(BOB, 'hi');
  const [first] = transport.sent;
  assert.deepEqual([first.type, first.to], ['send', BOB]);
  assert.deepEqual(first.copies.map((c) => c.device), [1, 2]);
  assert.deepEqual(first.own.map((c) => c.device), [2]);

  // Bob unlinked device 2 and linked device 3: the frame is corrected, not remade.
  server[BOB] = [devices.bob1, devices.bob3];
  calls.length = 0;
  await box.onError({ type: 'error', client_id: first.client_id, code: 'device_mismatch', missing: { to: [3], own: [] }, extra: { to: [2], own: [] } });
  const second = transport.sent[1];
  assert.equal(second.client_id, first.client_id);
  assert.deepEqual(second.copies.map((c) => c.device), [1, 3]);
  assert.deepEqual(second.copies[0], first.copies[0]);
  assert.deepEqual(second.own, first.own);
  assert.deepEqual(calls, [['/api/v1/keys/bundles', BOB, [3]]]);
  assert.equal(await store.get('signalSessions', BOB, 2), null);
  assert.equal((await store.get('outbox', first.client_id)).mismatches, 1);

  // Another round (the corrected frame met yet another change): counted.
  await box.onError({ type: 'error', client_id: first.client_id, code: 'device_mismatch', missing: { to: [3], own: [] }, extra: { to: [2], own: [] } });
  assert.equal((await store.get('outbox', first.client_id)).mismatches, 2);
  // Once it was sent, a late mismatch for it changes nothing.
  await box.onSent({ type: 'sent', client_id: first.client_id, id: 70 });
  const sends = transport.sent.length;
  await box.onError({ type: 'error', client_id: first.client_id, code: 'device_mismatch', missing: { to: [3], own: [] }, extra: { to: [], own: [] } });
  assert.equal(transport.sent.length, sends);
  assert.deepEqual(await store.all('outbox'), []);

  // Bob started over (new identity key, device 4) and the user accepted it: the list kept from
  // before names the old key, so it is read again instead of raising the change once more.
  await box.send(BOB, 'the list is kept after this one');
  const newBob = deviceOf(makeParty('bob-again'), 4);
  server[BOB] = [newBob];
  await store.write([{ put: 'identities', value: { email: BOB, identityKey: newBob.identityKeyPair.publicKey, verified: false } }]);
  await box.send(BOB, 'to the new key');
  const last = transport.sent.at(-1);
  assert.notEqual(last.client_id, first.client_id);
  assert.deepEqual(last.copies.map((c) => c.device), [4]);
  assert.equal((await store.get('identities', BOB)).changedTo, undefined);
});
