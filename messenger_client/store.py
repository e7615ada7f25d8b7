"""The client's local state: one SQLite file per account and device.

Public metadata (server URL, email, contact emails, message status) is stored in the clear so the
file can be inspected; everything secret (the protocol account with its private keys, ratchet
sessions, auth cookies, message texts) is sealed with AES-GCM under a key derived from the user's
passphrase with scrypt and a random salt kept in the file. Each sealed value is bound to its row
(table and key as associated data), so sealed values cannot be swapped between rows unnoticed.

Sessions are kept per device of a peer, ``(email, device id)`` (docs/PROTOCOL.md section 14), the
account's own other devices included (under the account's own email). A file of schema 1 kept one
session list per contact: opening it moves each to that contact's device 1 (section 19, "Migration").

A message row's ``server_id`` is the server's message id (what receipts name, section 17.3) and
``copy_id`` the id of the copy this device received (what it acknowledges and deduplicates by);
a message sent from this device has no copy id, one sent from another device of the account (its
``own`` copy) is an outgoing row with one.

A group message (docs/PROTOCOL.md part III, groups.py) is a row with the group's id in ``group_id``
and its sender in ``peer``; a sent one keeps the counts of the last ``group_receipts`` (members it
was delivered to, read by, of how many). A ``notice`` row is a line of the group's history that is
not a message ("alice added bob", a new name). Group names, sender keys and the sender key records
received are sealed secrets (``group:``, ``senderkey:``, ``senderkeys:``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import ClientError

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock
    fcntl = None

SCHEMA_VERSION = 2
# scrypt cost: 2^15 * 8 * 128 bytes = 32 MiB and ~0.1 s per unlock; stored per file so it can grow.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_CHECK = b"secured-messenger-client-state"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS device_sessions (
    peer TEXT NOT NULL,
    device INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (peer, device)
);
CREATE TABLE IF NOT EXISTS identities (
    peer TEXT PRIMARY KEY,
    identity_key TEXT NOT NULL,        -- the trusted key (first seen, or acknowledged)
    changed_to TEXT,                   -- a different key seen since, not yet acknowledged
    verified INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT,
    peer TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    server_id INTEGER,                 -- the message id (receipts name it)
    client_id TEXT,
    status TEXT NOT NULL,              -- out: pending/sent/delivered/read; in: received/read/failed
    failure TEXT,                      -- protocol error code of an incoming envelope that did not decrypt
    sealed_text BLOB,
    created_at REAL NOT NULL,
    copy_id INTEGER                    -- the copy this device received (acknowledged by it); NULL: sent here
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_id ON messages (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_peer ON messages (peer, local_id);
"""


# Added to the messages table for groups (no schema version of their own: added when missing).
GROUP_COLUMNS = {
    "group_id": "TEXT",  # the group of a group message or notice; NULL: a 1:1 message
    "notice": "INTEGER NOT NULL DEFAULT 0",  # a line of the group's history, not a message
    "delivered_to": "INTEGER",  # a sent group message: members it was delivered to,
    "read_by": "INTEGER",  # read by,
    "sent_to": "INTEGER",  # of how many (the last group_receipts)
}


class WrongPassphrase(ClientError):
    pass


class StateFileInUse(ClientError):
    pass


@dataclass(frozen=True)
class StoredMessage:
    local_id: int
    peer: str
    direction: str
    server_id: int | None
    client_id: str | None
    status: str
    failure: str | None
    text: str | None
    created_at: float
    group: str | None = None
    notice: bool = False
    delivered_to: int | None = None
    read_by: int | None = None
    sent_to: int | None = None
    copy_id: int | None = None


class Store:
    """Synchronous; the client calls it from its event loop (each call is a short local transaction)."""

    def __init__(self, path: str | os.PathLike, passphrase: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One process at a time: the in-process peer locks serialise ratchet work, and the account object
        # is kept in memory, so a second process on the same file could fork a ratchet (reusing message
        # keys) or bring back a spent one-time prekey. An exclusive lock on a side file refuses it.
        self._lock_file = open(self.path.with_name(self.path.name + ".lock"), "a+")
        try:
            if fcntl is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._open_database(passphrase)
        except BlockingIOError as error:
            self._lock_file.close()
            raise StateFileInUse(f"the state file {self.path} is in use by another process") from error
        except BaseException:
            if hasattr(self, "_db"):
                self._db.close()
            self._lock_file.close()
            raise

    def _open_database(self, passphrase: str) -> None:
        new = not self.path.exists()
        if new:
            # Created private to the user: the file holds sealed keys and public metadata.
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        salt_hex = self.get_meta("kdf_salt")
        if salt_hex is None:
            salt = os.urandom(16)
            params = {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
            self._aead = AESGCM(_derive(passphrase, salt, params))
            with self.transaction():
                self.set_meta("schema_version", str(SCHEMA_VERSION))
                self.set_meta("kdf_salt", salt.hex())
                self.set_meta("kdf_params", json.dumps(params))
                self.put_secret("check", _CHECK)
        else:
            params = json.loads(self.get_meta("kdf_params") or "{}")
            self._aead = AESGCM(_derive(passphrase, bytes.fromhex(salt_hex), params))
            try:
                if self.get_secret("check") != _CHECK:
                    raise WrongPassphrase("wrong passphrase for this state file")
            except InvalidTag as error:
                self._db.close()
                raise WrongPassphrase("wrong passphrase for this state file") from error
        self._migrate()

    def _migrate(self) -> None:
        self._migrate_v1()
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        with self.transaction():
            for column, kind in GROUP_COLUMNS.items():
                if column not in columns:
                    self._db.execute(f"ALTER TABLE messages ADD COLUMN {column} {kind}")
            self._db.execute("CREATE INDEX IF NOT EXISTS messages_group ON messages (group_id, local_id)")

    def _migrate_v1(self) -> None:
        """Brings a schema-1 file to schema 2 (see the module docstring), in one transaction: a v1
        session list with a contact becomes the session list with that contact's device 1, and a
        received message's server id, which was its one copy's id, is also its copy id."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        old_sessions = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"
        ).fetchone()
        with self.transaction():
            if "copy_id" not in columns:
                self._db.execute("ALTER TABLE messages ADD COLUMN copy_id INTEGER")
                self._db.execute("UPDATE messages SET copy_id = server_id WHERE direction = 'in'")
            if old_sessions:
                for peer, sealed in self._db.execute("SELECT peer, sealed FROM sessions").fetchall():
                    self.put_sessions(peer, 1, json.loads(self._open(f"sessions:{peer}", sealed)))
                self._db.execute("DROP TABLE sessions")
            # Copies are deduplicated by their own id. Two copies naming one message id are a server's
            # mistake or lie, stored both (neither may crash the client), so message ids are not unique.
            self._db.execute("DROP INDEX IF EXISTS messages_in_server_id")
            self._db.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS messages_copy_id ON messages (copy_id) WHERE copy_id IS NOT NULL"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS messages_server_id ON messages (server_id)")
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def close(self) -> None:
        self._db.close()
        self._lock_file.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- sealing ------------------------------------------------------------------------------------------

    def _seal(self, where: str, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, where.encode())

    def _open(self, where: str, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], where.encode())

    # -- meta (public) ------------------------------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE name = ?", (name,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    # -- secrets ------------------------------------------------------------------------------------------

    def get_secret(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT sealed FROM secrets WHERE name = ?", (name,)).fetchone()
        return self._open(f"secrets:{name}", row[0]) if row else None

    def put_secret(self, name: str, value: bytes | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM secrets WHERE name = ?", (name,))
        else:
            sealed = self._seal(f"secrets:{name}", value)
            self._db.execute("INSERT OR REPLACE INTO secrets (name, sealed) VALUES (?, ?)", (name, sealed))

    def get_json(self, name: str) -> Any:
        raw = self.get_secret(name)
        return None if raw is None else json.loads(raw)

    def put_json(self, name: str, value: Any) -> None:
        self.put_secret(name, None if value is None else json.dumps(value).encode())

    # -- sessions -----------------------------------------------------------------------------------------

    def get_sessions(self, peer: str, device: int) -> list[dict]:
        """The sessions with ``peer``'s ``device``, current first, then a few archived ones (JSON forms)."""
        row = self._db.execute(
            "SELECT sealed FROM device_sessions WHERE peer = ? AND device = ?", (peer, device)
        ).fetchone()
        return json.loads(self._open(f"sessions:{peer}:{device}", row[0])) if row else []

    def session_devices(self, peer: str) -> list[int]:
        """The devices of ``peer`` this device has sessions with, ascending."""
        rows = self._db.execute("SELECT device FROM device_sessions WHERE peer = ? ORDER BY device", (peer,))
        return [device for (device,) in rows.fetchall()]

    def peers_with_sessions(self) -> list[str]:
        return [peer for (peer,) in self._db.execute("SELECT DISTINCT peer FROM device_sessions").fetchall()]

    def put_sessions(self, peer: str, device: int, sessions: list[dict]) -> None:
        if not sessions:
            self._db.execute("DELETE FROM device_sessions WHERE peer = ? AND device = ?", (peer, device))
            return
        sealed = self._seal(f"sessions:{peer}:{device}", json.dumps(sessions).encode())
        self._db.execute(
            "INSERT OR REPLACE INTO device_sessions (peer, device, sealed) VALUES (?, ?, ?)", (peer, device, sealed)
        )

    def erase_keys_and_sessions(self) -> None:
        """Erases what made this file a device of its account (docs/PROTOCOL.md section 19): the account's
        private keys, every session, and every envelope still waiting in the outbox, whose message is marked
        failed (it was encrypted with a session that is gone, and the server refuses this device). Messages
        already stored, the contacts' trusted identity keys and the public metadata stay. Call inside a
        transaction. Group frames waiting and sender keys (ours and those received) go too."""
        self.put_secret("account", None)
        self._db.execute("DELETE FROM device_sessions")
        for prefix in ("outbox", "group_outbox", "senderkey", "senderkeys"):
            self._db.execute("DELETE FROM secrets WHERE name LIKE ?", (f"{prefix}:%",))
        self._db.execute(
            "UPDATE messages SET status = 'failed', failure = 'not sent: this device was unlinked'"
            " WHERE direction = 'out' AND status = 'pending'"
        )

    # -- identities ---------------------------------------------------------------------------------------

    def get_identity(self, peer: str) -> dict | None:
        row = self._db.execute(
            "SELECT identity_key, changed_to, verified FROM identities WHERE peer = ?", (peer,)
        ).fetchone()
        if row is None:
            return None
        return {"identity_key": row[0], "changed_to": row[1], "verified": bool(row[2])}

    def note_identity(self, peer: str, identity_key: str) -> str:
        """Trust on first use; returns "trusted" (first seen), "same" or "changed" (pending acknowledgement)."""
        known = self.get_identity(peer)
        if known is None:
            self._db.execute(
                "INSERT INTO identities (peer, identity_key, first_seen) VALUES (?, ?, ?)",
                (peer, identity_key, time.time()),
            )
            return "trusted"
        if known["identity_key"] == identity_key:
            if known["changed_to"]:
                self._db.execute("UPDATE identities SET changed_to = NULL WHERE peer = ?", (peer,))
            return "same"
        if known["changed_to"] != identity_key:
            self._db.execute("UPDATE identities SET changed_to = ? WHERE peer = ?", (identity_key, peer))
        return "changed"

    def accept_identity(self, peer: str) -> bool:
        """The user acknowledged the new key: it becomes the trusted one. Returns whether one was pending."""
        known = self.get_identity(peer)
        if known is None or not known["changed_to"]:
            return False
        self._db.execute(
            "UPDATE identities SET identity_key = changed_to, changed_to = NULL, verified = 0 WHERE peer = ?", (peer,)
        )
        return True

    # -- messages -----------------------------------------------------------------------------------------

    def add_message(
        self,
        *,
        peer: str,
        direction: str,
        status: str,
        text: str | None,
        server_id: int | None = None,
        client_id: str | None = None,
        failure: str | None = None,
        copy_id: int | None = None,
        group: str | None = None,
        notice: bool = False,
    ) -> int:
        cursor = self._db.execute(
            "INSERT INTO messages (peer, direction, server_id, client_id, status, failure, created_at, copy_id,"
            " group_id, notice) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (peer, direction, server_id, client_id, status, failure, time.time(), copy_id, group, int(notice)),
        )
        local_id = cursor.lastrowid
        if text is not None:
            sealed = self._seal(f"messages:{local_id}", text.encode())
            self._db.execute("UPDATE messages SET sealed_text = ? WHERE local_id = ?", (sealed, local_id))
        return local_id

    def has_copy(self, copy_id: int) -> bool:
        """Whether the copy with this id was stored already (a redelivery is only acknowledged again)."""
        return self._db.execute("SELECT 1 FROM messages WHERE copy_id = ?", (copy_id,)).fetchone() is not None

    def text_of(self, client_id: str) -> str | None:
        """The text of the message sent from here with ``client_id`` (encrypted again for a device that was
        missing from its send)."""
        row = self._db.execute(
            "SELECT local_id, sealed_text FROM messages WHERE client_id = ? AND direction = 'out'", (client_id,)
        ).fetchone()
        return self._open(f"messages:{row[0]}", row[1]).decode() if row and row[1] else None

    def mark_sent(self, client_id: str, server_id: int) -> None:
        self._db.execute(
            "UPDATE messages SET server_id = ?, status = CASE WHEN status = 'pending' THEN 'sent' ELSE status END"
            " WHERE client_id = ?",
            (server_id, client_id),
        )

    def mark_failed(self, client_id: str) -> None:
        """An outgoing message the server refused: it will never be sent."""
        self._db.execute("UPDATE messages SET status = 'failed' WHERE client_id = ?", (client_id,))

    def mark_outgoing(self, server_ids: list[int], status: str) -> None:
        order = {"sent": 1, "delivered": 2, "read": 3}
        for server_id in server_ids:
            row = self._db.execute(
                "SELECT status FROM messages WHERE direction = 'out' AND server_id = ?", (server_id,)
            ).fetchone()
            if row and order.get(row[0], 0) < order[status]:
                self._db.execute(
                    "UPDATE messages SET status = ? WHERE direction = 'out' AND server_id = ?", (status, server_id)
                )

    def awaiting_receipts(self, limit: int) -> list[int]:
        """Server ids of the newest sent messages whose read receipt has not arrived, oldest first."""
        rows = self._db.execute(
            "SELECT server_id FROM messages WHERE direction = 'out' AND server_id IS NOT NULL AND group_id IS NULL"
            " AND status IN ('sent', 'delivered') ORDER BY server_id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [server_id for (server_id,) in reversed(rows)]

    def mark_expired(self, server_ids: list[int]) -> None:
        """Sent messages the server no longer holds and never delivered (deleted at the end of retention)."""
        for server_id in server_ids:
            self._db.execute(
                "UPDATE messages SET status = 'failed', failure = 'expired before delivery'"
                " WHERE direction = 'out' AND server_id = ? AND status = 'sent'",
                (server_id,),
            )

    def mark_incoming_read(self, copy_ids: list[int]) -> None:
        """Received messages read here (by the ids of their copies, what ``read`` frames name)."""
        for copy_id in copy_ids:
            self._db.execute(
                "UPDATE messages SET status = 'read' WHERE direction = 'in' AND copy_id = ? AND status = 'received'",
                (copy_id,),
            )

    def mark_read_elsewhere(self, message_ids: list[int]) -> None:
        """Received messages another device of the account read (by message id: ``read_elsewhere``)."""
        for message_id in message_ids:
            self._db.execute(
                "UPDATE messages SET status = 'read' WHERE direction = 'in' AND server_id = ? AND status = 'received'",
                (message_id,),
            )

    def unread_incoming(self, limit: int) -> list[int]:
        """Message ids of the newest received messages not read yet, oldest first: another device of the
        account may have read them while this one was offline (docs/PROTOCOL.md section 17.3)."""
        rows = self._db.execute(
            "SELECT server_id FROM messages WHERE direction = 'in' AND server_id IS NOT NULL AND group_id IS NULL"
            " AND status = 'received' ORDER BY server_id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [server_id for (server_id,) in reversed(rows)]

    def set_group_receipts(self, message_id: int, delivered: int, read: int, of: int) -> None:
        """The counts of a sent group message (``group_receipts``); counts only grow."""
        self._db.execute(
            "UPDATE messages SET delivered_to = MAX(COALESCE(delivered_to, 0), ?),"
            " read_by = MAX(COALESCE(read_by, 0), ?), sent_to = ?"
            " WHERE direction = 'out' AND server_id = ? AND group_id IS NOT NULL",
            (delivered, read, of, message_id),
        )

    def awaiting_group_receipts(self, limit: int) -> list[int]:
        """Message ids of the newest sent group messages not yet read by every member, oldest first."""
        rows = self._db.execute(
            "SELECT server_id FROM messages WHERE direction = 'out' AND server_id IS NOT NULL AND group_id IS NOT NULL"
            " AND notice = 0 AND status = 'sent' AND (sent_to IS NULL OR COALESCE(read_by, 0) < sent_to)"
            " ORDER BY server_id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [server_id for (server_id,) in reversed(rows)]

    def pending_outgoing(self, prefix: str = "outbox") -> list[dict]:
        """Envelopes stored before sending whose ``sent`` never came back (resent with the same client_id):
        1:1 frames under ``outbox:``, group frames under ``group_outbox:``."""
        rows = self._db.execute(
            "SELECT client_id FROM messages WHERE direction = 'out' AND status = 'pending' ORDER BY local_id"
        ).fetchall()
        out = []
        for (client_id,) in rows:
            envelope = self.get_json(f"{prefix}:{client_id}")
            if envelope is not None:
                out.append(envelope)
        return out

    def history(self, peer: str | None = None, limit: int = 100, *, group: str | None = None) -> list[StoredMessage]:
        """The newest messages, oldest first: all, the 1:1 conversation with ``peer``, or ``group``'s."""
        query = (
            "SELECT local_id, peer, direction, server_id, client_id, status, failure, sealed_text, created_at,"
            " group_id, notice, delivered_to, read_by, sent_to, copy_id FROM messages"
        )
        params: tuple = ()
        if group is not None:
            query += " WHERE group_id = ?"
            params = (group,)
        elif peer is not None:
            query += " WHERE peer = ? AND group_id IS NULL"
            params = (peer,)
        query += " ORDER BY local_id DESC LIMIT ?"
        rows = self._db.execute(query, (*params, limit)).fetchall()
        result = []
        for local_id, row_peer, direction, server_id, client_id, status, failure, sealed, created, *rest in reversed(
            rows
        ):
            text = self._open(f"messages:{local_id}", sealed).decode() if sealed else None
            group_id, notice, delivered_to, read_by, sent_to, copy_id = rest
            result.append(
                StoredMessage(
                    local_id,
                    row_peer,
                    direction,
                    server_id,
                    client_id,
                    status,
                    failure,
                    text,
                    created,
                    group_id,
                    bool(notice),
                    delivered_to,
                    read_by,
                    sent_to,
                    copy_id,
                )
            )
        return result


def _derive(passphrase: str, salt: bytes, params: dict) -> bytes:
    if not passphrase:
        raise ClientError("an empty passphrase cannot protect the state file")
    kdf = Scrypt(salt=salt, length=32, n=int(params["n"]), r=int(params["r"]), p=int(params["p"]))
    return kdf.derive(passphrase.encode())
