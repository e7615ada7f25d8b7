// ChatSocket's answers to the server's close codes, with a fake WebSocket and mocked timers.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';

class FakeWebSocket {
  static OPEN = 1;
  static opened = [];

  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.OPEN;
    this.listeners = {};
    FakeWebSocket.opened.push(this);
  }

  addEventListener(type, listener) {
    (this.listeners[type] ||= []).push(listener);
  }

  send() {}

  close() {}

  serverSends(frame) {
    for (const listener of this.listeners.message || []) listener({ data: JSON.stringify(frame) });
  }

  serverCloses(code, reason = '') {
    this.readyState = 3;
    for (const listener of this.listeners.close || []) listener({ code, reason });
  }
}

globalThis.window = {
  location: { protocol: 'https:', host: 'chat.example.org' },
  addEventListener() {},
  removeEventListener() {},
};
globalThis.WebSocket = FakeWebSocket;
if (!globalThis.navigator) globalThis.navigator = { onLine: true };

const { ChatSocket } = await import('../../static/js/socket.js');

function chatSocket() {
  const notices = [];
  const socket = new ChatSocket({
    handlers: {},
    onStatus: () => {},
    refresh: async () => true,
    onSessionEnded: () => assert.fail('the session did not end'),
    onNotice: (text) => notices.push(text),
  });
  return { socket, notices };
}

test('4429 (too many sockets): a notice, and no new attempt for at least a minute', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    FakeWebSocket.opened = [];
    const { socket, notices } = chatSocket();
    socket.start();
    assert.equal(FakeWebSocket.opened.length, 1);
    FakeWebSocket.opened[0].serverCloses(4429);
    assert.equal(notices.length, 1);
    assert.match(notices[0], /Too many connections/);
    mock.timers.tick(59_999);
    assert.equal(FakeWebSocket.opened.length, 1, 'no reconnect within a minute');
    mock.timers.tick(60_001);
    assert.equal(FakeWebSocket.opened.length, 2, 'one new attempt after the pause');
    // refused again: again a pause, not a loop
    FakeWebSocket.opened[1].serverCloses(4429);
    mock.timers.tick(59_999);
    assert.equal(FakeWebSocket.opened.length, 2);
    mock.timers.tick(60_001);
    assert.equal(FakeWebSocket.opened.length, 3);
    // a place was free this time: the notice is withdrawn once the server speaks
    FakeWebSocket.opened[2].serverSends({ type: 'queue_empty' });
    assert.deepEqual(notices.slice(-1), [null]);
    socket.stop();
  } finally {
    mock.timers.reset();
  }
});

test('an ordinary close reconnects after the short backoff, without a notice', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    FakeWebSocket.opened = [];
    const { socket, notices } = chatSocket();
    socket.start();
    FakeWebSocket.opened[0].serverCloses(1006);
    mock.timers.tick(500);
    assert.equal(FakeWebSocket.opened.length, 2);
    assert.deepEqual(notices, []);
    socket.stop();
  } finally {
    mock.timers.reset();
  }
});

test('4403 with the reason device_removed: this browser was unlinked (onDeviceRemoved), no reconnect', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    FakeWebSocket.opened = [];
    const calls = [];
    const socket = new ChatSocket({
      handlers: {},
      onStatus: () => {},
      refresh: async () => assert.fail('no refresh for a removed device'),
      onSessionEnded: () => calls.push('session ended'),
      onDeviceRemoved: () => calls.push('device removed'),
    });
    socket.start();
    FakeWebSocket.opened[0].serverSends({ type: 'queue_empty' });
    FakeWebSocket.opened[0].serverCloses(4403, 'device_removed');
    assert.deepEqual(calls, ['device removed']);
    mock.timers.tick(120_000);
    assert.equal(FakeWebSocket.opened.length, 1, 'no new attempt');
  } finally {
    mock.timers.reset();
  }
});

test('4403 without that reason (signed out, start over elsewhere) ends the session as before', () => {
  for (const reason of ['', 'device_required']) {
    FakeWebSocket.opened = [];
    const calls = [];
    const socket = new ChatSocket({
      handlers: {},
      onStatus: () => {},
      refresh: async () => true,
      onSessionEnded: () => calls.push('session ended'),
      onDeviceRemoved: () => calls.push('device removed'),
    });
    socket.start();
    FakeWebSocket.opened[0].serverCloses(4403, reason);
    assert.deepEqual(calls, ['session ended'], reason);
  }
});

test('without an onDeviceRemoved handler, device_removed ends the session', () => {
  FakeWebSocket.opened = [];
  const calls = [];
  const socket = new ChatSocket({
    handlers: {},
    onStatus: () => {},
    refresh: async () => true,
    onSessionEnded: () => calls.push('session ended'),
  });
  socket.start();
  FakeWebSocket.opened[0].serverCloses(4403, 'device_removed');
  assert.deepEqual(calls, ['session ended']);
});
