// The in-memory side of issue #14: a conversation's window (static/js/state.js), and the intake of
// envelopes in batches (static/js/client/inbox.js). No DOM, no IndexedDB.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EnvelopeIntake, BATCH_MAX } from '../../static/js/client/inbox.js';
import { AppState, compareMessages, Topic, WINDOW_MAX } from '../../static/js/state.js';

const message = (n, fields = {}) => ({ id: `in:${String(n).padStart(6, '0')}`, contact: 'bob@example.test', direction: 'in', text: `m${n}`, ts: 1000 * n, ...fields });
const range = (from, to) => Array.from({ length: to - from }, (_, i) => message(from + i));

function watched() {
  const state = new AppState();
  const events = [];
  state.addEventListener('change', (event) => events.push(event.detail));
  return { state, events };
}

test('display order is time, then id in code unit order (the order of the history index)', () => {
  const a = { id: 'in:10', ts: 5 };
  const b = { id: 'in:9', ts: 5 };
  const c = { id: 'zz', ts: 4 };
  assert.deepEqual([a, b, c].sort(compareMessages), [c, a, b]);
});

test('a new message joins the window at its place, a changed one replaces its record, each with one event', () => {
  const { state, events } = watched();
  state.setConversation('bob@example.test', [message(1), message(3)]);
  events.length = 0;
  state.upsertMessages([message(2), message(4), message(3, { status: 'read' })]);
  assert.deepEqual(state.messagesOf('bob@example.test').map((m) => m.text), ['m1', 'm2', 'm3', 'm4']);
  assert.equal(state.messagesOf('bob@example.test')[2].status, 'read');
  const changes = events.filter((e) => e.topic === Topic.MESSAGES);
  assert.equal(changes.length, 1);
  assert.equal(changes[0].messages.length, 3);
  assert.deepEqual(changes[0].dropped, []);
});

test('a window at the latest keeps WINDOW_MAX messages: the oldest leave it and it has older ones', () => {
  const { state, events } = watched();
  state.setConversation('bob@example.test', range(0, WINDOW_MAX));
  state.upsertMessages(range(WINDOW_MAX, WINDOW_MAX + 10));
  const view = state.windowOf('bob@example.test');
  assert.equal(view.messages.length, WINDOW_MAX);
  assert.equal(view.messages[0].text, 'm10');
  assert.equal(view.hasOlder, true);
  const last = events.at(-1);
  assert.deepEqual(last.dropped.map((m) => m.text), range(0, 10).map((m) => m.text));
});

test('messages outside a window that does not reach them stay out of it', () => {
  const { state } = watched();
  state.setConversation('bob@example.test', range(100, 200), { hasOlder: true, hasNewer: true });
  state.upsertMessages([message(5, { status: 'read' }), message(500)]);
  const view = state.windowOf('bob@example.test');
  assert.equal(view.messages.length, 100);
  assert.equal(view.messages[0].text, 'm100');
  assert.equal(view.messages.at(-1).text, 'm199');
});

test('pages join at either end and the far end gives way beyond WINDOW_MAX', () => {
  const { state, events } = watched();
  state.setConversation('bob@example.test', range(1000, 1000 + WINDOW_MAX), { hasOlder: true });
  state.extendConversation('bob@example.test', 'older', range(900, 1000), true);
  let view = state.windowOf('bob@example.test');
  assert.equal(view.messages.length, WINDOW_MAX);
  assert.equal(view.messages[0].text, 'm900');
  assert.equal(view.hasNewer, true);
  assert.equal(events.at(-1).topic, Topic.WINDOW);
  assert.equal(events.at(-1).dropped.length, 100);

  state.extendConversation('bob@example.test', 'newer', range(1200, 1300), false);
  view = state.windowOf('bob@example.test');
  assert.equal(view.messages.length, WINDOW_MAX);
  assert.equal(view.messages.at(-1).text, 'm1299');
  assert.equal(view.hasNewer, false);
  assert.equal(view.hasOlder, true);
});

test('a contact change names the contact; the list is told only when its order changes', () => {
  const { state, events } = watched();
  state.setContacts([{ email: 'bob@example.test', since: '' }]);
  events.length = 0;
  state.updateContact('bob@example.test', { unread: 3 });
  assert.deepEqual(events.map((e) => e.topic), [Topic.CONTACT]);
  state.updateContact('bob@example.test', { lastAt: 5 });
  assert.deepEqual(events.map((e) => e.topic), [Topic.CONTACT, Topic.CONTACT, Topic.CONTACTS]);
});

test('the intake takes what gathered, in order, at most BATCH_MAX at a time, and goes on after a failed batch', async () => {
  const batches = [];
  const errors = [];
  const intake = new EnvelopeIntake({
    take: async (frames) => {
      batches.push(frames.map((f) => f.id));
      if (batches.length === 1) throw new Error('storage failed');
    },
    onError: (error) => errors.push(error.message),
    pause: () => Promise.resolve(),
  });
  const ids = Array.from({ length: BATCH_MAX + 5 }, (_, i) => i + 1);
  for (const id of ids) intake.push({ id });
  await intake.idle();
  intake.push({ id: 1000 });
  await intake.idle();
  assert.deepEqual(batches, [ids.slice(0, BATCH_MAX), ids.slice(BATCH_MAX), [1000]]);
  assert.deepEqual(errors, ['storage failed']);
});
