"""The account on this device: who it is, its own keys (a ProtocolAccount, kept sealed in the
state file), signing up, in and out, and the locks that serialise work on keys and sessions.

- The keys are kept only once the server accepted their public halves (``register``; ``login``
  with ``new_device``, which also drops every session made with the old identity).
- ``lock`` guards the account's own keys (one-time prekeys, the signed prekey); ``peer_lock(peer)``
  guards that peer's sessions: the new session state and the message it produced are stored in
  one transaction under it (docs/PROTOCOL.md section 7).
"""

from __future__ import annotations

import asyncio
import time

from .errors import ClientError, NotSetUp
from .http import HttpApi
from .protocol import ProtocolAccount, b64encode
from .store import Store

ONE_TIME_PREKEY_BATCH = 100  # made at registration; the refill tops up to this many (keys.py)


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

    def require(self) -> ProtocolAccount:
        if self._keys is None:
            raise NotSetUp("this state file holds no keys: register, or log in with --new-device")
        return self._keys

    def save(self) -> None:
        """Stores the keys (call inside the store's transaction when other rows change with them)."""
        self._store.put_json("account", self.require().to_json())

    def peer_lock(self, peer: str) -> asyncio.Lock:
        return self._peer_locks.setdefault(peer.lower(), asyncio.Lock())

    def _check_email(self, email: str) -> None:
        if self.email is not None and self.email.lower() != email.lower():
            raise ClientError(f"this state file belongs to {self.email}; use another --state file for {email}")

    async def register(self, email: str, password: str, *, one_time_prekeys: int) -> None:
        """Creates the account with fresh keys and keeps them only once the server accepted them."""
        self._check_email(email)
        if self._keys is not None:
            raise ClientError(f"this state file already holds the keys of {self.email}")
        keys = ProtocolAccount.create(one_time_prekeys=one_time_prekeys)
        await self._http.call(
            "POST", "auth/register", {"email": email, "password": password, **keys.registration_keys()}, auth=False
        )
        with self._store.transaction():
            self._keys = keys
            self.save()
            self._store.set_meta("email", email)
            self._store.set_meta("server", self._http.server)
            self._store.set_meta("signed_prekey_created_at", str(time.time()))
        self.email = email

    async def login(self, email: str, password: str, *, new_device: bool = False) -> None:
        """Signs in (cookies like the browser). Without this state file's keys on the server, ``new_device``
        makes this the account's device (new identity key; other sessions are signed out, contacts warned)."""
        self._check_email(email)
        user = await self._http.call("POST", "auth/login", {"email": email, "password": password}, auth=False)
        with self._store.transaction():
            self.email = user.get("email", email) if isinstance(user, dict) else email
            self._store.set_meta("email", self.email)
            self._store.set_meta("server", self._http.server)
        status = await self._http.call("GET", "keys/prekeys/count")
        ours = self._keys is not None and status.get("identity_key") == b64encode(self._keys.identity_key)
        if ours:
            return
        if not new_device:
            raise NotSetUp(
                "the account's keys are on another device (or this state file has none): log in with "
                "--new-device to move the account here (other sessions are signed out, contacts see a new "
                "safety number)"
            )
        keys = ProtocolAccount.create(one_time_prekeys=ONE_TIME_PREKEY_BATCH)
        await self._http.call("PUT", "keys/identity", {"password": password, **keys.registration_keys()})
        with self._store.transaction():
            self._keys = keys
            self.save()
            self._store.set_meta("signed_prekey_created_at", str(time.time()))
            for peer in self._store.peers_with_sessions():
                self._store.put_sessions(peer, [])

    async def logout(self) -> None:
        await self._http.call("POST", "auth/logout", auth=False)
        self._http.forget_cookies()

    async def me(self) -> dict:
        return await self._http.call("GET", "auth/me")
