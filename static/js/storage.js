// IndexedDB: one database per browser (SecureMessengerDB), every record scoped to the signed-in
// account. Each store's primary key starts with the account key (`<user id>:<email>`), and every
// read goes through an IDBKeyRange bounded by it, so two accounts in one browser never see each
// other's keys, sessions or history.
//
// An IndexedDB transaction commits as soon as the event loop is idle with no request
// pending, so an `await` of WebCrypto inside a transaction silently ends it. The rule here: do all
// the cryptography first, then hand the whole outcome to `write()` (or `update()`, whose callback
// must be synchronous), which applies it in ONE transaction.
//
// Private keys and plaintext stay in this database only; nothing here logs anything.

const DB_NAME = "SecureMessengerDB";
// 2: the messages index `awaiting` (sent messages whose read receipt has not arrived yet).
// 3: the messages index `history` (a conversation in display order, read in pages).
// 4: sessions per (email, device id), the messages index `messageId`, outbox entries as fan-out
//    frames (docs/PROTOCOL.md sections 17 and 19; upgradeToDevices).
// 5: groups (docs/PROTOCOL.md part III): the stores `groups`, `senderKeys`, `receivedSenderKeys`
//    and the messages index `groupAwaiting`; nothing older changes.
const DB_VERSION = 5;

// Store name -> [key path (after "account"), indexes {name: key path}]
const SCHEMA = {
  // Decrypted history: {account, id, contact, direction: "in"|"out", text, ts, status, serverId?,
  // messageId?, unread?: 1, failed?: code, awaiting?: serverId}. Outgoing ids are the client_id;
  // incoming ids "in:<copy id>"; our own messages sent from another device "own:<copy id>" (the
  // record id is how a redelivered copy is recognised). `serverId` is what our receipts name: the
  // copy id of a received message (`ack`, `read`), the message id of a sent one (`sent`, and the
  // `delivered`/`read` pushes). `messageId` is a received message's message id, the number the
  // server's `read_elsewhere` and `receipts` answer name. `awaiting` is set on outgoing messages
  // the server stored whose read receipt has not arrived: on every connect the client asks the
  // server where they stand.
  // `history` orders a conversation as the page shows it (time, then id: one key per message), so
  // a window of it is read in pages (AccountStore.page) without reading the whole conversation.
  // A group's messages have `contact` "group:<id>" (state.js groupKey) and `sender` (the email of
  // who sent it); its membership and name lines are `notice: true` records (never unread, no
  // serverId: receipts never name them). A copy that shows nothing (an unknown type, a name the
  // group has already) is an `ignored: true` record in no conversation (contact ""): its id
  // recognises a redelivery. Our own group messages carry `groupAwaiting` (their
  // message id) until every member read them, and `counts` {delivered, read, of} from the
  // server's `group_receipts`; on every connect the client asks about those still awaiting.
  messages: [["account", "id"], {
    conversation: ["account", "contact", "ts"],
    history: ["account", "contact", "ts", "id"],
    serverId: ["account", "serverId"],
    unread: ["account", "contact", "unread"],
    awaiting: ["account", "awaiting"],
    messageId: ["account", "messageId"],
    groupAwaiting: ["account", "groupAwaiting"],
  }],
  // Pending requests mirrored from the server: {account, id, email, direction, created_at}
  contactRequests: [["account", "id"], {}],
  // Accepted contacts: {account, email, since}
  contacts: [["account", "email"], {}],
  // Our key material: {account, name, value}; names "identity", "spk:<id>", "opk:<id>"
  signalKeys: [["account", "name"], {}],
  // Double Ratchet sessions per device of a contact, and with our own other devices:
  // {account, email, device, current, archived: [...]}
  signalSessions: [["account", "email", "device"], {}],
  // Identity keys seen for contacts: {account, email, identityKey, verified, changedTo?, firstSeen}
  identities: [["account", "email"], {}],
  // Messages waiting to be sent: {account, clientId, seq, to, copies?, own?, mismatches?}; without
  // `copies` the message is not encrypted yet. copies/own: [{device, kind, body}] (the send frame's)
  // A group message's entry is {account, clientId, seq, group, plaintext, frame?, distribution?,
  // stale?, quiet?} instead (`quiet`: the group's name sent again for new devices, with no message
  // record): `plaintext` (base64, with its type byte) is what is encrypted (again, after
  // a stale_epoch that needs a new sender key); `frame` the whole group_send frame as stored and
  // sent again; `distribution` (base64) the sender key distribution of the body's iteration, for
  // devices that join before it is taken (docs/PROTOCOL.md section 23). Without `frame` the
  // message is not encrypted yet (held, network down). One order for both: the outbox's.
  outbox: [["account", "clientId"], { order: ["account", "seq"] }],
  // The groups we are (or were) a member of, as GET groups/ last showed them (section 21):
  // {account, id, name (from the members' settings messages; null until one arrived), epoch, role,
  // members: [{email, role, devices}], lastChange (the last change id turned into a notice line),
  // named: ["<device> <lower-case email>", ...] (the member devices known to hold the name,
  // section 22), left?: true (no longer listed: we left or were removed; the history stays)}
  groups: [["account", "id"], {}],
  // Our own sender key per group (section 22): {account, group, key (the sender key state), given:
  // [[lower-case email, device], ...] the member devices that hold it}
  senderKeys: [["account", "group"], {}],
  // Sender keys received, per sender device (section 22): {account, group, email (lower case),
  // device, record (the current and previous key)}
  receivedSenderKeys: [["account", "group", "email", "device"], {}],
  // X3DH ephemeral keys that already founded a session (replay guard): {account, key, signedPrekeyId}
  ephemeralKeys: [["account", "key"], {}],
  // Small values: {account, name, value}
  meta: [["account", "name"], {}],
};

export const STORES = Object.freeze(Object.keys(SCHEMA));

function promisify(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

let dbPromise = null;

export function openDatabase() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = (event) => {
        const db = request.result;
        const tx = request.transaction;
        if (event.oldVersion >= 1 && event.oldVersion < 4) upgradeToDevices(db, tx);
        for (const [name, [keyPath, indexes]] of Object.entries(SCHEMA)) {
          const store = db.objectStoreNames.contains(name) ? tx.objectStore(name) : db.createObjectStore(name, { keyPath });
          for (const [indexName, indexPath] of Object.entries(indexes)) {
            if (!store.indexNames.contains(indexName)) store.createIndex(indexName, indexPath);
          }
        }
        if (event.oldVersion === 1) markAwaiting(tx.objectStore("messages"));
      };
      request.onsuccess = () => {
        const db = request.result;
        // Another tab upgrading the schema: let it, this tab reloads.
        db.onversionchange = () => db.close();
        resolve(db);
      };
      request.onerror = () => reject(request.error);
      request.onblocked = () => reject(new Error("The local database is blocked by another tab."));
    });
  }
  return dbPromise;
}

/**
 * Closes this tab's connection: transactions already created finish, any later one fails at once.
 * The next openDatabase() opens a fresh connection. Used before erasing an account, so work of this
 * tab still under way cannot write after the erase.
 */
export async function closeDatabase() {
  const pending = dbPromise;
  dbPromise = null;
  if (pending) (await pending).close();
}

/** Upgrade from version 1: sent messages still waiting for their read receipt join `awaiting`. */
function markAwaiting(messages) {
  messages.openCursor().onsuccess = (event) => {
    const cursor = event.target.result;
    if (!cursor) return;
    const m = cursor.value;
    if (m.direction === "out" && typeof m.serverId === "number" && (m.status === "sent" || m.status === "delivered")) {
      cursor.update({ ...m, awaiting: m.serverId });
    }
    cursor.continue();
  };
}

/**
 * Upgrade to version 4 (docs/PROTOCOL.md section 19, "Migration"): a session with a contact
 * becomes the session with that contact's device 1 (the store's key changes, so it is made anew);
 * a received message's copy id is its message id (version 1 had one copy per message); an outbox
 * entry's envelope becomes the one copy for device 1 of a fan-out frame.
 */
function upgradeToDevices(db, tx) {
  const each = (name, change) => {
    if (!db.objectStoreNames.contains(name)) return;
    tx.objectStore(name).openCursor().onsuccess = (event) => {
      const cursor = event.target.result;
      if (!cursor) return;
      const changed = change(cursor.value);
      if (changed) cursor.update(changed);
      cursor.continue();
    };
  };
  if (db.objectStoreNames.contains("signalSessions")) {
    const read = tx.objectStore("signalSessions").getAll();
    read.onsuccess = () => {
      db.deleteObjectStore("signalSessions");
      const sessions = db.createObjectStore("signalSessions", { keyPath: SCHEMA.signalSessions[0] });
      for (const record of read.result) sessions.put({ ...record, device: 1 });
    };
  }
  each("messages", (m) => (m.direction === "in" && typeof m.serverId === "number" ? { ...m, messageId: m.serverId } : null));
  each("outbox", ({ kind, body, ...entry }) =>
    typeof body === "string" ? { ...entry, copies: [{ device: 1, kind, body }], own: [] } : null,
  );
}

export function accountKey(user) {
  return `${user.id}:${String(user.email).toLowerCase()}`;
}

/**
 * The accounts of `email` this browser holds a device of, before anyone signed in (the sign-in
 * page knows the email, not the account id): [{account, userId, deviceId, hasKeys}], the most
 * recent account (highest id) first. `deviceId` is the stored number (meta `deviceId`) or null;
 * `hasKeys` whether the identity key is here (read as a key, its value is not read).
 */
export async function localDevicesOf(email) {
  const suffix = `:${String(email).trim().toLowerCase()}`;
  const db = await openDatabase();
  const tx = db.transaction(["meta", "signalKeys"], "readonly");
  const [meta, keyNames] = await Promise.all([
    promisify(tx.objectStore("meta").getAll()),
    promisify(tx.objectStore("signalKeys").getAllKeys()),
  ]);
  const found = new Map();
  const entry = (account) => {
    if (!found.has(account)) found.set(account, { account, userId: Number(account.split(":", 1)[0]), deviceId: null, hasKeys: false });
    return found.get(account);
  };
  for (const [account, name] of keyNames) if (name === "identity" && account.endsWith(suffix)) entry(account).hasKeys = true;
  for (const record of meta) if (record.name === "deviceId" && record.account.endsWith(suffix)) entry(record.account).deviceId = record.value;
  return [...found.values()].sort((a, b) => b.userId - a.userId);
}

// An upper bound that sorts after every key sharing `prefix` (arrays sort after numbers/strings).
function prefixRange(prefix) {
  return IDBKeyRange.bound(prefix, [...prefix, []]);
}

/** The storage of one account. Every method scopes keys to that account. */
export class AccountStore {
  constructor(db, account) {
    this.db = db;
    this.account = account;
  }

  key(store, ...parts) {
    return [this.account, ...parts];
  }

  async get(store, ...parts) {
    const tx = this.db.transaction(store, "readonly");
    const record = await promisify(tx.objectStore(store).get(this.key(store, ...parts)));
    return record === undefined ? null : record;
  }

  /** Every record (or the first `limit`) of this account in `store`, optionally through an index with extra key parts. */
  async all(store, { index = null, prefix = [], range = null, limit = undefined } = {}) {
    const tx = this.db.transaction(store, "readonly");
    const source = index ? tx.objectStore(store).index(index) : tx.objectStore(store);
    return promisify(source.getAll(range || prefixRange([this.account, ...prefix]), limit));
  }

  /** The last record (in key order) of an index range, e.g. the latest message of a conversation. */
  async last(store, index, prefix) {
    const tx = this.db.transaction(store, "readonly");
    const cursor = await promisify(
      tx.objectStore(store).index(index).openCursor(prefixRange([this.account, ...prefix]), "prev"),
    );
    return cursor ? cursor.value : null;
  }

  /**
   * At most `limit` records of `index` under `prefix`, in key order: the last ones before the key
   * parts `before`, the first ones after `after` (both exclusive), or the last ones of the range.
   * Costs the page, not the range: a key cursor skips to the page's first key, and one getAll reads
   * from there. The index key must be unique (e.g. `history`), or a page could repeat a record.
   */
  page(store, index, prefix, { before = null, after = null, limit }) {
    const lower = [this.account, ...prefix, ...(after || [])];
    const upper = [this.account, ...prefix, ...(before || [[]])];
    const range = IDBKeyRange.bound(lower, upper, Boolean(after), Boolean(before));
    const source = this.db.transaction(store, "readonly").objectStore(store).index(index);
    if (after) return promisify(source.getAll(range, limit));
    return new Promise((resolve, reject) => {
      let skipped = false;
      const cursor = source.openKeyCursor(range, "prev");
      cursor.onerror = () => reject(cursor.error);
      cursor.onsuccess = () => {
        const found = cursor.result;
        if (found && !skipped && limit > 1) {
          skipped = true;
          found.advance(limit - 1);
          return;
        }
        // No record left at `limit` from the end: the whole range is the page.
        const from = found ? IDBKeyRange.bound(found.key, upper, false, Boolean(before)) : range;
        const read = source.getAll(from, limit);
        read.onsuccess = () => resolve(read.result);
        read.onerror = () => reject(read.error);
      };
    });
  }

  /** Whether `index` of `store` (or the store itself, index null) holds each of `keys` (key parts after the account), in one transaction. */
  has(store, index, keys) {
    const objects = this.db.transaction(store, "readonly").objectStore(store);
    const source = index ? objects.index(index) : objects;
    return Promise.all(keys.map((parts) => promisify(source.getKey([this.account, ...parts])).then((key) => key !== undefined)));
  }

  async count(store, { index = null, prefix = [] } = {}) {
    const tx = this.db.transaction(store, "readonly");
    const source = index ? tx.objectStore(store).index(index) : tx.objectStore(store);
    return promisify(source.count(prefixRange([this.account, ...prefix])));
  }

  /** A record object for `store` carrying the account scope. */
  record(fields) {
    return { ...fields, account: this.account };
  }

  /**
   * Applies writes atomically in one transaction: [{put: store, value}] / [{delete: store, key: [...]}]
   * / [{clear: store}] (clear removes this account's records only).
   */
  write(operations) {
    const names = [...new Set(operations.map((op) => op.put || op.delete || op.clear))];
    if (!names.length) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(names, "readwrite");
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("Local database transaction aborted."));
      for (const op of operations) {
        if (op.put) tx.objectStore(op.put).put({ ...op.value, account: this.account });
        else if (op.delete) tx.objectStore(op.delete).delete([this.account, ...op.key]);
        else if (op.clear) tx.objectStore(op.clear).delete(prefixRange([this.account]));
      }
    });
  }

  /**
   * Read-modify-write in one transaction over `stores`. `change(records)` receives the current records
   * (null when absent) of `reads` ([{store, key: [...], index?}]) and returns {writes, result}. It must
   * be synchronous: no await may happen between the reads and the writes.
   */
  update(stores, reads, change) {
    const names = [...new Set(stores.concat(reads.map((r) => r.store)))];
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(names, "readwrite");
      const results = new Array(reads.length);
      let pending = reads.length;
      let output;
      tx.oncomplete = () => resolve(output);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("Local database transaction aborted."));
      const apply = () => {
        let operations;
        try {
          operations = change(results);
        } catch (error) {
          tx.abort();
          reject(error);
          return;
        }
        output = operations.result;
        for (const op of operations.writes || []) {
          if (op.put) tx.objectStore(op.put).put({ ...op.value, account: this.account });
          else if (op.delete) tx.objectStore(op.delete).delete([this.account, ...op.key]);
        }
      };
      if (!pending) apply();
      reads.forEach((read, i) => {
        const request = read.index
          ? tx.objectStore(read.store).index(read.index).get([this.account, ...read.key])
          : tx.objectStore(read.store).get([this.account, ...read.key]);
        request.onsuccess = () => {
          results[i] = request.result === undefined ? null : request.result;
          pending -= 1;
          if (!pending) apply();
        };
      });
    });
  }

  // --- small helpers --------------------------------------------------------------------------

  async getMeta(name, fallback = null) {
    const record = await this.get("meta", name);
    return record ? record.value : fallback;
  }

  setMeta(name, value) {
    return this.write([{ put: "meta", value: { name, value } }]);
  }

  async getKey(name) {
    const record = await this.get("signalKeys", name);
    return record ? record.value : null;
  }

  /**
   * "Sign out and erase this browser's data": deletes every record of this account from every store
   * (keys, sessions, history, outbox, settings) in one transaction. Other accounts' records lie
   * outside this account's key range and stay. Nothing of an account is kept in Web Storage (the
   * only entry, `sm-auth-refreshed-at` in api.js, is a time shared by the tabs, not account data).
   */
  async erase() {
    await this.write(STORES.map((clear) => ({ clear })));
  }
}

export async function openAccountStore(user) {
  const db = await openDatabase();
  return new AccountStore(db, accountKey(user));
}
