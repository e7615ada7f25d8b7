// Incoming envelopes taken in batches. A socket delivers a backlog as thousands of frames in a
// row; each is queued here, and one worker takes what has gathered (at most BATCH_MAX) at a time:
// decrypted and stored in one transaction per sender, shown with one render, acknowledged with one
// frame (client.js takeEnvelopes). Between batches the worker gives the event loop a turn, so
// typing, clicks and painting never wait for the rest of the backlog (issue #14).
//
// No DOM, no network: `take` does the work, so Node tests can run this.

export const BATCH_MAX = 50;

/**
 * Resolves after the browser ran what is waiting (input, rendering, other frames). A MessageChannel
 * rather than setTimeout: timers of a hidden tab are throttled to one a second or slower, which
 * would stretch a backlog received in the background into minutes.
 */
export function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

export class EnvelopeIntake {
  /**
   * @param {object} options
   * @param {(frames: object[]) => Promise<void>} options.take handles one batch, in arrival order
   * @param {(error: unknown) => void} options.onError a batch failed (its frames are not acknowledged)
   * @param {() => Promise<void>} [options.pause] between batches
   */
  constructor({ take, onError, pause = nextTask }) {
    this.take = take;
    this.onError = onError;
    this.pause = pause;
    this.queue = [];
    this.running = null;
  }

  push(frame) {
    this.queue.push(frame);
    if (!this.running) this.running = this.run();
  }

  /** Resolves when everything queued so far was taken. */
  async idle() {
    while (this.running) await this.running;
  }

  /** Forgets what waits (the client stopped); the server sends it again on the next connect. */
  clear() {
    this.queue.length = 0;
  }

  async run() {
    try {
      while (this.queue.length) {
        // Frames of the same burst arrive as separate tasks: one turn lets them join this batch.
        await this.pause();
        const batch = this.queue.splice(0, BATCH_MAX);
        if (!batch.length) continue;
        try {
          await this.take(batch);
        } catch (error) {
          this.onError(error);
        }
      }
    } finally {
      this.running = null;
    }
  }
}
