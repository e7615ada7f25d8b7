// static/js/client/receipts.js with a fake transport: acks, reads, receipts about our messages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Receipts } from '../../static/js/client/receipts.js';
import { parts } from './client_parts.mjs';

const BOB = 'bob@example.org';

function receipts() {
  const p = parts();
  return { ...p, receipts: new Receipts(p) };
}

const incoming = (serverId) => ({
  id: `in:${serverId}`,
  serverId,
  contact: BOB,
  direction: 'in',
  text: 'hi',
  ts: serverId,
  status: 'received',
  unread: 1,
});

const outgoing = (id, serverId, status) => ({
  id,
  serverId,
  contact: BOB,
  direction: 'out',
  text: 'hi',
  ts: serverId,
  status,
  ...(status === 'read' ? {} : { awaiting: serverId }),
});

test('acks of envelopes stored close together go in one frame', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { transport, receipts: r } = receipts();
  r.ack(1);
  r.ack(2);
  assert.deepEqual(transport.sent, []);
  t.mock.timers.tick(30);
  assert.deepEqual(transport.sent, [{ type: 'ack', ids: [1, 2] }]);
});

test('stop drops acks that have not gone yet (the envelopes come back on the next connect)', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { transport, receipts: r } = receipts();
  r.ack(1);
  r.stop();
  t.mock.timers.tick(1000);
  assert.deepEqual(transport.sent, []);
});

test('the open conversation is marked read with a `read` frame, only while the socket is open', async () => {
  const { state, store, transport, tabs, receipts: r } = receipts();
  await store.write([{ put: 'messages', value: incoming(5) }, { put: 'messages', value: incoming(6) }]);
  state.setActive(BOB);
  transport.isOpen = false;
  await r.markActiveRead();
  assert.deepEqual(transport.sent, []);
  assert.equal((await store.all('messages', { index: 'unread', prefix: [BOB, 1] })).length, 2);
  transport.isOpen = true;
  await r.markActiveRead();
  assert.deepEqual(transport.sent, [{ type: 'read', ids: [5, 6] }]);
  assert.equal(await store.count('messages', { index: 'unread', prefix: [BOB, 1] }), 0);
  assert.equal(state.contacts.get(BOB).unread, 0);
  assert.deepEqual(tabs.messages, [{ type: 'conversation', email: BOB }]);
});

test('a read the server could not apply goes again on the next connect', async () => {
  const { transport, receipts: r } = receipts();
  transport.isOpen = false;
  assert.equal(r.onError({ type: 'error', code: 'server_error', frame: 'read', ids: [9], retry_after: 60 }), true);
  assert.equal(r.onError({ type: 'error', code: 'not_a_contact', client_id: 'c1' }), false);
  transport.isOpen = true;
  r.onConnect();
  assert.deepEqual(transport.sent, [{ type: 'read', ids: [9] }]);
  r.stop();
});

test('receipts move our messages forward only, and one for an unknown id waits for its `sent`', async () => {
  const { store, receipts: r } = receipts();
  await store.write([{ put: 'messages', value: outgoing('a', 1, 'delivered') }, { put: 'messages', value: incoming(2) }]);
  await r.onReceipt([1, 2, 3], 'read');
  await r.onReceipt([1], 'delivered');
  const a = await store.get('messages', 'a');
  assert.equal(a.status, 'read');
  assert.equal('awaiting' in a, false);
  assert.equal((await store.get('messages', 'in:2')).status, 'received');
  assert.equal(r.takeEarly(3), 'read');
  assert.equal(r.takeEarly(3), undefined);
});

test('the receipts question names the messages still awaiting a read; its answer settles them', async () => {
  const { store, transport, receipts: r } = receipts();
  await store.write([
    { put: 'messages', value: outgoing('a', 1, 'sent') },
    { put: 'messages', value: outgoing('b', 2, 'sent') },
    { put: 'messages', value: outgoing('c', 3, 'delivered') },
    { put: 'messages', value: outgoing('d', 4, 'sent') },
  ]);
  await r.ask();
  assert.deepEqual(transport.sent, [{ type: 'receipts', ids: [1, 2, 3, 4] }]);
  await r.onAnswer({ type: 'receipts', delivered: [1], read: [2], unknown: [3, 4, 'x'] });
  const [a, b, c, d] = await Promise.all(['a', 'b', 'c', 'd'].map((id) => store.get('messages', id)));
  assert.equal(a.status, 'delivered');
  assert.equal(a.awaiting, 1);
  assert.equal(b.status, 'read');
  assert.equal('awaiting' in b, false);
  assert.equal(c.status, 'delivered');
  assert.equal('awaiting' in c, false);
  assert.equal(d.status, 'failed');
  assert.match(d.error, /expired/);
  assert.equal('awaiting' in d, false);
});
