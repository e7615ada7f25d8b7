// Receipts (`ack`, `read`) the server could not apply, sent again until they go through.
//
// A receipt that fails on the server (its database connection was cut, or it was rate limited) is
// answered with `{"type":"error","code",...,"frame":"ack"|"read","ids":[...]}` (chat/events.py):
// those envelopes were not marked. Without a retry an unacknowledged envelope would come back as a
// duplicate on the next connect, and a lost `read` would never reach its sender. The ids wait here
// and are sent again after `retry_after` (rate limited) or an exponential backoff with jitter, and
// on every reconnect. No DOM, no network of its own: `send` is the socket's, so Node tests run it.

const RETRY_BASE_MS = 250;
const RETRY_MAX_MS = 30000;
// The server takes at most this many ids per frame (chat/validation.py MAX_IDS_PER_FRAME).
export const MAX_IDS_PER_FRAME = 1000;
const KINDS = ["read", "ack"];

export class ReceiptRetry {
  /**
   * @param {object} options
   * @param {(frame: object) => boolean} options.send hands a frame to the socket; false if it is not open
   * @param {(fn: () => void, ms: number) => unknown} [options.setTimer]
   * @param {(timer: unknown) => void} [options.clearTimer]
   * @param {() => number} [options.random] in [0, 1), for the jitter
   * @param {() => number} [options.now] milliseconds
   */
  constructor({ send, setTimer = setTimeout, clearTimer = clearTimeout, random = Math.random, now = Date.now }) {
    this.send = send;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.random = random;
    this.now = now;
    this.pending = { ack: new Set(), read: new Set() };
    this.failures = 0;
    this.lastFailureAt = 0;
    this.timer = null;
  }

  /** Takes an `error` frame; returns whether it was about a receipt (then it is handled here). */
  onError(frame) {
    if (!frame || !KINDS.includes(frame.frame) || !Array.isArray(frame.ids)) return false;
    const ids = frame.ids.filter((id) => Number.isInteger(id) && id > 0);
    for (const id of ids) this.pending[frame.frame].add(id);
    // Failures close together back off further; one after a quiet spell starts again.
    const at = this.now();
    if (at - this.lastFailureAt > RETRY_MAX_MS) this.failures = 0;
    this.lastFailureAt = at;
    this.failures += 1;
    const retryAfter = Number(frame.retry_after);
    this.schedule(retryAfter > 0 ? retryAfter * 1000 : this.backoff());
    return true;
  }

  backoff() {
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (this.failures - 1));
    return ceiling / 2 + this.random() * (ceiling / 2);
  }

  schedule(delay) {
    if (this.timer !== null) return;
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.flush();
    }, delay);
  }

  /** Keeps receipts the socket did not take, for the next flush (every reconnect). */
  hold(kind, ids) {
    for (const id of ids) this.pending[kind].add(id);
  }

  /** Forgets what waits and its timer (the client stopped: signed out, or the account erased). */
  stop() {
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    for (const kind of KINDS) this.pending[kind].clear();
  }

  /** Sends what waits (called by the timer and on every reconnect); what the socket does not take
   *  stays for the next reconnect. A `read` marks delivered too, so it goes first. */
  flush() {
    for (const kind of KINDS) {
      const ids = [...this.pending[kind]];
      for (let start = 0; start < ids.length; start += MAX_IDS_PER_FRAME) {
        const chunk = ids.slice(start, start + MAX_IDS_PER_FRAME);
        if (!this.send({ type: kind, ids: chunk })) return;
        for (const id of chunk) this.pending[kind].delete(id);
      }
    }
  }
}
