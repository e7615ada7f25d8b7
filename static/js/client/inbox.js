// Inbox: incoming `message` frames, taken in batches. A socket delivers a backlog as thousands of
// frames in a row: each is queued, and one worker takes what has gathered (at most BATCH_MAX) at a
// time: decrypted and stored in one transaction per sender (../session.js decryptBatchFrom commits
// the messages with the session state), shown with one state event, acknowledged together. Between
// batches the event loop gets a turn, so typing, clicks and painting never wait for the rest of the
// backlog (issue #14). An envelope is acknowledged only after it is stored; a redelivered one is
// recognised by its server id, acknowledged again and not shown twice. New messages end the
// sender's typing indicator, are counted, told to the other tabs and notified when the tab is
// hidden; in the conversation open in a visible page they are stored read and answered with `read`.
//
// Each frame is one device's copy (docs/PROTOCOL.md section 17.2): decrypted with the session of
// its sender device (`from`, `from_device`). A copy from our own account is our own message, sent
// from another device: it is filed as sent in the conversation with `to`, acknowledged, and never
// read, counted or notified.
//
// `group_message` copies (docs/PROTOCOL.md section 23) join the same intake, so a backlog keeps its
// order and its batches; each sender device's group copies are handed to groups.js.

import { decryptBatchFrom } from "../session.js";
import { withStatus } from "./status.js";

// Batches of 100 or 200 gave tasks over 100 ms on a loaded 2-CPU machine (docs/ARCHITECTURE.md).
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

/** The queue and its one worker; `take` handles a batch (in arrival order). No DOM, no network. */
export class EnvelopeIntake {
  /**
   * @param {object} options
   * @param {(frames: object[]) => Promise<void>} options.take
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

export class Inbox {
  constructor({ state, store, tabs, conversations, keys, typing, receipts, notifications, groups, report }) {
    this.state = state;
    this.groups = groups;
    this.store = store;
    this.tabs = tabs;
    this.conversations = conversations;
    this.keys = keys;
    this.typing = typing;
    this.receipts = receipts;
    this.notifications = notifications;
    this.report = report;
    this.intake = new EnvelopeIntake({
      take: (frames) => this.take(frames),
      onError: (error) => this.report(error, "Messages could not be handled: "),
    });
  }

  onEnvelope(frame) {
    const checked = copyFrame(frame, this.state.me && this.state.me.email);
    if (checked) this.intake.push(checked);
    else this.report(new Error("The server sent a message frame that is malformed; it was not read."));
  }

  /** A `group_message` copy: checked (groups.js), then taken in the same batches. */
  onGroupMessage(frame) {
    const checked = this.groups.checkFrame(frame);
    if (checked) this.intake.push({ ...checked, grouped: true });
    else this.report(new Error("The server sent a group message frame that is malformed; it was not read."));
  }

  stop() {
    this.intake.clear();
  }

  /** One batch, in arrival order: per sender device one transaction, one state event, one receipt frame. */
  async take(frames) {
    const bySender = new Map();
    for (const frame of frames) {
      const key = `${frame.grouped ? "group" : "direct"}:${frame.from_device}:${frame.from}`;
      if (!bySender.has(key)) bySender.set(key, []);
      bySender.get(key).push(frame);
    }
    for (const list of bySender.values()) {
      if (list[0].grouped) await this.groups.takeFrom(list);
      else if (list[0].own) await this.takeOwn(list);
      else await this.takeFrom(list);
    }
    await this.receipts.markActiveRead();
  }

  async takeFrom(frames) {
    const { from: email, from_device: device } = frames[0];
    // Arriving in the conversation open in a visible page: seen, so stored read.
    const seen = this.state.active === email && document.visibilityState === "visible";
    const readAt = Date.now();
    let results;
    try {
      results = await decryptBatchFrom(this.store, { email, device }, frames, {
        recordId: (frame) => `in:${frame.id}`,
        messageRecord: (frame, { text, failed }) => {
          const record = {
            id: `in:${frame.id}`,
            serverId: frame.id,
            messageId: frame.message_id,
            contact: frame.from,
            direction: "in",
            text: text === null ? "" : text,
            ts: Date.parse(frame.sent_at) || Date.now(),
            status: "received",
          };
          if (seen) record.readAt = readAt;
          else record.unread = 1;
          if (failed) record.failed = failed;
          return record;
        },
      });
    } catch (error) {
      // Storage failure or no keys: not acknowledged, so the server keeps them for later.
      this.report(error, "A message could not be stored: ");
      return;
    }
    const ids = frames.map((frame) => frame.id);
    if (seen) this.receipts.read(ids);
    else for (const id of ids) this.receipts.ack(id);
    const messages = results.filter((result) => result.status !== "duplicate").map((result) => result.message);
    if (!messages.length) return;
    const contact = this.state.contacts.get(email);
    if (contact && contact.typing) this.typing.show(email, false);
    if (this.state.loaded.has(email)) this.state.upsertMessages(messages);
    await this.conversations.refreshCounters(email);
    if (results.identityChanged) await this.keys.refreshIdentity(email);
    this.tabs.broadcast({ type: "conversation", email });
    this.notifications.notify(email);
  }

  /**
   * Copies of our own messages, sent from another of our devices: stored as sent (receipts for
   * their message id move them on, as for messages sent here), acknowledged, never read: reading
   * an own copy would produce no receipt anyway (section 17.3).
   */
  async takeOwn(frames) {
    const { from: email, from_device: device } = frames[0];
    let results;
    try {
      results = await decryptBatchFrom(this.store, { email, device, own: true }, frames, {
        recordId: (frame) => `own:${frame.id}`,
        messageRecord: (frame, { text, failed }) => {
          const record = withStatus(
            {
              id: `own:${frame.id}`,
              serverId: frame.message_id,
              contact: frame.to,
              direction: "out",
              text: text === null ? "" : text,
              ts: Date.parse(frame.sent_at) || Date.now(),
            },
            "sent",
          );
          if (failed) record.failed = failed;
          return record;
        },
      });
    } catch (error) {
      this.report(error, "A message could not be stored: ");
      return;
    }
    for (const frame of frames) this.receipts.ack(frame.id);
    const messages = results.filter((result) => result.status !== "duplicate").map((result) => result.message);
    for (const contact of new Set(messages.map((m) => m.contact))) {
      if (this.state.loaded.has(contact)) this.state.upsertMessages(messages.filter((m) => m.contact === contact));
      await this.conversations.refreshCounters(contact);
      this.tabs.broadcast({ type: "conversation", email: contact });
    }
    // A receipt that overtook the copy (our other device's recipient was quick).
    for (const message of messages) {
      const early = this.receipts.takeEarly(message.serverId);
      if (early) await this.receipts.onReceipt([message.serverId], early);
    }
  }
}

/**
 * A `message` frame checked (section 17.2), or null: a positive integer copy id, the sender and its
 * device, the message id, and for a copy from our own account the contact it went to (`own` set).
 * A frame from a server before devices (no `from_device`, `message_id`) is device 1's, its copy
 * id its message id (section 19).
 */
export function copyFrame(frame, ownEmail) {
  if (!frame || !Number.isInteger(frame.id) || frame.id < 1 || typeof frame.from !== "string") return null;
  const fromDevice = frame.from_device === undefined ? 1 : frame.from_device;
  const messageId = frame.message_id === undefined ? frame.id : frame.message_id;
  if (!Number.isInteger(fromDevice) || fromDevice < 1 || !Number.isInteger(messageId) || messageId < 1) return null;
  const own = typeof ownEmail === "string" && frame.from.toLowerCase() === ownEmail.toLowerCase();
  if (own && (typeof frame.to !== "string" || !frame.to || frame.to.toLowerCase() === ownEmail.toLowerCase())) return null;
  // Our own email as we hold it: the sessions with our own devices are kept under it.
  return { ...frame, from: own ? ownEmail : frame.from, from_device: fromDevice, message_id: messageId, own };
}
