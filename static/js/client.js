// The messenger client: turns server frames and user actions into storage writes and state changes.
// A facade: each feature lives in a module of client/, and this class builds them, fills the
// socket's dispatch table (one handler per frame the server pushes, chat/events.py) and keeps the
// API main.js uses. Dependencies go one way, down this list (all of them use state and storage):
//
//   client.js             this facade
//   client/inbox.js       incoming envelopes in batches: decrypt, store, ack -> groups (group
//                         copies), receipts, typing, notifications, keys, conversations, tabs
//   client/outbox.js      send, queue, resend by client_id, retry -> groups (group entries),
//                         receipts, keys, conversations, tabs, transport
//   client/contacts.js    contacts and requests -> keys, conversations, tabs
//   client/groups.js      groups: list, membership, changes as notice lines, group messages in
//                         and out (frames for the outbox), group receipts -> receipts, typing,
//                         notifications, keys, conversations, tabs, transport
//   client/devices.js     the account's devices: list, rename, unlink, `devices_changed`
//   client/fanout.js      (pure) device lists and `device_mismatch` for outbox.js and devices.js
//   client/receipts.js    ack, read, delivered/read, read_elsewhere, the receipts question -> tabs,
//                         transport
//   client/typing.js      typing indicators -> transport
//   client/notifications.js, client/keys.js (key upkeep, identities), client/conversations.js
//   (each conversation's window, read in pages),
//   client/tabs.js (other tabs), client/transport.js (the socket), client/status.js (pure)
//
// A group is a conversation keyed groupKey(id) (state.js): the user actions below taking a
// contact's email take a group key too, and dispatch on isGroupKey.
//
// Lists (contacts, requests, groups) are re-read on every connect and receipts asked for: pushes are
// at-most-once. Other tabs of the account hear of changes through tabs.js and re-read storage; a tab
// erasing the account's data tells them on the same channel (main.js: they erase too).
import { errorMessage } from "./api.js";
import { Contacts } from "./client/contacts.js";
import { Conversations } from "./client/conversations.js";
import { Devices } from "./client/devices.js";
import { Groups } from "./client/groups.js";
import { Inbox } from "./client/inbox.js";
import { Keys } from "./client/keys.js";
import { Notifications } from "./client/notifications.js";
import { Outbox } from "./client/outbox.js";
import { Receipts } from "./client/receipts.js";
import { Tabs } from "./client/tabs.js";
import { Transport } from "./client/transport.js";
import { Typing } from "./client/typing.js";
import { Connection } from "./socket.js";
import { isGroupKey, Topic } from "./state.js";

export class MessengerClient {
  constructor({ state, store, onSessionEnded, onDeviceRemoved }) {
    this.state = state;
    this.store = store;
    this.onSessionEnded = onSessionEnded;
    this.onDeviceRemoved = onDeviceRemoved;
    const report = (error, prefix = "") => state.setNotice(prefix + errorMessage(error));
    const transport = new Transport();
    const tabs = new Tabs({ account: store.account });
    const conversations = new Conversations({ state, store });
    const keys = new Keys({ state, store, report });
    const typing = new Typing({ state, transport });
    const notifications = new Notifications({ state, store, open: (email) => this.openConversation(email) });
    const receipts = new Receipts({ state, store, transport, tabs });
    const contacts = new Contacts({ state, store, tabs, conversations, keys, report });
    const groups = new Groups({
      state,
      store,
      transport,
      tabs,
      conversations,
      keys,
      receipts,
      notifications,
      typing,
      flush: () => this.outbox.flush(),
      fail: (clientId, reason) => this.outbox.fail(clientId, reason),
      keep: (message, entry, error) => this.outbox.keepUnencrypted(message, entry, error),
      report,
    });
    const outbox = new Outbox({ state, store, transport, tabs, conversations, keys, receipts, groups });
    const inbox = new Inbox({ state, store, tabs, conversations, keys, typing, receipts, notifications, groups, report });
    const devices = new Devices({ state, store, report, onUnlinked: onDeviceRemoved });
    // The parts; each owns its own state, and they reach each other only through their methods.
    Object.assign(this, {
      report,
      transport,
      tabs,
      conversations,
      keys,
      typing,
      notifications,
      receipts,
      contacts,
      groups,
      outbox,
      inbox,
      devices,
    });
  }

  // --- start-up ---------------------------------------------------------------------------------

  async start() {
    await this.loadLocal();
    this.tabs.listen((data) => this.fromOtherTab(data));
    document.addEventListener("visibilitychange", () => this.receipts.markActiveRead());
    window.addEventListener("focus", () => this.receipts.markActiveRead());
    this.transport.start({
      handlers: this.frameHandlers(),
      onStatus: (status) => this.state.setConnection(status),
      onSessionEnded: this.onSessionEnded,
      onDeviceRemoved: this.onDeviceRemoved,
      onOpen: () => this.onSocketOpen(),
      onNotice: (text) => this.state.setNotice(text),
    });
    this.keys.upkeep();
  }

  stop() {
    this.transport.stop();
    this.inbox.stop();
    this.tabs.close();
    this.receipts.stop();
  }

  async loadLocal() {
    const [contacts, requests, identities, settings] = await Promise.all([
      this.store.all("contacts"),
      this.store.all("contactRequests"),
      this.store.all("identities"),
      this.store.getMeta("settings", {}),
    ]);
    this.state.setSettings(settings || {});
    this.state.setRequests({
      incoming: requests.filter((r) => r.direction === "in"),
      outgoing: requests.filter((r) => r.direction === "out"),
    });
    // Conversations with people who are no longer contacts keep their history; they stay listed.
    const emails = new Set(contacts.map((c) => c.email));
    this.state.setContacts(contacts);
    for (const identity of identities) this.keys.applyIdentity(identity);
    await Promise.all([...emails].map((email) => this.conversations.refreshCounters(email)));
    await this.groups.loadLocal();
  }

  onSocketOpen() {
    this.outbox.onConnect();
    this.receipts.onConnect();
    this.contacts.sync();
    this.groups.sync();
    this.devices.load();
    this.outbox.flush();
    this.receipts.markActiveRead();
    this.receipts.ask().catch((error) => this.report(error));
  }

  /** Another tab changed storage (tabs.js). */
  async fromOtherTab(data) {
    if (data.type === "conversation" || data.type === "identity") {
      if (this.state.loaded.has(data.email)) await this.conversations.refresh(data.email);
      await this.conversations.refreshCounters(data.email);
      if (!isGroupKey(data.email)) await this.keys.refreshIdentity(data.email);
      if (data.type === "identity") await this.groups.refreshHeld();
    } else if (data.type === "contacts") {
      await this.contacts.reloadLocal();
    } else if (data.type === "groups") {
      await this.groups.loadLocal();
    }
  }

  // --- the dispatch table of server frames -------------------------------------------------------

  frameHandlers() {
    return {
      message: (frame) => this.inbox.onEnvelope(frame),
      queue_empty: () => {},
      sent: (frame) => this.outbox.onSent(frame),
      delivered: (frame) => this.receipts.onReceipt(frame.ids, "delivered"),
      read: (frame) => this.receipts.onReceipt(frame.ids, "read"),
      read_elsewhere: (frame) => this.receipts.onReadElsewhere(frame.ids),
      receipts: (frame) => this.receipts.onAnswer(frame),
      error: (frame) => this.onServerError(frame),
      typing: (frame) => this.typing.onFrame(frame),
      group_message: (frame) => this.inbox.onGroupMessage(frame),
      group_receipts: (frame) => this.groups.onReceipts(frame),
      group_changed: (frame) => this.groups.onChanged(frame),
      group_epoch: (frame) => this.groups.onEpoch(frame),
      contact_request: () => this.contacts.syncRequests().catch((e) => this.report(e)),
      contact_request_answered: () => this.contacts.sync(),
      contact_removed: (frame) => this.contacts.onRemoved(frame),
      prekeys_low: (frame) => this.keys.onPrekeysLow(frame),
      devices_changed: (frame) => {
        if (frame && typeof frame.email === "string") this.outbox.forgetDevices(frame.email);
        return this.devices.onChanged(frame);
      },
      identity_changed: (frame) => this.keys.checkIdentity(frame.email, frame.identity_key || null),
    };
  }

  async onServerError(frame) {
    if (this.receipts.onError(frame)) return; // a failed ack/read: sent again
    if (frame.client_id) {
      await this.outbox.onError(frame);
      return;
    }
    // A throttled background frame (typing, a receipts question after many reconnects) costs the
    // user nothing: it is sent again next time. Anything else is worth telling.
    if (frame.code === "rate_limited") return;
    this.state.setNotice(frame.detail || "The server reported an error.");
  }

  // --- user actions (ui/app.js, through main.js) ---------------------------------------------

  async openConversation(email) {
    await this.conversations.open(email);
    this.receipts.markActiveRead();
  }

  closeConversation() {
    this.conversations.close();
  }

  loadOlder(email) {
    return this.conversations.loadOlder(email);
  }

  loadNewer(email) {
    return this.conversations.loadNewer(email);
  }

  jumpToLatest(email) {
    return this.conversations.reload(email);
  }

  async sendText(email, text) {
    const body = text.replace(/\s+$/, "");
    if (!body.trim()) return;
    this.typing.stop(email);
    if (isGroupKey(email)) await this.groups.send(email, body);
    else await this.outbox.send(email, body);
  }

  retryMessage(id) {
    return this.outbox.retry(id);
  }

  typingInput(email) {
    this.typing.input(email);
  }

  // --- groups (keys are groupKey(id); each throws an Error the UI shows on refusal) ------------

  createGroup(name, emails) {
    return this.groups.create(name, emails);
  }

  addGroupMember(key, email) {
    return this.groups.add(key, email);
  }

  removeGroupMember(key, email) {
    return this.groups.remove(key, email);
  }

  leaveGroup(key) {
    return this.groups.leave(key);
  }

  makeGroupAdmin(key, email) {
    return this.groups.makeAdmin(key, email);
  }

  renameGroup(key, name) {
    return this.groups.rename(key, name);
  }

  requestContact(email) {
    return this.contacts.request(email);
  }

  answerRequest(id, action) {
    return this.contacts.answer(id, action);
  }

  removeContact(email) {
    return this.contacts.remove(email);
  }

  safetyNumber(email) {
    return this.keys.safetyNumber(email);
  }

  markVerified(email, verified) {
    return this.keys.markVerified(email, verified);
  }

  async acceptIdentity(email) {
    await this.keys.accept(email);
    // Messages held back while the change was unacknowledged go out now, to the new key.
    await this.outbox.releaseHeld(email);
    await this.groups.refreshHeld();
    this.tabs.broadcast({ type: "identity", email });
    this.outbox.flush();
  }

  setNotifications(enabled) {
    return this.notifications.setEnabled(enabled);
  }

  renameDevice(id, name) {
    return this.devices.rename(id, name);
  }

  unlinkDevice(id) {
    return this.devices.unlink(id);
  }
}

export { Connection, Topic };
