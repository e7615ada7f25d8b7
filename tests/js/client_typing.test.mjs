// static/js/client/typing.js with a fake transport and mocked timers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Typing } from '../../static/js/client/typing.js';
import { parts } from './client_parts.mjs';

const BOB = 'bob@example.org';

test('typing sends `start` at most every 3 s and `stop` after 4 s without input', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  t.mock.timers.setTime(100000);
  const p = parts();
  const typing = new Typing(p);
  typing.input(BOB);
  t.mock.timers.tick(2000);
  typing.input(BOB);
  assert.deepEqual(p.transport.sent, [{ type: 'typing', to: BOB, state: 'start' }]);
  t.mock.timers.tick(3999);
  assert.equal(p.transport.sent.length, 1);
  t.mock.timers.tick(1);
  assert.deepEqual(p.transport.sent.at(-1), { type: 'typing', to: BOB, state: 'stop' });
  typing.stop(BOB);
  assert.equal(p.transport.sent.length, 2);
});

test('nothing is sent about typing while the socket is closed', () => {
  const p = parts();
  p.transport.isOpen = false;
  new Typing(p).input(BOB);
  assert.deepEqual(p.transport.sent, []);
});

test("a contact's typing shows until 6 s after their last frame", (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const p = parts();
  const typing = new Typing(p);
  typing.onFrame({ type: 'typing', from: BOB, state: 'start' });
  assert.equal(p.state.contacts.get(BOB).typing, true);
  t.mock.timers.tick(5999);
  assert.equal(p.state.contacts.get(BOB).typing, true);
  t.mock.timers.tick(1);
  assert.equal(p.state.contacts.get(BOB).typing, false);
  typing.onFrame({ type: 'typing', from: BOB, state: 'start' });
  typing.onFrame({ type: 'typing', from: BOB, state: 'stop' });
  assert.equal(p.state.contacts.get(BOB).typing, false);
});
