"""The browser's IndexedDB schema upgrades in place, keeping what a person already has."""

import pytest

pytestmark = pytest.mark.browser

ACCOUNT = "7:ann@example.test"


def test_upgrading_the_local_database_keeps_history_and_indexes_messages_still_waiting_for_receipts(people):
    page = people("ann").page
    page.goto("/login")
    # A database as version 1 of the client left it (no `awaiting` index), then the current
    # client opens it.
    result = page.evaluate(
        """async (account) => {
          const open = (version, upgrade) => new Promise((resolve, reject) => {
            const request = indexedDB.open("SecureMessengerDB", version);
            if (upgrade) request.onupgradeneeded = () => upgrade(request.result);
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          const v1 = await open(1, (db) => {
            const messages = db.createObjectStore("messages", { keyPath: ["account", "id"] });
            messages.createIndex("serverId", ["account", "serverId"]);
            messages.add({ account, id: "a", direction: "out", status: "sent", serverId: 11, text: "1" });
            messages.add({ account, id: "b", direction: "out", status: "delivered", serverId: 12, text: "2" });
            messages.add({ account, id: "c", direction: "out", status: "read", serverId: 13, text: "3" });
            messages.add({ account, id: "d", direction: "out", status: "sending", text: "4" });
            messages.add({ account, id: "in:14", direction: "in", status: "received", serverId: 14, text: "5" });
          });
          v1.close();
          const storage = await import("/static/js/storage.js");
          const db = await storage.openDatabase();
          const store = new storage.AccountStore(db, account);
          const waiting = await store.all("messages", { index: "awaiting" });
          const all = await store.all("messages");
          db.close();
          const stores = [...db.objectStoreNames];
          return { version: db.version, stores, waiting: waiting.map((m) => m.id), count: all.length };
        }""",
        ACCOUNT,
    )
    assert result["version"] >= 2
    assert {"messages", "signalKeys", "outbox", "identities"} <= set(result["stores"])
    assert result["waiting"] == ["a", "b"]
    assert result["count"] == 5


def test_upgrading_from_version_3_makes_each_session_the_one_with_the_contacts_device_1(people):
    """docs/PROTOCOL.md section 19, "Migration": a session with a contact is the session with
    that contact's device 1; a received message's copy id is its message id; a queued envelope is
    the one copy of a frame for device 1."""
    page = people("ann").page
    page.goto("/login")
    result = page.evaluate(
        """async (account) => {
          const bob = "bob@example.test";
          const v3 = await new Promise((resolve, reject) => {
            const request = indexedDB.open("SecureMessengerDB", 3);
            request.onupgradeneeded = () => {
              const db = request.result;
              const messages = db.createObjectStore("messages", { keyPath: ["account", "id"] });
              messages.createIndex("serverId", ["account", "serverId"]);
              messages.add({ account, id: "in:14", contact: bob, direction: "in", serverId: 14, text: "in", ts: 1 });
              messages.add({ account, id: "c1", contact: bob, direction: "out", serverId: 15, text: "out", ts: 2 });
              const sessions = db.createObjectStore("signalSessions", { keyPath: ["account", "email"] });
              sessions.add({ account, email: bob, current: { ratchet: "state" }, archived: [] });
              const outbox = db.createObjectStore("outbox", { keyPath: ["account", "clientId"] });
              outbox.add({ account, clientId: "c2", seq: 1, to: bob, kind: "message", body: "envelope" });
              outbox.add({ account, clientId: "c3", seq: 2, to: bob });
            };
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          v3.close();
          const storage = await import("/static/js/storage.js");
          const db = await storage.openDatabase();
          const store = new storage.AccountStore(db, account);
          const out = {
            version: db.version,
            session: await store.get("signalSessions", bob, 1),
            sessions: await store.all("signalSessions"),
            byMessageId: (await store.all("messages", { index: "messageId" })).map((m) => m.id),
            sent: await store.get("messages", "c1"),
            queued: await store.get("outbox", "c2"),
            held: await store.get("outbox", "c3"),
          };
          db.close();
          return out;
        }""",
        ACCOUNT,
    )
    assert result["version"] == 5
    assert result["session"] == {
        "account": ACCOUNT,
        "email": "bob@example.test",
        "device": 1,
        "current": {"ratchet": "state"},
        "archived": [],
    }
    assert len(result["sessions"]) == 1
    assert result["byMessageId"] == ["in:14"]
    assert "messageId" not in result["sent"]
    assert result["sent"]["serverId"] == 15
    assert result["queued"] == {
        "account": ACCOUNT,
        "clientId": "c2",
        "seq": 1,
        "to": "bob@example.test",
        "copies": [{"device": 1, "kind": "message", "body": "envelope"}],
        "own": [],
    }
    assert result["held"] == {"account": ACCOUNT, "clientId": "c3", "seq": 2, "to": "bob@example.test"}


def test_upgrading_from_version_4_adds_the_group_stores_and_keeps_everything(people):
    """Version 5 (docs/PROTOCOL.md part III) only adds the stores `groups`, `senderKeys` and
    `receivedSenderKeys` and the messages index `groupAwaiting`: nothing stored changes."""
    page = people("ann").page
    page.goto("/login")
    result = page.evaluate(
        """async (account) => {
          const bob = "bob@example.test";
          const v4 = await new Promise((resolve, reject) => {
            const request = indexedDB.open("SecureMessengerDB", 4);
            request.onupgradeneeded = () => {
              const db = request.result;
              const messages = db.createObjectStore("messages", { keyPath: ["account", "id"] });
              messages.createIndex("serverId", ["account", "serverId"]);
              messages.add({ account, id: "c1", contact: bob, direction: "out", serverId: 15, text: "out", ts: 2 });
              const outbox = db.createObjectStore("outbox", { keyPath: ["account", "clientId"] });
              outbox.add({ account, clientId: "c2", seq: 1, to: bob, copies: [], own: [] });
            };
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          v4.close();
          const storage = await import("/static/js/storage.js");
          const db = await storage.openDatabase();
          const store = new storage.AccountStore(db, account);
          const out = {
            version: db.version,
            stores: [...db.objectStoreNames],
            indexes: [...db.transaction("messages").objectStore("messages").indexNames],
            sent: await store.get("messages", "c1"),
            queued: await store.get("outbox", "c2"),
            groups: await store.all("groups"),
          };
          db.close();
          return out;
        }""",
        ACCOUNT,
    )
    assert result["version"] == 5
    assert {"groups", "senderKeys", "receivedSenderKeys", "messages", "outbox"} <= set(result["stores"])
    assert "groupAwaiting" in result["indexes"]
    assert result["sent"] == {
        "account": ACCOUNT,
        "id": "c1",
        "contact": "bob@example.test",
        "direction": "out",
        "serverId": 15,
        "text": "out",
        "ts": 2,
    }
    assert result["queued"] == {
        "account": ACCOUNT,
        "clientId": "c2",
        "seq": 1,
        "to": "bob@example.test",
        "copies": [],
        "own": [],
    }
    assert result["groups"] == []
