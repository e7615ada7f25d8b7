"""Sending: encrypt for every device of a contact and every other device of the account (fan-out,
docs/PROTOCOL.md section 17.1), keep the frame in the outbox, hand it to the server.

- The devices come from ``POST keys/devices`` (the contact's and our own, leaving out this one),
  kept in memory until a ``devices_changed`` about that account or a ``device_mismatch`` corrects
  them; a device without a session gets one from ``POST keys/bundles``. Each answer's identity key
  must be the trusted one (the server could substitute its own), and for our own devices OUR key.
- Under the contact's lock and the lock of our own email (always in that order), every advanced
  session, the message and the whole frame are stored in ONE local transaction before the frame
  leaves: a crash never makes us encrypt twice from the same stored state, and the stored frame is
  sent again as it is (same ``client_id``, which the server deduplicates) on the next connect
  (``resend_pending``).
- ``device_mismatch`` (a device was added or removed meanwhile): sessions with the ``extra``
  devices are dropped, the text is encrypted for the ``missing`` ones only, the ciphertexts of the
  others are reused (each already spent a message key of its stored session), the corrected frame
  is stored and sent again with the same ``client_id``. Three mismatches in a row: the message is
  failed. Any other refusal (``no_devices``, a rate limit, not a contact...) fails it too; a network
  failure leaves it pending.
- Over the socket when connected (``send`` answered by ``sent`` or an ``error`` naming the
  ``client_id``), else, or when the socket fails meanwhile, through POST messages/ with the same
  fields.
- Nothing is encrypted to a contact whose identity key changed and was not accepted (keys.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from .account import Account
from .devices import device_ids
from .errors import ApiError, ClientError, IdentityChanged, NotSetUp
from .http import HttpApi
from .protocol import ProtocolError, Session, b64encode
from .store import Store
from .transport import ChatSocket

SEND_TIMEOUT = 10.0
MISMATCHES_MAX = 3  # device_mismatch answers in a row before a message is given up (section 17.1)
UNREACHABLE = "server_unreachable"  # http.py's code for a request that never got an answer


@dataclass(frozen=True)
class SentMessage:
    id: int  # the message id (what receipts name)
    client_id: str
    to: str


class Outbox:
    def __init__(self, store: Store, http: HttpApi, account: Account, socket: ChatSocket) -> None:
        self._store = store
        self._http = http
        self._account = account
        self._socket = socket
        self._pending: dict[str, asyncio.Future] = {}  # client_id -> the message id, from `sent`
        self._device_lists: dict[str, list[int]] = {}  # lower-case email -> its active devices, as last known

    async def send(self, peer: str, text: str) -> SentMessage:
        """Encrypts ``text`` for every device of ``peer`` and our other devices (X3DH first where there is
        no session) and sends it; returns the message id. Over the socket when connected, else through
        POST messages/."""
        frame = await self.encrypt(peer, text)
        message_id = await self.transmit(frame)
        return SentMessage(message_id, frame["client_id"], peer)

    @contextlib.asynccontextmanager
    async def _locks(self, peer: str):
        """The contact's sessions and our own devices' sessions, always locked in this order."""
        async with self._account.peer_lock(peer), self._account.peer_lock(self.own_email()):
            yield

    def own_email(self) -> str:
        if self._account.email is None:
            raise NotSetUp("this state file holds no account: register or log in")
        return self._account.email

    async def encrypt(self, peer: str, text: str) -> dict:
        """Encrypts and stores (sessions, message, frame) without sending: the frame waits in the outbox."""
        self._account.require()
        own = self.own_email()
        if peer.lower() == own.lower():
            raise ClientError("a message goes to a contact, not to your own account")
        plaintext = text.encode()
        targets = await self._devices(peer)
        own_targets = [d for d in await self._devices(own) if d != self._account.device_id]
        if not targets:
            self._device_lists.pop(peer.lower(), None)  # asked again next time
            raise ApiError(409, "no_devices", f"{peer} has no device that could receive a message")
        async with self._locks(peer):
            known = self._store.get_identity(peer)
            if known and known["changed_to"]:  # noticed since the device list came
                raise IdentityChanged(peer)
            copies, sessions = await self.encrypt_for(peer, targets, plaintext)
            own_copies, own_sessions = await self.encrypt_for(own, own_targets, plaintext)
            frame = {"client_id": str(uuid.uuid4()), "to": peer, "copies": copies, "own": own_copies}
            with self._store.transaction():
                self._account.require()  # erased meanwhile (this device unlinked): store nothing of it
                for (email, device), stored in {**sessions, **own_sessions}.items():
                    self._store.put_sessions(email, device, stored)
                self._store.add_message(
                    peer=peer, direction="out", status="pending", text=text, client_id=frame["client_id"]
                )
                self._store.put_json(f"outbox:{frame['client_id']}", frame)
        return frame

    async def _devices(self, email: str) -> list[int]:
        """The account's active devices as last known, else from ``POST keys/devices`` with its identity
        key checked: a contact's against the trusted one (a change waits for acceptance), ours against ours."""
        known = self._device_lists.get(email.lower())
        if known is not None:
            return known
        answer = await self._http.call("POST", "keys/devices", {"email": email})
        if not isinstance(answer, dict):
            raise ApiError(0, "invalid_answer", "the server's device list is malformed")
        ids = device_ids(answer.get("device_ids"), "device list")
        await self._check_identity(email, answer.get("identity_key"))
        self._device_lists[email.lower()] = ids
        return ids

    async def on_devices_changed(self, frame: dict) -> bool:
        """That account's device list is asked again at the next send (devices.py drops the sessions)."""
        if isinstance(frame.get("email"), str):
            self._device_lists.pop(frame["email"].lower(), None)
        return False  # devices.py and the application hear it too

    async def _check_identity(self, email: str, identity_key: Any) -> None:
        async with self._account.peer_lock(email):
            self._note_identity(email, identity_key)

    def _note_identity(self, email: str, identity_key: Any) -> None:
        """Under ``email``'s lock."""
        if not isinstance(identity_key, str):
            raise ApiError(0, "invalid_answer", "the server's answer has no identity key")
        if email.lower() == self.own_email().lower():
            if identity_key != b64encode(self._account.identity_key):
                raise NotSetUp("another device holds this account's keys now (log in with --new-device)")
            return
        known = self._store.get_identity(email)
        if known and known["changed_to"]:
            raise IdentityChanged(email)
        if self._store.note_identity(email, identity_key) == "changed":
            raise IdentityChanged(email)

    async def encrypt_for(
        self, email: str, devices: list[int], plaintext: bytes
    ) -> tuple[list[dict], dict[tuple[str, int], list[dict]]]:
        """One copy per device of ``email``: with the stored session, else X3DH from a fresh bundle.
        Returns the copies and the sessions to store; the caller holds the locks. A device the bundles
        answer leaves out (removed meanwhile) gets no copy: the server's device_mismatch says so."""
        keys = self._account.require()
        copies: list[dict] = []
        sessions: dict[tuple[str, int], list[dict]] = {}
        without = []
        for device in devices:
            stored = self._store.get_sessions(email, device)
            if not stored:
                without.append(device)
                continue
            session = Session.from_json(stored[0])
            out = await session.encrypt(plaintext)
            sessions[(email, device)] = [session.to_json(), *stored[1:]]
            copies.append({"device": device, "kind": out.kind, "body": out.body})
        if without:
            answer = await self._http.call("POST", "keys/bundles", {"email": email, "device_ids": without})
            entries = answer.get("devices") if isinstance(answer, dict) else None
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ApiError(0, "invalid_answer", "the server's bundles are malformed")
            identity_key = answer.get("identity_key")
            self._note_identity(email, identity_key)
            for entry in entries:
                device = entry.get("device_id")
                if device not in without or (email, device) in sessions:
                    raise ApiError(0, "invalid_answer", "the server sent a bundle of a device it was not asked for")
                bundle = {
                    "identity_key": identity_key,
                    "signed_prekey": entry.get("signed_prekey"),
                    "one_time_prekey": entry.get("one_time_prekey"),
                }
                session, out = await keys.initiate_session(bundle, plaintext)
                sessions[(email, device)] = [session.to_json()]
                copies.append({"device": device, "kind": out.kind, "body": out.body})
        return _by_device(copies), sessions

    # -- transmitting -------------------------------------------------------------------------------------

    async def transmit(self, frame: dict) -> int:
        """Sends a stored frame until the server takes it (a device_mismatch is repaired and sent again);
        returns the message id. A refusal fails the message and raises; a network failure raises and
        leaves it pending."""
        client_id = frame["client_id"]
        mismatches = 0
        while True:
            try:
                message_id = await self._submit(frame)
                break
            except ApiError as error:
                if error.code == UNREACHABLE:
                    raise
                refusal = error
            if refusal.code == "device_mismatch":
                mismatches += 1
                if mismatches == MISMATCHES_MAX:
                    refusal = ApiError(
                        refusal.status,
                        refusal.code,
                        f"not sent: the devices changed {MISMATCHES_MAX} times in a row while sending",
                    )
                else:
                    try:
                        frame = await self._repair(frame, refusal.body)
                        continue
                    except ApiError as error:
                        if error.code == UNREACHABLE:
                            raise
                        refusal = error
                    except ProtocolError as bad_bundle:  # a new device's bundle did not verify
                        refusal = ApiError(0, str(bad_bundle.code), f"not sent: {bad_bundle}")
            self._drop(client_id, failed=True)
            raise refusal
        with self._store.transaction():
            self._store.mark_sent(client_id, message_id)
            self._store.put_secret(f"outbox:{client_id}", None)
        return message_id

    async def _submit(self, frame: dict) -> int:
        return await self.submit(frame, "send", "messages/")

    async def submit(self, frame: dict, frame_type: str, path: str) -> int:
        """One attempt: over the socket when connected (a ``frame_type`` frame), else (or when it fails
        meanwhile) over REST (POST ``path``); returns the message id, raises ApiError for a refusal."""
        client_id = frame["client_id"]
        if self._socket.connected:
            future = asyncio.get_running_loop().create_future()
            self._pending[client_id] = future
            try:
                if await self._socket.send({"type": frame_type, **frame}):
                    return await asyncio.wait_for(asyncio.shield(future), SEND_TIMEOUT)
            except (TimeoutError, ConnectionError):
                pass  # fall back to REST with the same client_id (idempotent)
            finally:
                self._pending.pop(client_id, None)
        result = await self._http.call("POST", path, frame)
        message_id = result.get("id") if isinstance(result, dict) else None
        if type(message_id) is not int or message_id < 1:
            raise ApiError(0, UNREACHABLE, "the server's answer to a send has no message id")
        return message_id

    async def _repair(self, frame: dict, answer: dict) -> dict:
        """The frame corrected after ``device_mismatch`` (see the module docstring), stored before it is
        sent again. A frame stored by a version-1 client ({kind, body}) was encrypted for device 1."""
        peer = str(frame["to"])
        own = self.own_email()
        missing = answer.get("missing") if isinstance(answer.get("missing"), dict) else {}
        extra = answer.get("extra") if isinstance(answer.get("extra"), dict) else {}
        missing_to = device_ids(missing.get("to", []), "device_mismatch answer")
        missing_own = device_ids(missing.get("own", []), "device_mismatch answer")
        extra_to = device_ids(extra.get("to", []), "device_mismatch answer")
        extra_own = device_ids(extra.get("own", []), "device_mismatch answer")
        if "copies" in frame:
            copies, own_copies = list(frame["copies"]), list(frame.get("own", []))
        else:
            copies, own_copies = [{"device": 1, "kind": frame["kind"], "body": frame["body"]}], []
        text = self._store.text_of(frame["client_id"])
        if text is None:
            raise ApiError(0, "device_mismatch", "not sent: the message's text is no longer stored")
        plaintext = text.encode()
        async with self._locks(peer):
            # A missing device already in the frame would be a server contradicting itself: it is
            # encrypted for again only if its copy is not there.
            have_to = {c["device"] for c in copies if c["device"] not in extra_to}
            have_own = {c["device"] for c in own_copies if c["device"] not in extra_own}
            added, sessions = await self.encrypt_for(peer, [d for d in missing_to if d not in have_to], plaintext)
            added_own, own_sessions = await self.encrypt_for(
                own, [d for d in missing_own if d not in have_own], plaintext
            )
            repaired = {
                "client_id": frame["client_id"],
                "to": peer,
                "copies": _by_device([c for c in copies if c["device"] in have_to] + added),
                "own": _by_device([c for c in own_copies if c["device"] in have_own] + added_own),
            }
            self._device_lists[peer.lower()] = sorted(have_to | set(missing_to))
            this = {self._account.device_id} if self._account.device_id else set()
            self._device_lists[own.lower()] = sorted(have_own | set(missing_own) | this)
            with self._store.transaction():
                self._account.require()
                for device in extra_to:
                    self._store.put_sessions(peer, device, [])  # removed devices: their sessions go
                for device in extra_own:
                    self._store.put_sessions(own, device, [])
                for (email, device), stored in {**sessions, **own_sessions}.items():
                    self._store.put_sessions(email, device, stored)
                self._store.put_json(f"outbox:{frame['client_id']}", repaired)
        return repaired

    def _drop(self, client_id: str, *, failed: bool) -> None:
        with self._store.transaction():
            self._store.put_secret(f"outbox:{client_id}", None)
            if failed:
                self._store.mark_failed(client_id)

    async def resend_pending(self) -> int:
        """Sends frames that were stored but never confirmed (a crash or lost connection before ``sent``)."""
        count = 0
        for frame in self._store.pending_outgoing():
            with contextlib.suppress(ApiError):
                await self.transmit(frame)
                count += 1
        return count

    async def resend_quietly(self) -> None:
        """On every connect."""
        with contextlib.suppress(ClientError):
            await self.resend_pending()

    # -- server frames ------------------------------------------------------------------------------------

    async def on_sent(self, frame: dict) -> bool:
        future = self._pending.get(str(frame.get("client_id")))
        message_id = frame.get("id")
        if future is not None and not future.done() and type(message_id) is int:
            future.set_result(message_id)
        return True

    async def on_error(self, frame: dict) -> bool:
        """An error naming one of our sends: that send is refused (devices changed, a rate limit...)."""
        future = self._pending.get(str(frame["client_id"])) if frame.get("client_id") else None
        if future is None or future.done():
            return False
        future.set_exception(
            ApiError(
                0, str(frame.get("code")), str(frame.get("detail")), retry_after=frame.get("retry_after"), body=frame
            )
        )
        return True

    def fail_pending(self) -> None:
        """The socket closed: sends waiting for `sent` fall back to REST."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("socket closed"))


def _by_device(copies: list[dict]) -> list[dict]:
    return sorted(copies, key=lambda copy: copy["device"])
