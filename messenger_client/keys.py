"""Key upkeep: the account's one-time prekeys refilled, its signed prekey rotated (docs/PROTOCOL.md
section 7.4), and the contacts' identity keys watched.

- A one-time prekey's new private keys and the advanced id counter are stored before the upload:
  a lost response can never make an id be used twice.
- The first identity key seen for a contact is trusted; a different one later is a pending change
  (the store's ``note_identity``), and nothing is encrypted to that contact until
  ``accept_identity`` (outbox.py refuses); accepting drops the sessions made with the old key.
"""

from __future__ import annotations

import contextlib
import time

from .account import ONE_TIME_PREKEY_BATCH, Account
from .contacts import Contacts
from .errors import ApiError, ClientError, NotSetUp
from .events import Event, Events
from .http import HttpApi
from .protocol import Session, b64decode, b64encode, format_safety_number, safety_number
from .store import Store
from .tasks import Background

ONE_TIME_PREKEY_MIN = 25
SIGNED_PREKEY_ROTATE_SECONDS = 7 * 24 * 3600


class Keys:
    def __init__(
        self, store: Store, http: HttpApi, account: Account, contacts: Contacts, events: Events, background: Background
    ) -> None:
        self._store = store
        self._http = http
        self._account = account
        self._contacts = contacts
        self._events = events
        self._background = background

    # -- the account's own keys ---------------------------------------------------------------------------

    async def maintain(self) -> dict:
        """Refills one-time prekeys below the minimum and rotates an old signed prekey (PROTOCOL.md 7.4)."""
        async with self._account.lock:
            keys = self._account.require()
            status = await self._http.call("GET", "keys/prekeys/count")
            if status.get("identity_key") and status["identity_key"] != b64encode(keys.identity_key):
                raise NotSetUp("another device holds this account's keys now (log in with --new-device)")
            uploaded = 0
            minimum = max(ONE_TIME_PREKEY_MIN, int(status.get("low_threshold") or 0))
            count = int(status.get("count") or 0)
            if count < minimum:
                room = int(status.get("max_unused") or ONE_TIME_PREKEY_BATCH) - count
                batch = min(ONE_TIME_PREKEY_BATCH - count, room)
                if batch > 0:
                    new = keys.generate_one_time_prekeys(batch)
                    self._account.save()  # before the upload (see above)
                    await self._http.call("POST", "keys/prekeys", {"one_time_prekeys": new})
                    uploaded = batch
            rotated = False
            created = float(self._store.get_meta("signed_prekey_created_at") or 0)
            server_age = float(status.get("signed_prekey_age_seconds") or 0)
            server_max = float(status.get("signed_prekey_max_age_seconds") or 0) or float("inf")
            if time.time() - created > SIGNED_PREKEY_ROTATE_SECONDS or server_age > min(
                SIGNED_PREKEY_ROTATE_SECONDS, server_max / 2
            ):
                await self._publish_signed_prekey(keys.rotate_signed_prekey())
                rotated = True
            return {"uploaded": uploaded, "rotated": rotated}

    async def rotate_signed_prekey(self) -> dict:
        async with self._account.lock:
            return await self._publish_signed_prekey(self._account.require().rotate_signed_prekey())

    async def _publish_signed_prekey(self, signed: dict) -> dict:
        with self._store.transaction():
            self._account.save()
            self._store.set_meta("signed_prekey_created_at", str(time.time()))
        return await self._http.call("PUT", "keys/signed-prekey", signed)

    def maintain_in_background(self) -> None:
        """After a session consumed a one-time prekey, or on the server's ``prekeys_low``."""
        self._background.spawn(self._maintain_quietly())

    async def _maintain_quietly(self) -> None:
        with contextlib.suppress(ClientError):
            await self.maintain()

    # -- the contacts' identity keys ----------------------------------------------------------------------

    async def check_identity(self, peer: str) -> bool:
        """Compares the key the server reports for ``peer`` with the trusted one; True when it changed."""
        key = (await self._http.call("POST", "keys/identity/lookup", {"email": peer}))["identity_key"]
        async with self._account.peer_lock(peer):
            return self._store.note_identity(peer, key) == "changed"

    async def check_identities(self) -> list[str]:
        """Checks every contact (changes announced while this client was offline); returns who changed."""
        changed = []
        for contact in await self._contacts.list():
            with contextlib.suppress(ApiError):
                if await self.check_identity(contact["email"]):
                    changed.append(contact["email"])
        return changed

    async def safety_number(self, peer: str) -> dict:
        """``{"safety_number", "changed", "new_safety_number"}`` for ``peer`` (60 digits in 12 groups).

        Asks the server for the contact's current key first, so a change is noticed here too."""
        with contextlib.suppress(ApiError):
            await self.check_identity(peer)
        known = self._store.get_identity(peer)
        if known is None:
            raise ApiError(404, "not_found", f"no identity key known for {peer} (not a contact?)")
        own = self._account.identity_key

        def number(key: str) -> str:
            return format_safety_number(safety_number(own, b64decode(key)))

        return {
            "safety_number": number(known["identity_key"]),
            "changed": bool(known["changed_to"]),
            "new_safety_number": number(known["changed_to"]) if known["changed_to"] else None,
        }

    async def accept_identity(self, peer: str) -> bool:
        """Accepts a contact's new identity key; sessions with the old key are dropped."""
        async with self._account.peer_lock(peer):
            with self._store.transaction():
                if not self._store.accept_identity(peer):
                    return False
                trusted = self._store.get_identity(peer)["identity_key"]
                for device in self._store.session_devices(peer):
                    sessions = [
                        s
                        for s in self._store.get_sessions(peer, device)
                        if b64encode(Session.from_json(s).remote_identity_key) == trusted
                    ]
                    self._store.put_sessions(peer, device, sessions)
            return True

    async def check_identities_quietly(self) -> None:
        """On every connect: changes announced while this client was offline become events."""
        with contextlib.suppress(ClientError):
            for peer in await self.check_identities():
                self._events.emit(Event("identity_changed", {"email": peer}))

    # -- server frames ------------------------------------------------------------------------------------

    async def on_prekeys_low(self, frame: dict) -> bool:
        """Refills when the frame is about this device: every device of the account hears of each one's
        prekeys (keys/events.py), and another device's are not ours to refill. A frame without
        ``device_id`` (a server from before devices) is about the account's one device: this one."""
        if frame.get("device_id") in (None, self._account.device_id):
            self.maintain_in_background()
        return False  # also an event

    async def on_identity_changed(self, frame: dict) -> bool:
        """The server announces a contact's new key: checked against the server's answer, an event if it changed."""
        if not frame.get("email"):
            return False
        self._background.spawn(self._note_identity_quietly(str(frame["email"])))
        return True

    async def _note_identity_quietly(self, peer: str) -> None:
        with contextlib.suppress(ClientError):
            if await self.check_identity(peer):
                self._events.emit(Event("identity_changed", {"email": peer}))
