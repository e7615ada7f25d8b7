// static/js/client/groups.js with the outbox (static/js/client/outbox.js), a fake transport and
// a fake server behind fetch: the list and its notice lines, a group message as a group_send
// frame, the stale_epoch repair under the same client_id (the third in a row fails), refusals,
// `sent` and group_receipts, and sends held while a member's safety number changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conversations } from '../../static/js/client/conversations.js';
import { Groups } from '../../static/js/client/groups.js';
import { Keys } from '../../static/js/client/keys.js';
import { Outbox } from '../../static/js/client/outbox.js';
import { Receipts } from '../../static/js/client/receipts.js';
import { Typing } from '../../static/js/client/typing.js';
import { encryptForGroup, groupSettingsPlaintext, groupTextPlaintext } from '../../static/js/session.js';
import { bundlesOf, deviceOf, parts, storeOf } from './client_parts.mjs';
import { makeParty } from './helpers.mjs';

const ME = 'me@example.org';
const BOB = 'bob@example.org';
const CAROL = 'carol@example.org';
const ID = '2f1c0e4a-9b7d-4c1e-8f3a-5d6b7c8d9e0f';
const KEY = `group:${ID}`;

const member = (email, role = 'member') => ({ email, role, devices: [1] });

/** The server as fetch sees it: the group as `server.group` says, its changes, bundles. */
function fakeServer(devices) {
  const server = {
    group: { id: ID, epoch: 1, role: 'admin', members: [member(ME, 'admin'), member(BOB)] },
    changes: [{ id: 1, epoch: 1, change: 'created', actor: ME, members: [BOB], at: '2026-01-01T00:00:00Z' }],
    asked: [],
  };
  globalThis.document.cookie = 'csrftoken=token';
  globalThis.fetch = async (url, { method, body }) => {
    const data = body ? JSON.parse(body) : null;
    server.asked.push([method, url, data]);
    let answer = null;
    if (url === '/api/v1/groups/') answer = { groups: server.group ? [server.group] : [], members_max: 256 };
    else if (url === '/api/v1/groups/changes') answer = { changes: server.changes.filter((c) => c.id > data.after) };
    else if (url === '/api/v1/keys/bundles') answer = bundlesOf(devices[data.email].filter((d) => data.device_ids.includes(d.id)));
    else throw new Error(`unexpected ${method} ${url}`);
    return new Response(JSON.stringify(answer), { status: 200, headers: { 'Content-Type': 'application/json' } });
  };
  return server;
}

function setUp() {
  const p = parts();
  const me = makeParty('me');
  const devices = { [BOB]: [deviceOf(makeParty('bob'), 1)], [CAROL]: [deviceOf(makeParty('carol'), 1)], [ME]: [] };
  const meDevice = deviceOf(me, 1);
  const store = storeOf(meDevice);
  p.state.setMe({ id: 1, email: ME, device: { id: 1, name: 'this' } });
  const server = fakeServer(devices);
  const errors = [];
  const report = (error) => errors.push(error);
  const conversations = new Conversations({ ...p, store });
  const keys = new Keys({ ...p, store, report });
  const receipts = new Receipts({ ...p, store });
  const typing = new Typing(p);
  const notifications = { notifyGroup() {} };
  const built = {};
  built.groups = new Groups({
    ...p,
    store,
    conversations,
    keys,
    receipts,
    notifications,
    typing,
    flush: () => built.outbox.flush(),
    fail: (clientId, reason) => built.outbox.fail(clientId, reason),
    keep: (message, entry, error) => built.outbox.keepUnencrypted(message, entry, error),
    report,
  });
  built.outbox = new Outbox({ ...p, store, conversations, keys, receipts, groups: built.groups });
  return { ...p, store, server, errors, devices, meDevice, ...built };
}

const groupSends = (transport) => transport.sent.filter((f) => f.type === 'group_send');
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

test('on connect: the group is stored and shown, its changes become notice lines once', async () => {
  const { state, store, groups, errors } = setUp();
  await groups.sync();
  await groups.sync();
  assert.deepEqual(errors, []);
  assert.equal(state.groups.get(KEY).members.length, 2);
  const lines = (await store.all('messages')).filter((m) => m.notice);
  assert.deepEqual(lines.map((m) => [m.contact, m.text]), [[KEY, `${ME} created the group with ${BOB}`]]);
  assert.equal((await store.get('groups', ID)).lastChange, 1);
});

test('a group message goes out as group_send; stale_epoch repairs it under the same client_id, the third fails', async () => {
  const { state, store, transport, server, groups, outbox, errors } = setUp();
  await groups.sync();
  await groups.send(KEY, 'hello');
  await settle();
  const [frame] = groupSends(transport);
  assert.equal(frame.group, ID);
  assert.equal(frame.epoch, 1);
  assert.deepEqual(frame.keys.map((k) => [k.email, k.device]), [[BOB, 1]]);
  const message = (await store.all('messages')).find((m) => m.text === 'hello');
  assert.equal(message.contact, KEY);
  assert.equal(message.sender, ME);

  // Carol joined: the same body, a key for her too, the new epoch.
  server.group = { ...server.group, epoch: 2, members: [...server.group.members, member(CAROL)] };
  await outbox.onError({ type: 'error', client_id: frame.client_id, code: 'stale_epoch', epoch: 2 });
  await settle();
  const repaired = groupSends(transport).at(-1);
  assert.equal(repaired.client_id, frame.client_id);
  assert.equal(repaired.body, frame.body);
  assert.equal(repaired.epoch, 2);
  assert.deepEqual(repaired.keys.map((k) => k.email), [BOB, CAROL]);

  await outbox.onError({ type: 'error', client_id: frame.client_id, code: 'stale_epoch', epoch: 2 });
  await settle();
  await outbox.onError({ type: 'error', client_id: frame.client_id, code: 'stale_epoch', epoch: 2 });
  await settle();
  const failed = await store.get('messages', frame.client_id);
  assert.equal(failed.status, 'failed');
  assert.match(failed.error, /changed 3 times/);
  assert.equal(await store.get('outbox', frame.client_id), null);
  assert.equal(state.messagesOf(KEY).find((m) => m.id === frame.client_id).status, 'failed');
  assert.deepEqual(errors, []);
});

test('`sent` marks it sent and awaiting counts; group_receipts keep the counts, read by all ends the question', async () => {
  const { store, transport, groups, outbox } = setUp();
  await groups.sync();
  await groups.send(KEY, 'counted');
  await settle();
  const [frame] = groupSends(transport);
  await outbox.onSent({ type: 'sent', client_id: frame.client_id, id: 900 });
  let message = await store.get('messages', frame.client_id);
  assert.equal(message.status, 'sent');
  assert.equal(message.groupAwaiting, 900);
  // Bob holds our key now: the next message carries no keys.
  await groups.send(KEY, 'no keys');
  await settle();
  assert.deepEqual(groupSends(transport).at(-1).keys, []);

  await groups.askReceipts();
  assert.deepEqual(transport.sent.filter((f) => f.type === 'group_receipts').at(-1), { type: 'group_receipts', ids: [900] });
  await groups.onReceipts({ type: 'group_receipts', receipts: [{ id: 900, delivered: 1, read: 1, of: 1 }] });
  message = await store.get('messages', frame.client_id);
  assert.deepEqual(message.counts, { delivered: 1, read: 1, of: 1 });
  assert.equal(message.status, 'read');
  assert.equal('groupAwaiting' in message, false);
});

test('on connect the newest group messages still awaiting are asked about, not the oldest', async () => {
  const { store, transport, groups } = setUp();
  // More than one question holds (1,000 ids): in a group someone never reads, the oldest wait for ever.
  const waiting = Array.from({ length: 1005 }, (_, i) => ({
    id: `c${i}`, contact: KEY, direction: 'out', status: 'sent', ts: i, serverId: 10 + i, groupAwaiting: 10 + i,
  }));
  await store.write(waiting.map((value) => ({ put: 'messages', value })));
  await groups.askReceipts();
  const [question] = transport.sent.filter((f) => f.type === 'group_receipts');
  assert.equal(question.ids.length, 1000);
  assert.equal(question.ids.at(-1), 1014);
  assert.equal(question.ids.includes(10), false);
});

test('group_not_found fails the message with a reason', async () => {
  const { store, transport, groups, outbox } = setUp();
  await groups.sync();
  await groups.send(KEY, 'too late');
  await settle();
  const [frame] = groupSends(transport);
  await outbox.onError({ type: 'error', client_id: frame.client_id, code: 'group_not_found' });
  const message = await store.get('messages', frame.client_id);
  assert.equal(message.status, 'failed');
  assert.match(message.error, /no longer a member/);
});

test('a member whose safety number changed holds the group send until the change is accepted', async () => {
  const { state, store, transport, groups, outbox, devices } = setUp();
  await groups.sync();
  await store.write([{ put: 'identities', value: { email: BOB, identityKey: 'old', changedTo: 'new', verified: false } }]);
  await groups.send(KEY, 'held');
  await settle();
  assert.deepEqual(groupSends(transport), []);
  const held = (await store.all('messages')).find((m) => m.text === 'held');
  assert.equal(held.status, 'held');
  assert.deepEqual(state.groups.get(KEY).held, [BOB]);
  assert.ok(await store.get('outbox', held.id));

  // Accepted (keys.accept trusts the new key): the message is released and goes out.
  await store.write([{ put: 'identities', value: { email: BOB, identityKey: devices[BOB][0].identityKeyPair.publicKey, verified: false } }]);
  await outbox.releaseHeld(BOB);
  await groups.refreshHeld();
  await outbox.flush();
  await settle();
  assert.equal(groupSends(transport).length, 1);
  assert.deepEqual(state.groups.get(KEY).held, []);
});


test('received copies: a text from a member (stored once), the name from a settings message', async () => {
  const { state, store, groups, devices, meDevice, errors } = setUp();
  await groups.sync();
  // Bob's browser: its sender key handed to us through a new session.
  const bobStore = storeOf(devices[BOB][0]);
  const bundles = async () => bundlesOf([meDevice]);
  const members = [{ email: ME, devices: [1] }, { email: BOB, devices: [1] }];
  const text = await encryptForGroup(bobStore, { groupId: ID, self: BOB, selfDevice: 1, members }, groupTextPlaintext('from bob'), {
    fetchBundles: bundles,
    writesFor: () => [],
  });
  const named = await encryptForGroup(bobStore, { groupId: ID, self: BOB, selfDevice: 1, members }, groupSettingsPlaintext('Climbing'), {
    fetchBundles: bundles,
    writesFor: () => [],
  });
  const frame = (id, made, key) => groups.checkFrame({
    type: 'group_message', id, message_id: id, group: ID, from: BOB, from_device: 1, body: made.body,
    key: key ? { kind: key.kind, body: key.body } : null, sent_at: '2026-01-02T00:00:00Z',
  });
  await groups.takeFrom([frame(11, text, text.keys[0]), frame(12, named, null)]);
  assert.deepEqual(errors, []);
  const received = await store.get('messages', 'in:11');
  assert.equal(received.text, 'from bob');
  assert.equal(received.contact, KEY);
  assert.equal(received.sender, BOB);
  assert.equal(received.unread, 1);
  const line = await store.get('messages', 'in:12');
  assert.equal(line.notice, true);
  assert.equal(line.text, `${BOB} named the group "Climbing"`);
  assert.equal((await store.get('groups', ID)).name, 'Climbing');
  assert.equal(state.groups.get(KEY).name, 'Climbing');
  assert.equal(state.groups.get(KEY).unread, 1);
  // Redelivered: stored once.
  await groups.takeFrom([frame(11, text, text.keys[0])]);
  assert.equal((await store.all('messages')).filter((m) => m.id === 'in:11').length, 1);
});
