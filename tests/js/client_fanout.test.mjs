// Protocol version 2 in the client (docs/PROTOCOL.md sections 17 and 19): device lists and the
// `device_mismatch` plan (static/js/client/fanout.js), the checks of an incoming copy
// (client/inbox.js copyFrame), what the outbox does with `device_mismatch` and `no_devices`, and
// read state across devices (client/receipts.js `read_elsewhere`, the receipts question).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conversations } from '../../static/js/client/conversations.js';
import { afterMismatch, DeviceLists, deviceListOf, MISMATCHES_MAX, targetsOf } from '../../static/js/client/fanout.js';
import { copyFrame } from '../../static/js/client/inbox.js';
import { Keys } from '../../static/js/client/keys.js';
import { Outbox } from '../../static/js/client/outbox.js';
import { Receipts } from '../../static/js/client/receipts.js';
import { parts } from './client_parts.mjs';

const BOB = 'bob@example.org';
const ME = 'me@example.org';

test('a device list is checked: identity key and distinct positive device ids, in order', () => {
  assert.deepEqual(deviceListOf({ identity_key: 'K', device_ids: [3, 1, 3] }), { identityKey: 'K', deviceIds: [1, 3] });
  assert.deepEqual(deviceListOf({ identity_key: 'K', device_ids: [] }).deviceIds, []);
  for (const bad of [null, {}, { identity_key: 'K' }, { identity_key: 'K', device_ids: [0] }, { identity_key: 'K', device_ids: ['1'] }, { identity_key: 1, device_ids: [1] }]) {
    assert.throws(() => deviceListOf(bad), /malformed/, JSON.stringify(bad));
  }
});

test("a message's devices: all of the recipient's, ours but this one", () => {
  const theirs = { identityKey: 'B', deviceIds: [1, 4] };
  const ours = { identityKey: 'A', deviceIds: [1, 2, 5] };
  assert.deepEqual(targetsOf(theirs, ours, 2), { to: [1, 4], own: [1, 5], identityKey: 'B', ownIdentityKey: 'A' });
  assert.deepEqual(targetsOf(theirs, { identityKey: 'A', deviceIds: [2] }, 2).own, []);
  assert.throws(() => targetsOf(theirs, ours, null), /not a device/);
});

test('device_mismatch: extra devices leave the frame and their sessions go, missing ones join', () => {
  const entry = {
    copies: [{ device: 1 }, { device: 3 }],
    own: [{ device: 2 }],
  };
  const answer = { missing: { to: [5], own: [] }, extra: { to: [3], own: [2] } };
  assert.deepEqual(afterMismatch(entry, answer), {
    targets: { to: [1, 5], own: [] },
    drop: { to: [3], own: [2] },
  });
  // A version-1 style answer names every device as missing: nothing is dropped, all are targets.
  assert.deepEqual(afterMismatch({ copies: [{ device: 1 }], own: [] }, { missing: { to: [1, 2], own: [4] }, extra: { to: [], own: [] } }).targets, {
    to: [1, 2],
    own: [4],
  });
  for (const bad of [{}, { missing: { to: [1] }, extra: { to: [], own: [] } }, { missing: { to: [1], own: [] }, extra: { to: ['x'], own: [] } }, { missing: null, extra: null }]) {
    assert.throws(() => afterMismatch(entry, bad), /malformed/, JSON.stringify(bad));
  }
});

test('device lists are fetched once, again after forget, and a failed fetch is not kept', async () => {
  const asked = [];
  let fail = true;
  const lists = new DeviceLists(async (email) => {
    asked.push(email);
    if (fail) throw new Error('offline');
    return { identity_key: 'K', device_ids: [1, 2] };
  });
  await assert.rejects(lists.get(BOB), /offline/);
  fail = false;
  assert.deepEqual((await lists.get(BOB)).deviceIds, [1, 2]);
  await lists.get(BOB);
  assert.deepEqual(asked, [BOB, BOB]);
  lists.forget(BOB);
  await lists.get(BOB);
  assert.deepEqual(asked, [BOB, BOB, BOB]);
});

test("an incoming copy is checked; one from our own account is ours, filed under our email and the contact's", () => {
  const frame = { type: 'message', id: 9, message_id: 4, client_id: 'c', from: BOB, from_device: 2, to: ME, kind: 'message', body: 'x' };
  assert.deepEqual(copyFrame(frame, ME), { ...frame, own: false });
  const mine = copyFrame({ ...frame, from: 'Me@Example.org', to: BOB }, ME);
  assert.equal(mine.own, true);
  assert.equal(mine.from, ME);
  assert.equal(mine.to, BOB);
  // A server from before devices: device 1, the copy id is the message id (section 19).
  const old = copyFrame({ id: 7, from: BOB, kind: 'message', body: 'x' }, ME);
  assert.equal(old.from_device, 1);
  assert.equal(old.message_id, 7);
  for (const bad of [
    null,
    { ...frame, id: 0 },
    { ...frame, id: '9' },
    { ...frame, from: null },
    { ...frame, from_device: 0 },
    { ...frame, from_device: '2' },
    { ...frame, message_id: -1 },
    { ...frame, from: ME, to: undefined },
    { ...frame, from: ME, to: ME },
  ]) {
    assert.equal(copyFrame(bad, ME), null, JSON.stringify(bad));
  }
});

function outbox() {
  const p = parts();
  p.state.setMe({ id: 1, email: ME, device: { id: 1, name: 'Browser' } });
  const conversations = new Conversations(p);
  const keys = new Keys({ ...p, report: (error) => assert.fail(error) });
  const receipts = new Receipts(p);
  return { ...p, outbox: new Outbox({ ...p, conversations, keys, receipts }) };
}

async function queued(store, clientId, mismatches = 0) {
  await store.write([
    { put: 'messages', value: { id: clientId, contact: BOB, direction: 'out', text: 'hi', ts: 1, status: 'sending' } },
    {
      put: 'outbox',
      value: { clientId, seq: 1, to: BOB, copies: [{ device: 1, kind: 'message', body: 'b' }], own: [], mismatches },
    },
  ]);
}

test(`after ${MISMATCHES_MAX} device mismatches in a row the message fails, with Retry, and leaves the outbox`, async () => {
  const { store, transport, outbox: box } = outbox();
  await queued(store, 'c1', MISMATCHES_MAX - 1);
  await box.flush();
  const answer = { type: 'error', client_id: 'c1', code: 'device_mismatch', missing: { to: [2], own: [] }, extra: { to: [], own: [] } };
  await box.onError(answer);
  const message = await store.get('messages', 'c1');
  assert.equal(message.status, 'failed');
  assert.match(message.error, /kept changing/);
  assert.deepEqual(await store.all('outbox'), []);
  assert.equal(transport.sent.filter((f) => f.type === 'send').length, 1, 'not sent again');
  // Retry starts afresh: no copies, no count.
  await box.retry('c1');
  const entry = await store.get('outbox', 'c1');
  assert.equal('copies' in entry || 'mismatches' in entry, false);
});

test('a malformed device_mismatch answer fails the message with a reason; no_devices says why', async () => {
  const { store, outbox: box } = outbox();
  await queued(store, 'c1');
  await queued(store, 'c2');
  await box.onError({ type: 'error', client_id: 'c1', code: 'device_mismatch', missing: 'all', extra: {} });
  const first = await store.get('messages', 'c1');
  assert.equal(first.status, 'failed');
  assert.match(first.error, /malformed/);
  await box.onError({ type: 'error', client_id: 'c2', code: 'no_devices', detail: 'No devices.' });
  const second = await store.get('messages', 'c2');
  assert.equal(second.status, 'failed');
  assert.match(second.error, /bob@example\.org has no device/);
  assert.deepEqual(await store.all('outbox'), []);
});

function receipts() {
  const p = parts();
  p.state.setMe({ id: 1, email: ME, device: { id: 1, name: 'Browser' } });
  return { ...p, receipts: new Receipts(p) };
}

const received = (copyId, messageId, unread = true) => ({
  id: `in:${copyId}`,
  serverId: copyId,
  messageId,
  contact: BOB,
  direction: 'in',
  text: 't',
  ts: copyId,
  status: 'received',
  ...(unread ? { unread: 1 } : {}),
});

test('read_elsewhere marks received messages read by message id, lowers the count, and sends nothing', async () => {
  const { store, state, transport, tabs, receipts: r } = receipts();
  await store.write([
    { put: 'messages', value: received(10, 4) },
    { put: 'messages', value: received(11, 5) },
    { put: 'messages', value: received(12, 6) },
  ]);
  state.updateContact(BOB, { unread: 3 });
  await r.onReadElsewhere([4, 6, 99, 'x', -1]);
  assert.equal('unread' in (await store.get('messages', 'in:10')), false);
  assert.equal((await store.get('messages', 'in:11')).unread, 1);
  assert.equal('unread' in (await store.get('messages', 'in:12')), false);
  assert.equal(state.contacts.get(BOB).unread, 1);
  assert.deepEqual(transport.sent, []);
  assert.deepEqual(tabs.messages, [{ type: 'conversation', email: BOB }]);
  await r.onReadElsewhere('nonsense');
  await r.onReadElsewhere([]);
});

test('the receipts question also names received messages still unread; read ones in the answer are marked read', async () => {
  const { store, state, transport, receipts: r } = receipts();
  await store.write([
    { put: 'messages', value: { id: 'o1', contact: BOB, direction: 'out', status: 'sent', serverId: 3, awaiting: 3, ts: 1 } },
    { put: 'messages', value: received(10, 4) },
    { put: 'messages', value: received(11, 5, false) },
  ]);
  state.updateContact(BOB, { unread: 1 });
  await r.ask();
  assert.deepEqual(transport.sent, [{ type: 'receipts', ids: [3, 4] }]);
  await r.onAnswer({ type: 'receipts', delivered: [3], read: [4], unknown: [] });
  assert.equal((await store.get('messages', 'o1')).status, 'delivered');
  assert.equal('unread' in (await store.get('messages', 'in:10')), false);
  assert.equal(state.contacts.get(BOB).unread, 0);
  // An answer never leaves "early" receipts behind for ids that are not our sent messages.
  assert.equal(r.takeEarly(4), undefined);
});
