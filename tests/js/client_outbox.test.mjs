// static/js/client/outbox.js with a fake transport: what goes out, when, and again after a reconnect.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conversations } from '../../static/js/client/conversations.js';
import { Keys } from '../../static/js/client/keys.js';
import { Outbox } from '../../static/js/client/outbox.js';
import { Receipts } from '../../static/js/client/receipts.js';
import { parts } from './client_parts.mjs';

const BOB = 'bob@example.org';

function outbox() {
  const p = parts();
  const conversations = new Conversations(p);
  const keys = new Keys({ ...p, report: (error) => assert.fail(error) });
  const receipts = new Receipts(p);
  return { ...p, receipts, outbox: new Outbox({ ...p, conversations, keys, receipts }) };
}

const copies = (clientId) => [{ device: 1, kind: 'message', body: `body-${clientId}` }];
const own = (clientId) => [{ device: 2, kind: 'message', body: `own-${clientId}` }];

/** A message already encrypted for every device and queued, as outbox.send leaves it. */
async function queued(store, clientId, seq) {
  await store.write([
    { put: 'messages', value: { id: clientId, contact: BOB, direction: 'out', text: 'hi', ts: seq, status: 'sending' } },
    { put: 'outbox', value: { clientId, seq, to: BOB, copies: copies(clientId), own: own(clientId) } },
  ]);
}

const sends = (transport) => transport.sent.filter((f) => f.type === 'send').map((f) => f.client_id);

test('queued envelopes go out in order, once per socket, and again under the same client_id after a reconnect', async () => {
  const { store, transport, outbox: box } = outbox();
  await queued(store, 'c2', 2);
  await queued(store, 'c1', 1);
  await box.flush();
  assert.deepEqual(transport.sent[0], { type: 'send', client_id: 'c1', to: BOB, copies: copies('c1'), own: own('c1') });
  await box.flush();
  assert.deepEqual(sends(transport), ['c1', 'c2']);
  box.onConnect();
  await box.flush();
  assert.deepEqual(sends(transport), ['c1', 'c2', 'c1', 'c2']);
});

test('nothing goes out while the socket is closed, and the outbox keeps it', async () => {
  const { store, transport, outbox: box } = outbox();
  await queued(store, 'c1', 1);
  transport.isOpen = false;
  await box.flush();
  assert.deepEqual(transport.sent, []);
  assert.equal((await store.all('outbox')).length, 1);
});

test('`sent` takes the envelope out of the outbox and applies a receipt that overtook it', async () => {
  const { store, tabs, receipts, outbox: box } = outbox();
  await queued(store, 'c1', 1);
  await receipts.onReceipt([77], 'delivered');
  await box.onSent({ type: 'sent', client_id: 'c1', id: 77 });
  const message = await store.get('messages', 'c1');
  assert.equal(message.status, 'delivered');
  assert.equal(message.serverId, 77);
  assert.equal(message.awaiting, 77);
  assert.deepEqual(await store.all('outbox'), []);
  assert.deepEqual(tabs.messages, [{ type: 'conversation', email: BOB }]);
  assert.equal(receipts.takeEarly(77), undefined);
});

test('a rate-limited send goes again after retry_after; a refused one fails and leaves the outbox', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { store, transport, outbox: box } = outbox();
  await queued(store, 'c1', 1);
  await queued(store, 'c2', 2);
  await box.flush();
  await box.onError({ type: 'error', client_id: 'c1', code: 'rate_limited', retry_after: 2 });
  await box.onError({ type: 'error', client_id: 'c2', code: 'not_a_contact', detail: 'Not a contact.' });
  const failed = await store.get('messages', 'c2');
  assert.equal(failed.status, 'failed');
  assert.equal(failed.error, 'Not a contact.');
  assert.deepEqual((await store.all('outbox')).map((e) => e.clientId), ['c1']);
  t.mock.timers.tick(1999);
  assert.deepEqual(sends(transport), ['c1', 'c2']);
  t.mock.timers.tick(1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(sends(transport), ['c1', 'c2', 'c1']);
});

test('retry puts a failed message back in the outbox, without copies, under its client_id', async () => {
  const { store, state, transport, outbox: box } = outbox();
  transport.isOpen = false;
  await store.write([
    { put: 'messages', value: { id: 'c1', contact: BOB, direction: 'out', text: 'hi', ts: 1, status: 'failed', serverId: 5, error: 'x' } },
  ]);
  await box.retry('c1');
  const message = await store.get('messages', 'c1');
  assert.equal(message.status, 'sending');
  assert.equal('error' in message || 'serverId' in message, false);
  const [entry] = await store.all('outbox');
  assert.equal(entry.clientId, 'c1');
  assert.equal(entry.to, BOB);
  assert.equal('copies' in entry, false);
  assert.equal(state.conversations.get(BOB)[0].status, 'sending');
});

test('retry leaves a message that has not failed alone', async () => {
  const { store, outbox: box } = outbox();
  await queued(store, 'c1', 1);
  await box.retry('c1');
  assert.equal((await store.get('messages', 'c1')).status, 'sending');
  assert.deepEqual((await store.get('outbox', 'c1')).copies, copies('c1'));
});
