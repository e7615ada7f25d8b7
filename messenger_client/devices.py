"""The account's devices (docs/PROTOCOL.md sections 14 and 19): the list, renaming and unlinking,
the REST calls behind ``devices`` in the CLI. A device number goes in the URL (it names no person,
unlike an email: contacts.py).

Unlinking this device itself ends as being unlinked from elsewhere does: the server refuses the
device from then on, so its keys and sessions are erased (``HttpApi.device_removed`` ->
``Account.forget_device``) and DeviceRemoved is raised.

``devices_changed {email}`` (a contact's devices, or our own account's, section 19) is a quiet
notice, never an identity change: the account's device list is asked again and the sessions with
devices no longer in it are dropped (nothing more will be encrypted for a removed device); the
application hears the ``devices_changed`` event after that (also when the list could not be
asked). A notice that is missed costs nothing more than a ``device_mismatch`` on the next send
(outbox.py).
"""

from __future__ import annotations

import contextlib
from typing import Any

from .account import MAX_DEVICE_ID, Account
from .errors import ApiError, ClientError
from .events import Events
from .http import HttpApi
from .store import Store
from .tasks import Background

FIELDS = ("id", "name", "created_at", "last_seen_at", "current")
DEVICES_MAX = 64  # more device ids than any server allows in one answer is a malformed answer


def _number(device_id: Any) -> int:
    if type(device_id) is not int or not 1 <= device_id <= MAX_DEVICE_ID:
        raise ClientError(f"a device number is a whole number from 1 to {MAX_DEVICE_ID}, not {device_id!r}")
    return device_id


def device_ids(value: Any, what: str) -> list[int]:
    """A server's list of device numbers, checked: distinct whole numbers in range, at most DEVICES_MAX."""
    if (
        not isinstance(value, list)
        or len(value) > DEVICES_MAX
        or not all(type(d) is int and 1 <= d <= MAX_DEVICE_ID for d in value)
        or len(set(value)) != len(value)
    ):
        raise ApiError(0, "invalid_answer", f"the server's {what} is malformed")
    return sorted(value)


class Devices:
    def __init__(self, http: HttpApi, account: Account, store: Store, events: Events, background: Background) -> None:
        self._http = http
        self._account = account
        self._store = store
        self._events = events
        self._background = background

    async def list(self) -> list[dict]:
        """The account's active devices, ascending number: ``{id, name, created_at, last_seen_at, current}``
        (``current``: this device). A pending sign-in may look too."""
        answer = await self._http.call("GET", "devices")
        devices = answer.get("devices") if isinstance(answer, dict) else None
        if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
            raise ClientError("the server's device list is malformed")
        return [{name: device.get(name) for name in FIELDS} for device in devices]

    async def rename(self, device_id: int, name: str) -> dict:
        """Renames a device of the account (the server allows 1 to 64 characters, no control characters);
        returns ``{id, name}``."""
        if not isinstance(name, str):
            raise ClientError("a device name is text")
        return await self._call("PATCH", _number(device_id), {"name": name})

    async def unlink(self, device_id: int) -> None:
        """Removes a device from the account: its keys are deleted on the server, it is signed out for good
        and every contact hears ``devices_changed``. This device too, which then raises DeviceRemoved."""
        number = _number(device_id)
        own = number == self._account.device_id
        await self._call("DELETE", number)
        if own:
            raise self._http.device_removed()

    async def _call(self, method: str, number: int, body: dict | None = None) -> Any:
        try:
            return await self._http.call(method, f"devices/{number}", body)
        except ApiError as error:
            if error.status == 404:  # another account's, a removed and an unknown number alike
                raise ApiError(404, error.code, f"this account has no device {number}") from error
            raise

    # -- server frames ------------------------------------------------------------------------------------

    async def on_devices_changed(self, frame: dict) -> bool:
        """In the background: the socket's frames keep flowing meanwhile (a send waiting for its ``sent``
        may hold the lock of that account's sessions)."""
        if not isinstance(frame.get("email"), str) or not frame["email"]:
            return False
        self._background.spawn(self._forget_removed_then_announce(frame))
        return True

    async def _forget_removed_then_announce(self, frame: dict) -> None:
        try:
            with contextlib.suppress(ClientError):
                await self.forget_removed(frame["email"])
        finally:
            self._events.emit_frame(frame)  # the CLI prints a quiet line

    async def forget_removed(self, email: str) -> list[int]:
        """Drops the sessions with devices of ``email`` that are no longer active; returns their numbers."""
        answer = await self._http.call("POST", "keys/devices", {"email": email})
        active = set(device_ids(answer.get("device_ids") if isinstance(answer, dict) else None, "device list"))
        async with self._account.peer_lock(email):
            gone = [d for d in self._store.session_devices(email) if d not in active]
            with self._store.transaction():
                for device in gone:
                    self._store.put_sessions(email, device, [])
        return gone
