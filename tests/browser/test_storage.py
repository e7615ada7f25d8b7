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
