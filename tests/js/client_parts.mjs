// Stand-ins for the browser around static/js/client/: an in-memory store with the queries of
// static/js/storage.js (AccountStore), a transport whose socket the test opens and closes, and the
// cross-tab channel. State is the real AppState (static/js/state.js).
import { generateOneTimePrekeys, generateSignedPrekey, publicOneTimePrekey, publicSignedPrekey } from '../../static/js/crypto/index.js';
import { AppState } from '../../static/js/state.js';

const PRIMARY_KEYS = {
  messages: ['id'],
  outbox: ['clientId'],
  identities: ['email'],
  contacts: ['email'],
  meta: ['name'],
  signalSessions: ['email', 'device'],
  signalKeys: ['name'],
  ephemeralKeys: ['key'],
  groups: ['id'],
  senderKeys: ['group'],
  receivedSenderKeys: ['group', 'email', 'device'],
};
const keyOf = (parts) => JSON.stringify(parts);
// The indexes of static/js/storage.js's SCHEMA (after "account"); a record lacking a field is not in them.
const INDEXES = {
  messages: {
    conversation: ['contact', 'ts'],
    history: ['contact', 'ts', 'id'],
    serverId: ['serverId'],
    unread: ['contact', 'unread'],
    awaiting: ['awaiting'],
    messageId: ['messageId'],
    groupAwaiting: ['groupAwaiting'],
  },
  outbox: { order: ['seq'] },
};

function compare(a, b) {
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

export class MemoryStore {
  constructor() {
    this.account = '1:me@example.org';
    this.tables = new Map();
  }

  table(name) {
    if (!this.tables.has(name)) this.tables.set(name, new Map());
    return this.tables.get(name);
  }

  async get(store, ...parts) {
    return structuredClone(this.table(store).get(keyOf(parts)) ?? null);
  }

  query(store, index, prefix) {
    const records = [...this.table(store).values()];
    if (!index) return records;
    const path = INDEXES[store][index];
    return records
      .filter((r) => path.every((field) => r[field] !== undefined) && prefix.every((part, i) => r[path[i]] === part))
      .sort((a, b) => compare(path.map((f) => a[f]), path.map((f) => b[f])));
  }

  async all(store, { index = null, prefix = [], limit = undefined } = {}) {
    if (!index) {
      const fields = PRIMARY_KEYS[store];
      const records = this.query(store, null, []).filter((r) => prefix.every((part, i) => r[fields[i]] === part));
      return structuredClone(records.slice(0, limit));
    }
    return structuredClone(this.query(store, index, prefix).slice(0, limit));
  }

  /** AccountStore.page: at most `limit` records before/after key parts `before`/`after`, or the last ones. */
  async page(store, index, prefix, { before = null, after = null, limit }) {
    const path = INDEXES[store][index];
    const key = (r) => path.slice(prefix.length).map((f) => r[f]);
    let records = this.query(store, index, prefix);
    if (before) records = records.filter((r) => compare(key(r), before) < 0);
    if (after) records = records.filter((r) => compare(key(r), after) > 0);
    return structuredClone(after ? records.slice(0, limit) : records.slice(-limit));
  }

  async has(store, index, keys) {
    if (!index) return keys.map((parts) => this.table(store).has(keyOf(parts)));
    return keys.map((parts) => this.query(store, index, parts).length > 0);
  }

  async count(store, { index = null, prefix = [] } = {}) {
    return this.query(store, index, prefix).length;
  }

  async last(store, index, prefix) {
    return structuredClone(this.query(store, index, prefix).at(-1) ?? null);
  }

  apply(operations) {
    for (const op of operations) {
      if (op.put) this.table(op.put).set(keyOf(PRIMARY_KEYS[op.put].map((f) => op.value[f])), structuredClone(op.value));
      else if (op.delete) this.table(op.delete).delete(keyOf(op.key));
    }
  }

  async getKey(name) {
    const record = await this.get('signalKeys', name);
    return record ? record.value : null;
  }

  async write(operations) {
    this.apply(operations);
  }

  async update(stores, reads, change) {
    const records = reads.map((read) =>
      read.index ? (this.query(read.store, read.index, read.key)[0] ?? null) : (this.table(read.store).get(keyOf(read.key)) ?? null),
    );
    const { writes = [], result } = change(structuredClone(records));
    this.apply(writes);
    return result;
  }
}

export class FakeTransport {
  constructor() {
    this.isOpen = true;
    this.sent = [];
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.sent.push(frame);
    return true;
  }
}

export class FakeTabs {
  constructor() {
    this.messages = [];
  }

  broadcast(message) {
    this.messages.push(message);
  }
}

/** The shared parts every feature module is built with. */
export function parts() {
  globalThis.document ??= { visibilityState: 'visible', hidden: false };
  const state = new AppState();
  state.setContacts([{ email: 'bob@example.org', since: '2026-01-01' }]);
  return { state, store: new MemoryStore(), transport: new FakeTransport(), tabs: new FakeTabs() };
}

/** A device of `party`'s account (tests/js/helpers.mjs makeParty): the account's identity key, prekeys of its own. */
export function deviceOf(party, id) {
  const signedPrekey = generateSignedPrekey(party.identityKeyPair, 1);
  const { prekeys } = generateOneTimePrekeys(1, 3);
  return { id, identityKeyPair: party.identityKeyPair, signedPrekey, oneTimePrekeys: prekeys };
}

/** A keys/bundles answer for `devices` (each claiming its first one-time prekey). */
export function bundlesOf(devices, identityKey = devices[0].identityKeyPair.publicKey) {
  return {
    identity_key: identityKey,
    devices: devices.map((d) => ({
      device_id: d.id,
      signed_prekey: publicSignedPrekey(d.signedPrekey),
      one_time_prekey: publicOneTimePrekey(d.oneTimePrekeys[0]),
    })),
  };
}

/** The store of a browser holding `device`'s keys. */
export function storeOf(device) {
  const store = new MemoryStore();
  store.apply([
    { put: 'signalKeys', value: { name: 'identity', value: device.identityKeyPair } },
    { put: 'signalKeys', value: { name: 'spk:1', value: device.signedPrekey } },
    ...device.oneTimePrekeys.map((p) => ({ put: 'signalKeys', value: { name: `opk:${p.keyId}`, value: p } })),
  ]);
  return store;
}
