"""The account on this device: who it is, its own keys (a ProtocolAccount, kept sealed in the
state file), which device of the account this state file is, signing up, in and out, and the locks
that serialise work on keys and sessions.

- The keys are kept only once the server accepted their public halves (``register``; ``login``
  with ``new_device``, which starts over: a new identity key as a new device, and every session
  made with the old identity dropped; ``became_device`` at the end of a link, linking.py).
- The device number (docs/PROTOCOL.md sections 14 and 15) is the server's: kept from the answers
  of registration, login and start over, and sent at every login so that the session is bound to
  this device. A state file written before devices existed holds keys but no number: it is device
  1 (section 19). Without keys the login names no device (``null``: a pending session).
- A device that finds itself unlinked erases its keys and sessions (``forget_device``): here when a
  login that named it is answered ``device: null``; http.py and transport.py hear it from a 401 or
  a socket closed with ``device_removed`` and call the same method.
- ``lock`` guards the account's own keys (one-time prekeys, the signed prekey); ``peer_lock(peer)``
  guards that peer's sessions: the new session state and the message it produced are stored in
  one transaction under it (docs/PROTOCOL.md section 7).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from .errors import ClientError, DeviceRemoved, NotSetUp
from .http import HttpApi
from .protocol import ProtocolAccount, b64encode
from .store import Store

ONE_TIME_PREKEY_BATCH = 100  # made at registration; the refill tops up to this many (keys.py)
DEVICE_NAME_MAX = 64  # the server's limit (docs/PROTOCOL.md section 20)
MAX_DEVICE_ID = 2**31 - 1


def default_device_name() -> str:
    """``Terminal on <hostname>``: how the account's device list shows this state file until it is
    renamed. Printable characters only (the server refuses control and invisible ones in a name),
    at most DEVICE_NAME_MAX."""
    host = "".join(ch for ch in socket.gethostname() if ch.isprintable()).strip()
    name = f"Terminal on {host}" if host else "Terminal"
    return name[:DEVICE_NAME_MAX].rstrip()


def device_number(answer: Any) -> int | None:
    """The number of the ``device`` ({"id", "name"}) a server answer names; None when it names none."""
    device = answer.get("device") if isinstance(answer, dict) else None
    number = device.get("id") if isinstance(device, dict) else None
    return number if type(number) is int and 1 <= number <= MAX_DEVICE_ID else None


class Account:
    def __init__(self, store: Store, http: HttpApi) -> None:
        self._store = store
        self._http = http
        self.email: str | None = store.get_meta("email")
        stored = store.get_json("account")
        self._keys: ProtocolAccount | None = None if stored is None else ProtocolAccount.from_json(stored)
        self.lock = asyncio.Lock()
        self._peer_locks: dict[str, asyncio.Lock] = {}

    @property
    def identity_key(self) -> bytes:
        return self.require().identity_key

    @property
    def device_id(self) -> int | None:
        """This state file's device number; None without keys (the login then names no device)."""
        if self._keys is None:
            return None
        stored = self._store.get_meta("device_id")
        if stored is None:
            return 1  # keys from before devices: the server made them device 1 (docs/PROTOCOL.md section 19)
        if not (stored.isascii() and stored.isdigit()):
            raise ClientError(f"the state file's device number is damaged ({stored!r})")
        return int(stored)

    @property
    def has_keys(self) -> bool:
        return self._keys is not None

    @property
    def unlinked(self) -> bool:
        """This state file was a device of the account until it was unlinked (its keys are erased)."""
        return self._keys is None and self._store.get_meta("unlinked_device_id") is not None

    def require(self) -> ProtocolAccount:
        if self._keys is None:
            if self.unlinked:
                raise DeviceRemoved()
            raise NotSetUp(
                "this state file holds no keys: register, link it to the account (link EMAIL), or log in with "
                "--new-device"
            )
        return self._keys

    def save(self) -> None:
        """Stores the keys (call inside the store's transaction when other rows change with them)."""
        self._store.put_json("account", self.require().to_json())

    def peer_lock(self, peer: str) -> asyncio.Lock:
        return self._peer_locks.setdefault(peer.lower(), asyncio.Lock())

    def _check_email(self, email: str) -> None:
        if self.email is not None and self.email.lower() != email.lower():
            raise ClientError(f"this state file belongs to {self.email}; use another --state file for {email}")

    def _set_device_number(self, number: int | None) -> None:
        """Inside a transaction; None (an answer without a device) keeps the rule for old state files."""
        if number is not None:
            self._store.set_meta("device_id", str(number))

    async def register(
        self, email: str, password: str, *, one_time_prekeys: int, device_name: str | None = None
    ) -> None:
        """Creates the account (and its device 1) with fresh keys, kept only once the server accepted them."""
        self._check_email(email)
        if self._keys is not None:
            raise ClientError(f"this state file already holds the keys of {self.email}")
        keys = ProtocolAccount.create(one_time_prekeys=one_time_prekeys)
        body = {
            "email": email,
            "password": password,
            **keys.registration_keys(),
            "device_name": device_name or default_device_name(),
        }
        answer = await self._http.call("POST", "auth/register", body, auth=False)
        with self._store.transaction():
            self._keys = keys
            self.save()
            self._store.set_meta("email", email)
            self._store.set_meta("server", self._http.server)
            self._store.set_meta("signed_prekey_created_at", str(time.time()))
            self._set_device_number(device_number(answer))
            self._store.set_meta("unlinked_device_id", None)
        self.email = email

    async def login(
        self, email: str, password: str, *, new_device: bool = False, device_name: str | None = None
    ) -> bool:
        """Signs in as this device (cookies like the browser); returns True when it started over.

        The login names the stored device number. Answered ``device: null``, it means this device was
        unlinked: its keys and sessions are erased and DeviceRemoved raised. Without keys here (never
        had any, or just erased), ``new_device`` starts over (docs/PROTOCOL.md section 15): a new
        identity key as a new device named ``device_name``; the account's other devices are removed,
        every session ends and contacts see a new safety number."""
        self._check_email(email)
        named = self.device_id
        answer = await self._http.call(
            "POST", "auth/login", {"email": email, "password": password, "device_id": named}, auth=False
        )
        with self._store.transaction():
            self.email = answer.get("email", email) if isinstance(answer, dict) else email
            self._store.set_meta("email", self.email)
            self._store.set_meta("server", self._http.server)
        bound = device_number(answer)
        # Only an explicit null means "unlinked"; a server from before devices answers no such field.
        if named is not None and isinstance(answer, dict) and "device" in answer and answer["device"] is None:
            self.forget_device()
        elif self._keys is not None:
            with self._store.transaction():
                self._set_device_number(bound)
            status = await self._http.call("GET", "keys/prekeys/count")
            if status.get("identity_key") == b64encode(self._keys.identity_key):
                return False
        if not new_device:
            if self.unlinked:
                raise DeviceRemoved()
            raise NotSetUp(
                "the account's keys are on other devices (or this state file has none): link this state file "
                "as a new device with one of them (link EMAIL), or log in with --new-device to start over here "
                "with a new identity (the account's other devices are removed, contacts see a new safety number)"
            )
        await self._start_over(password, device_name)
        return True

    async def _start_over(self, password: str, device_name: str | None) -> None:
        keys = ProtocolAccount.create(one_time_prekeys=ONE_TIME_PREKEY_BATCH)
        body = {"password": password, **keys.registration_keys(), "device_name": device_name or default_device_name()}
        answer = await self._http.call("PUT", "keys/identity", body)
        with self._store.transaction():
            # Sessions and waiting envelopes were made with the old identity: no one could read them now.
            self._store.erase_keys_and_sessions()
            self._keys = keys
            self.save()
            self._store.set_meta("signed_prekey_created_at", str(time.time()))
            self._store.set_meta("device_id", None)
            self._set_device_number(device_number(answer))
            self._store.set_meta("unlinked_device_id", None)

    def became_device(self, keys: ProtocolAccount, answer: Any) -> int:
        """A link completed (linking.py): the server made this state file a device of the account with
        ``keys`` (the account's identity key, this device's own prekeys). Kept with the number the
        server gave, in one transaction; returns that number."""
        number = device_number(answer)
        if number is None:
            raise ClientError("the server's answer to the new device names no device number")
        with self._store.transaction():
            self._keys = keys
            self.save()
            self._store.set_meta("signed_prekey_created_at", str(time.time()))
            self._store.set_meta("device_id", str(number))
            self._store.set_meta("unlinked_device_id", None)
        return number

    def forget_device(self) -> None:
        """This device was unlinked from the account (docs/PROTOCOL.md section 19): erases its keys and
        sessions from the state file (Store.erase_keys_and_sessions) and remembers that it was unlinked.

        Why erase rather than keep them for later: the server refuses this device from now on, so the
        keys are of no use here, yet they hold the account's identity private key, which a removed device
        keeps (section 20: whoever holds it could, with the server's help, impersonate the account), and
        the sessions' ratchet keys. Someone unlinks a device they no longer trust or use; what is erased
        cannot leak from it later. No retry and no new keys follow by themselves: starting over is the
        user's decision, since it changes the safety number for every contact. Synchronous and
        idempotent: it may run while other work holds the locks, which then finds no keys (``require``)."""
        number = self.device_id
        with self._store.transaction():
            self._store.erase_keys_and_sessions()
            self._store.set_meta("signed_prekey_created_at", None)
            self._store.set_meta("device_id", None)
            if number is not None:
                self._store.set_meta("unlinked_device_id", str(number))
        self._keys = None

    async def logout(self) -> None:
        await self._http.call("POST", "auth/logout", auth=False)
        self._http.forget_cookies()

    async def me(self) -> dict:
        return await self._http.call("GET", "auth/me")
