"""The state file: secrets sealed under the passphrase, each bound to its row; public metadata in the clear."""

import json
import sqlite3

import pytest
from cryptography.exceptions import InvalidTag

from messenger_client.errors import ClientError
from messenger_client.store import Store, WrongPassphrase


def test_secrets_are_sealed_and_need_the_passphrase(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = Store(path, "passphrase one")
    store.put_json("account", {"private": "very secret key material"})
    store.add_message(peer="bob@example.test", direction="in", status="received", text="hello there", server_id=1)
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the database and any WAL left
    assert b"very secret key material" not in raw
    assert b"hello there" not in raw
    assert b"bob@example.test" in raw  # metadata stays readable
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(WrongPassphrase):
        Store(path, "passphrase two")
    store = Store(path, "passphrase one")
    assert store.get_json("account") == {"private": "very secret key material"}
    assert [m.text for m in store.history("bob@example.test")] == ["hello there"]
    store.close()


def test_a_sealed_value_moved_to_another_row_does_not_open(tmp_path):
    store = Store(tmp_path / "state.sqlite3", "passphrase")
    store.put_sessions("alice@example.test", 1, [{"session": "alice's"}])
    store.put_sessions("alice@example.test", 2, [{"session": "alice's laptop"}])
    store.put_sessions("mallory@example.test", 1, [{"session": "mallory's"}])
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        (sealed,) = db.execute("SELECT sealed FROM device_sessions WHERE peer = 'mallory@example.test'").fetchone()
        db.execute("UPDATE device_sessions SET sealed = ? WHERE peer = 'alice@example.test' AND device = 1", (sealed,))
        (sealed,) = db.execute("SELECT sealed FROM device_sessions WHERE device = 2").fetchone()
        db.execute("UPDATE device_sessions SET device = 3 WHERE device = 2")
    with pytest.raises(InvalidTag):
        store.get_sessions("alice@example.test", 1)
    with pytest.raises(InvalidTag):  # bound to the device too
        store.get_sessions("alice@example.test", 3)
    store.close()


def test_identity_keys_are_trusted_on_first_use_and_a_change_waits_for_acceptance(tmp_path):
    store = Store(tmp_path / "state.sqlite3", "passphrase")
    assert store.note_identity("bob@example.test", "KEY1") == "trusted"
    assert store.note_identity("bob@example.test", "KEY1") == "same"
    assert store.note_identity("bob@example.test", "KEY2") == "changed"
    assert store.get_identity("bob@example.test")["changed_to"] == "KEY2"
    assert store.accept_identity("bob@example.test")
    assert store.get_identity("bob@example.test") == {"identity_key": "KEY2", "changed_to": None, "verified": False}
    assert not store.accept_identity("bob@example.test")
    store.close()


def test_an_empty_passphrase_is_refused(tmp_path):
    with pytest.raises(ClientError):
        Store(tmp_path / "state.sqlite3", "")


def test_messages_awaiting_receipts_are_the_newest_unread_sent_ones_and_expire_only_if_undelivered(tmp_path):
    store = Store(tmp_path / "state.sqlite3", "passphrase")
    for server_id, status in [(1, "sent"), (2, "delivered"), (3, "read"), (4, "sent"), (5, "sent")]:
        store.add_message(peer="bob@example.test", direction="out", status=status, text="x", server_id=server_id)
    store.add_message(peer="bob@example.test", direction="out", status="pending", text="not stored yet")
    store.add_message(peer="bob@example.test", direction="in", status="received", text="y", server_id=6)
    assert store.awaiting_receipts(10) == [1, 2, 4, 5]
    assert store.awaiting_receipts(2) == [4, 5]
    store.mark_expired([1, 2, 6])
    assert [(m.server_id, m.status) for m in store.history("bob@example.test") if m.server_id in (1, 2, 6)] == [
        (1, "failed"),
        (2, "delivered"),
        (6, "received"),
    ]
    assert store.awaiting_receipts(10) == [2, 4, 5]
    store.close()


def test_erasing_a_device_keeps_the_history_and_fails_what_waited_in_the_outbox(tmp_path):
    store = Store(tmp_path / "state.sqlite3", "passphrase")
    store.put_json("account", {"private": "key material"})
    store.put_json("cookies", {"access_token": {"value": "x"}})
    store.put_sessions("bob@example.test", 1, [{"session": "bob's"}])
    store.put_sessions("bob@example.test", 2, [{"session": "bob's laptop"}])
    store.note_identity("bob@example.test", "KEY1")
    store.add_message(peer="bob@example.test", direction="out", status="sent", text="delivered before", server_id=1)
    store.add_message(peer="bob@example.test", direction="out", status="pending", text="waiting", client_id="c1")
    store.put_json("outbox:c1", {"client_id": "c1", "body": "ciphertext"})
    with store.transaction():
        store.erase_keys_and_sessions()
    assert store.get_json("account") is None
    assert store.peers_with_sessions() == []
    assert store.get_json("outbox:c1") is None
    assert store.pending_outgoing() == []
    assert [(m.text, m.status) for m in store.history("bob@example.test")] == [
        ("delivered before", "sent"),
        ("waiting", "failed"),
    ]
    assert store.get_identity("bob@example.test")["identity_key"] == "KEY1"
    assert store.get_json("cookies") is not None  # the session's cookies are http.py's to drop
    store.close()


def test_sessions_are_kept_per_device_and_a_device_s_can_be_dropped(tmp_path):
    store = Store(tmp_path / "state.sqlite3", "passphrase")
    store.put_sessions("bob@example.test", 2, [{"session": "laptop"}])
    store.put_sessions("bob@example.test", 1, [{"session": "phone"}, {"session": "archived"}])
    assert store.session_devices("bob@example.test") == [1, 2]
    assert store.get_sessions("bob@example.test", 1) == [{"session": "phone"}, {"session": "archived"}]
    assert store.get_sessions("bob@example.test", 3) == []
    store.put_sessions("bob@example.test", 2, [])
    assert store.session_devices("bob@example.test") == [1]
    assert store.peers_with_sessions() == ["bob@example.test"]
    store.close()


def test_received_messages_are_marked_read_by_copy_id_here_and_by_message_id_elsewhere(tmp_path):
    store = Store(tmp_path / "state.sqlite3", "passphrase")
    store.add_message(peer="bob@example.test", direction="in", status="received", text="a", server_id=10, copy_id=11)
    store.add_message(peer="bob@example.test", direction="in", status="received", text="b", server_id=20, copy_id=22)
    store.add_message(peer="bob@example.test", direction="out", status="sent", text="c", server_id=30, copy_id=33)
    assert store.has_copy(22)
    assert store.has_copy(33)
    assert not store.has_copy(20)
    assert store.unread_incoming(10) == [10, 20]
    store.mark_incoming_read([11])
    store.mark_read_elsewhere([20, 30])
    assert [(m.text, m.status) for m in store.history("bob@example.test")] == [
        ("a", "read"),
        ("b", "read"),
        ("c", "sent"),
    ]
    assert store.unread_incoming(10) == []
    store.close()


def to_schema_1(path, passphrase: str) -> None:
    """Turns a state file into what a version-1 client left: one session list per contact (its device
    1's here) in the ``sessions`` table, and messages without copy ids."""
    store = Store(path, passphrase)
    with store.transaction():
        store._db.execute("CREATE TABLE sessions (peer TEXT PRIMARY KEY, sealed BLOB NOT NULL)")
        for peer in store.peers_with_sessions():
            sealed = store._seal(f"sessions:{peer}", json.dumps(store.get_sessions(peer, 1)).encode())
            store._db.execute("INSERT INTO sessions (peer, sealed) VALUES (?, ?)", (peer, sealed))
        store._db.execute("DROP TABLE device_sessions")
        store._db.execute("DROP INDEX messages_copy_id")
        store._db.execute("ALTER TABLE messages DROP COLUMN copy_id")
        store.set_meta("schema_version", "1")
    store.close()


def test_a_version_1_file_s_sessions_become_sessions_with_device_1(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = Store(path, "passphrase")
    store.put_sessions("bob@example.test", 1, [{"session": "bob's"}])
    store.put_sessions("carol@example.test", 1, [{"c": 1}])
    store.add_message(peer="bob@example.test", direction="in", status="received", text="old", server_id=7)
    store.close()
    to_schema_1(path, "passphrase")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (2,)
    store = Store(path, "passphrase")
    assert store.get_meta("schema_version") == "2"
    assert store.get_sessions("bob@example.test", 1) == [{"session": "bob's"}]
    assert store.get_sessions("carol@example.test", 1) == [{"c": 1}]
    assert store.session_devices("bob@example.test") == [1]
    assert store.has_copy(7)  # a received message's one copy: its id was the message id
    assert [(m.text, m.server_id) for m in store.history("bob@example.test")] == [("old", 7)]
    store.close()
    store = Store(path, "passphrase")  # opening again changes nothing
    assert store.get_sessions("bob@example.test", 1) == [{"session": "bob's"}]
    store.close()
