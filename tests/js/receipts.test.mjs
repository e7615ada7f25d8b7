import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReceiptRetry } from '../../static/js/receipts.js';

/** A ReceiptRetry whose socket, timers, jitter and clock are the test's. */
function harness({ open = true } = {}) {
  const sent = [];
  const timers = [];
  const socket = { open };
  let clock = 0;
  const retry = new ReceiptRetry({
    send: (frame) => {
      if (!socket.open) return false;
      sent.push(frame);
      return true;
    },
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    random: () => 0.5,
    now: () => clock,
  });
  return {
    retry,
    sent,
    timers,
    socket,
    advance(ms) {
      clock += ms;
    },
    fire() {
      const { fn } = timers.shift();
      fn();
    },
  };
}

const error = (frame, ids, extra = {}) => ({ type: 'error', code: 'server_error', detail: 'x', frame, ids, ...extra });

test('a failed ack is sent again after a backoff with the ids the error named', () => {
  const h = harness();
  assert.equal(h.retry.onError(error('ack', [7, 8])), true);
  assert.deepEqual(h.sent, []);
  assert.equal(h.timers.length, 1);
  h.fire();
  assert.deepEqual(h.sent, [{ type: 'ack', ids: [7, 8] }]);
});

test('a failed read is sent again as a read, and before the acks', () => {
  const h = harness();
  h.retry.onError(error('ack', [1]));
  h.retry.onError(error('read', [2]));
  assert.equal(h.timers.length, 1); // one timer for whatever waits
  h.fire();
  assert.deepEqual(h.sent, [{ type: 'read', ids: [2] }, { type: 'ack', ids: [1] }]);
});

test('failures close together back off exponentially, up to 30 s; a quiet spell starts again', () => {
  const h = harness();
  const delays = [];
  for (let i = 0; i < 10; i += 1) {
    h.retry.onError(error('ack', [i + 1]));
    delays.push(h.timers.at(-1).ms);
    h.fire();
    h.advance(1000);
  }
  // random() = 0.5: three quarters of the ceiling
  assert.deepEqual(delays.slice(0, 4), [187.5, 375, 750, 1500]);
  assert.equal(delays.at(-1), 22500);
  h.advance(31000);
  h.retry.onError(error('ack', [99]));
  assert.equal(h.timers.at(-1).ms, 187.5);
});

test('a rate-limited receipt waits retry_after seconds', () => {
  const h = harness();
  h.retry.onError(error('read', [5], { code: 'rate_limited', retry_after: 3 }));
  assert.equal(h.timers[0].ms, 3000);
});

test('with the socket down the receipts wait for the reconnect, then go out in frames of 1000 ids', () => {
  const h = harness({ open: false });
  const ids = Array.from({ length: 1500 }, (_, i) => i + 1);
  h.retry.onError(error('ack', ids));
  h.fire();
  assert.deepEqual(h.sent, []);
  h.socket.open = true;
  h.retry.flush(); // what the client does on every connect
  assert.deepEqual(
    h.sent.map((f) => [f.type, f.ids.length]),
    [
      ['ack', 1000],
      ['ack', 500],
    ],
  );
  h.retry.flush();
  assert.equal(h.sent.length, 2); // sent once
});

test('other errors are not receipts: not handled, nothing scheduled', () => {
  const h = harness();
  assert.equal(h.retry.onError({ type: 'error', code: 'invalid_ids', detail: 'x' }), false);
  assert.equal(h.retry.onError({ type: 'error', code: 'server_error', client_id: 'c' }), false);
  assert.equal(h.retry.onError(error('send', [1])), false);
  assert.equal(h.retry.onError(error('ack', 'nope')), false);
  assert.equal(h.timers.length, 0);
});

test('ids that are not envelope ids are dropped', () => {
  const h = harness();
  h.retry.onError(error('ack', [1, -2, 'x', 2.5, 3]));
  h.fire();
  assert.deepEqual(h.sent, [{ type: 'ack', ids: [1, 3] }]);
});
