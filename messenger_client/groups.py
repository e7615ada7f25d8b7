"""Groups (docs/PROTOCOL.md part III): membership over REST, messages with sender keys.

- A group as the server shows it (section 21) is kept in memory by id until a ``group_changed`` or
  ``group_epoch`` event, or a ``stale_epoch`` answer, says it changed; its name is not on the server:
  it travels as a settings message (type 0x02) that creating, renaming and adding a member send.
- Sending (sections 22 and 23): our sender key of the group is stored with the set of member devices
  it was handed to. If any of them is no longer a member device, a new key is made (a removed member
  keeps every key it got, and must not read what follows). Devices without the key get its
  distribution through their pairwise session (outbox.encrypt_for: bundles, identity checks); then
  the body is encrypted once. The advanced sender key, the sessions, the message and the frame are
  stored in ONE transaction before the frame leaves (a key is never used twice), under the group's
  lock and the locks of the members whose sessions advance (sorted, our own email last, as the
  outbox takes ours last: no lock cycle). The devices count as given the key once the server took
  the frame.
- ``stale_epoch``: the group is read again and the rule applied again; the stored body is reused
  with keys for devices that joined (the distribution stored with the frame, of the body's
  iteration, so they read this message too), or, when a device that got the key left, everything is
  encrypted again with a new key. Same ``client_id``; the third stale answer in a row fails it.
- Receiving a ``group_message``: the ``key`` (a pairwise envelope, inbox.open_pairwise) holds a
  distribution for the frame's group, which updates the record of (group, sender, device); then the
  body is decrypted with that record and the sender's identity key as the pairwise session knows it
  (ours for a copy from another device of our account, shown as sent). Everything is stored before
  the copy is acknowledged; a copy id already stored is only acknowledged again. A copy whose body
  does not decrypt is stored as failed and leaves the record as the distribution it carried (if
  any, and valid) made it.
- Changes (added, removed...) become notice lines of the group's history, read after the last
  change id seen on every connect and on every ``group_changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from .account import MAX_DEVICE_ID, Account
from .devices import device_ids
from .errors import ApiError, ClientError, GroupNameNotSent, IdentityChanged
from .events import Event, Events
from .http import HttpApi
from .inbox import Inbox, InvalidFrame, Message
from .outbox import UNREACHABLE, Outbox, SentMessage
from .protocol import (
    ErrorCode,
    ProtocolError,
    Session,
    b64decode,
    b64encode,
    create_sender_key,
    decode_group_plaintext,
    decrypt_group_message,
    encode_group_settings,
    encode_group_text,
    encrypt_group_message,
    parse_sender_key_distribution,
    received_sender_keys,
    sender_key_distribution,
)
from .receipts import Receipts
from .store import Store
from .transport import ChatSocket

STALE_MAX = 3  # stale_epoch answers in a row before a group message is given up (section 23)
RECEIPTS_MAX_IDS = 1000


@dataclass(frozen=True)
class Member:
    email: str
    role: str
    devices: tuple[int, ...]


@dataclass(frozen=True)
class Group:
    """A group as its member sees it (section 21), with the name the members sent (None: not known yet)."""

    id: str
    epoch: int
    role: str
    members: tuple[Member, ...]
    name: str | None = None

    def devices(self, own_email: str, own_device: int | None) -> set[tuple[str, int]]:
        """The member devices a message reaches: (lower-case email, device), this device left out."""
        return {
            (member.email.lower(), device)
            for member in self.members
            for device in member.devices
            if not (member.email.lower() == own_email.lower() and device == own_device)
        }

    def email_of(self, lower: str) -> str:
        return next((m.email for m in self.members if m.email.lower() == lower), lower)


class Groups:
    def __init__(
        self,
        store: Store,
        http: HttpApi,
        account: Account,
        socket: ChatSocket,
        outbox: Outbox,
        inbox: Inbox,
        receipts: Receipts,
        events: Events,
    ) -> None:
        self._store = store
        self._http = http
        self._account = account
        self._socket = socket
        self._outbox = outbox
        self._inbox = inbox
        self._receipts = receipts
        self._events = events
        self._groups: dict[str, Group] = {}  # group id -> as last read
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, group_id: str) -> asyncio.Lock:
        return self._locks.setdefault(group_id, asyncio.Lock())

    # -- membership ---------------------------------------------------------------------------------------

    async def list(self) -> list[Group]:
        """``GET groups/``: the groups we are a member of, oldest first, with their names."""
        answer = await self._http.call("GET", "groups/")
        groups = answer.get("groups") if isinstance(answer, dict) else None
        if not isinstance(groups, list):
            raise ApiError(0, "invalid_answer", "the server's group list is malformed")
        parsed = [self._parse(group) for group in groups]
        self._groups = {group.id: group for group in parsed}
        return parsed

    async def get(self, group_id: str) -> Group:
        """The group as last read, else read now; ``group_not_found`` when we are not a member."""
        group_id = _group_id(group_id)
        if group_id not in self._groups:
            await self.list()
        if group_id not in self._groups:
            raise ApiError(404, "group_not_found", "you are not a member of this group")
        return self._groups[group_id]

    async def find(self, group: str) -> Group:
        """A group by its id or by a name that only one group has."""
        groups = await self.list()
        matches = [g for g in groups if g.id == group.lower()] or [g for g in groups if g.name == group]
        if len(matches) != 1:
            why = "no group" if not matches else f"{len(matches)} groups"
            raise ClientError(f"{why} with the id or name {group!r} (give the group's id)")
        return matches[0]

    async def create(self, name: str, emails: list[str]) -> Group:
        """Creates the group with our contacts ``emails`` and sends them its name (see ``_send_name``)."""
        settings = _settings(name)
        group = self._remember(await self._http.call("POST", "groups/", {"members": list(emails)}))
        await self._send_name(group, name, settings, done="was created", shown=True)
        return dataclasses.replace(group, name=name)

    async def add_member(self, group_id: str, email: str) -> Group:
        """Adds a contact; then sends the name again, so that the new member learns it (see ``_send_name``)."""
        group = self._remember(
            await self._http.call("POST", "groups/members", {"group": _group_id(group_id), "email": email})
        )
        name = self.name_of(group.id)
        await self._send_name(
            group, name, _settings(name) if name is not None else None, done=f"has {email}", shown=False
        )
        return group

    async def _send_name(
        self, group: Group, name: str | None, settings: bytes | None, *, done: str, shown: bool
    ) -> None:
        """After the group was created or a member added (done on the server, whatever follows): its
        changes are read, and its name, if known, is sent (``shown``: as a line of our history; the
        name sent again for a new member is not, as section 22 says). A network failure once the name's frame is
        stored leaves it pending (``resend_pending`` sends it on the next connect): the caller gets the
        group. Any other failure raises ``GroupNameNotSent``, which says that the group is there and
        carries it, rather than the bare error, which would read as if the group were not made."""
        await self.catch_up(group.id)
        if name is None:
            return
        try:
            text = f'named the group "{name}"' if shown else None
            record = await self._encrypt(group.id, settings, client_id=str(uuid.uuid4()), text=text, name=name)
        except (ClientError, ProtocolError) as error:
            raise GroupNameNotSent(group, done, error) from error
        try:
            await self.transmit(record)
        except ApiError as error:
            if error.code != UNREACHABLE:
                raise GroupNameNotSent(group, done, error) from error

    async def remove_member(self, group_id: str, email: str) -> None:
        await self._http.call("POST", "groups/remove", {"group": _group_id(group_id), "email": email})
        self._groups.pop(_group_id(group_id), None)
        await self.catch_up(_group_id(group_id))

    async def leave(self, group_id: str) -> None:
        await self._http.call("POST", "groups/leave", {"group": _group_id(group_id)})
        self._groups.pop(_group_id(group_id), None)

    async def make_admin(self, group_id: str, email: str) -> Group:
        group = self._remember(
            await self._http.call("POST", "groups/admins", {"group": _group_id(group_id), "email": email})
        )
        await self.catch_up(group.id)
        return group

    async def rename(self, group_id: str, name: str) -> None:
        """Sends the group's new name to its members (names are not on the server)."""
        await self._send(_group_id(group_id), _settings(name), f'named the group "{name}"', name=name)

    def name_of(self, group_id: str) -> str | None:
        stored = self._store.get_json(f"group:{group_id}")
        return stored.get("name") if isinstance(stored, dict) else None

    def _set_name(self, group_id: str, name: str, named: set[tuple[str, int]]) -> None:
        """Inside a transaction. ``named``: the member devices known to hold this name (section 22,
        "The group's name on new devices")."""
        self._store.put_json(f"group:{group_id}", {"name": name, "named": sorted(named)})

    def _named(self, group_id: str) -> set[tuple[str, int]]:
        stored = self._store.get_json(f"group:{group_id}")
        return _pairs(stored.get("named", [])) if isinstance(stored, dict) else set()

    async def _announce_name(self, group_id: str) -> None:
        """Before a message: the group's name goes again, alone, when member devices joined since it was
        last sent or received (a new member's device, a linked or set-up-again device), so that they do
        not show the group unnamed. Nothing is added to our history."""
        name = self.name_of(group_id)
        if name is None:
            return
        group = await self.get(group_id)
        if group.devices(self._outbox.own_email(), self._account.device_id) <= self._named(group_id):
            return
        client_id = str(uuid.uuid4())
        await self.transmit(await self._encrypt(group_id, _settings(name), client_id=client_id, text=None, name=name))

    def _remember(self, answer: Any) -> Group:
        group = self._parse(answer)
        self._groups[group.id] = group
        return group

    def _parse(self, data: Any) -> Group:
        if not isinstance(data, dict) or not isinstance(data.get("members"), list):
            raise ApiError(0, "invalid_answer", "the server's group is malformed")
        epoch = data.get("epoch")
        if type(epoch) is not int or epoch < 1:
            raise ApiError(0, "invalid_answer", "the server's group has no valid epoch")
        members = []
        for member in data["members"]:
            if not isinstance(member, dict) or not isinstance(member.get("email"), str) or not member["email"]:
                raise ApiError(0, "invalid_answer", "the server's group has a malformed member")
            devices = tuple(device_ids(member.get("devices", []), "group member"))
            members.append(Member(member["email"], str(member.get("role", "member")), devices))
        group_id = _group_id(data.get("id"), invalid_answer=True)
        return Group(group_id, epoch, str(data.get("role", "member")), tuple(members), self.name_of(group_id))

    # -- changes ------------------------------------------------------------------------------------------

    async def changes(self, group_id: str) -> list[dict]:
        """The group's changes (oldest first, at most 500); those not seen yet become history lines."""
        group_id = _group_id(group_id)
        answer = await self._http.call("POST", "groups/changes", {"group": group_id, "after": 0})
        changes = answer.get("changes") if isinstance(answer, dict) else None
        if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
            raise ApiError(0, "invalid_answer", "the server's group changes are malformed")
        async with self._lock(group_id):
            last = int(self._store.get_meta(f"group_change:{group_id}") or 0)
            with self._store.transaction():
                for change in changes:
                    number = change.get("id")
                    if type(number) is not int or number <= last:
                        continue
                    self._notice(group_id, change.get("actor"), _describe(change))
                    last = number
                self._store.set_meta(f"group_change:{group_id}", str(last))
        return changes

    async def catch_up(self, group_id: str) -> None:
        with contextlib.suppress(ApiError):
            await self.changes(group_id)

    def _notice(self, group_id: str, actor: Any, text: str, *, copy_id: int | None = None) -> None:
        """A line of the group's history (inside a transaction)."""
        self._store.add_message(
            peer=actor if isinstance(actor, str) else "",
            direction="in",
            status="read",
            text=text,
            group=group_id,
            notice=True,
            copy_id=copy_id,
        )

    async def on_group_changed(self, frame: dict) -> bool:
        """The group is read again when next needed; its changes become history lines (a member who was
        removed or left can no longer read them: the event's own line is stored)."""
        try:
            group_id = _group_id(frame.get("group"))
        except ClientError:
            return False
        self._groups.pop(group_id, None)
        try:
            await self.changes(group_id)
        except ApiError as error:
            # Any other failure (the server unreachable meanwhile): read again on the next connect.
            if error.code == "group_not_found":
                with self._store.transaction():
                    self._notice(group_id, frame.get("actor"), _describe(frame))
        return False  # also an event

    async def on_group_epoch(self, frame: dict) -> bool:
        """A member's device was linked or unlinked: read the group again before the next send."""
        if isinstance(frame.get("group"), str):
            self._groups.pop(frame["group"].lower(), None)
        return False

    # -- sending ------------------------------------------------------------------------------------------

    async def send(self, group_id: str, text: str) -> SentMessage:
        """Encrypts ``text`` once with our sender key of the group (handing the key to member devices that
        lack it) and sends it; returns the message id."""
        try:
            plaintext = encode_group_text(text)
        except ProtocolError as error:
            raise ClientError(str(error)) from error
        group_id = _group_id(group_id)
        # A name that could not go now goes before a later message; the text is sent (or kept) anyway.
        with contextlib.suppress(ApiError, IdentityChanged):
            await self._announce_name(group_id)
        return await self._send(group_id, plaintext, text)

    async def typing(self, group_id: str, state: str) -> bool:
        """Tells the other members' open sockets that we are typing (``start``) or stopped (``stop``)
        (section 23's "Typing"): only over the open socket, never stored; False when none is open."""
        if state not in ("start", "stop"):
            raise ClientError("the typing state is start or stop")
        return await self._socket.send({"type": "typing", "group": _group_id(group_id), "state": state})

    async def _send(self, group_id: str, plaintext: bytes, text: str, *, name: str | None = None) -> SentMessage:
        """Sends a text, or with ``name`` the group's settings (stored here as a notice line, and as the
        group's name)."""
        client_id = str(uuid.uuid4())
        record = await self._encrypt(group_id, plaintext, client_id=client_id, text=text, name=name)
        message_id = await self.transmit(record)
        return SentMessage(message_id, client_id, group_id)

    async def _encrypt(
        self, group_id: str, plaintext: bytes, *, client_id: str, text: str | None, name: str | None = None
    ) -> dict:
        """Encrypts with the sender key the rule of section 22 gives, stores everything (the message too,
        when ``text`` is given) and returns the outbox record ``{frame, distribution, plaintext}``."""
        keys = self._account.require()
        own = self._outbox.own_email()
        group = await self.get(group_id)
        targets = group.devices(own, self._account.device_id)
        self._check_identities(group, own)
        async with self._lock(group_id):
            stored = self._store.get_json(f"senderkey:{group_id}")
            state, given = (stored["key"], _pairs(stored["given"])) if stored else (None, set())
            if state is None or not given <= targets:
                state, given = create_sender_key(), set()
            distribution = sender_key_distribution(state, group_id)
            needs = sorted(targets - given)
            async with self._member_locks(needs, own):
                entries, sessions = await self._distribute(group, needs, distribution)
                new_state, body = await encrypt_group_message(
                    state,
                    group_id=group_id,
                    sender_identity_key=keys.identity_key,
                    sender_device=self._account.device_id,
                    plaintext=plaintext,
                )
                frame = {"client_id": client_id, "group": group_id, "epoch": group.epoch, "body": body, "keys": entries}
                record = {"frame": frame, "distribution": b64encode(distribution), "plaintext": b64encode(plaintext)}
                with self._store.transaction():
                    self._account.require()  # erased meanwhile (this device unlinked): store nothing of it
                    for (email, device), session_list in sessions.items():
                        self._store.put_sessions(email, device, session_list)
                    self._store.put_json(f"senderkey:{group_id}", {"key": new_state, "given": sorted(given)})
                    if text is not None:
                        self._store.add_message(
                            peer=own,
                            direction="out",
                            status="pending",
                            text=f"{own} {text}" if name is not None else text,
                            client_id=client_id,
                            group=group_id,
                            notice=name is not None,
                        )
                    if name is not None:
                        self._set_name(group_id, name, targets)
                    self._store.put_json(f"group_outbox:{client_id}", record)
        return record

    def _check_identities(self, group: Group, own: str) -> None:
        """Nothing goes to a group with a member whose identity key changed and was not accepted."""
        for member in group.members:
            if member.email.lower() == own.lower():
                continue
            known = self._store.get_identity(member.email)
            if known and known["changed_to"]:
                raise IdentityChanged(member.email)

    @contextlib.asynccontextmanager
    async def _member_locks(self, needs: list[tuple[str, int]], own: str):
        """The locks of the members whose sessions advance: sorted, our own last (outbox.py's order)."""
        emails = sorted({email for email, _ in needs if email != own.lower()})
        if any(email == own.lower() for email, _ in needs):
            emails.append(own.lower())
        async with contextlib.AsyncExitStack() as stack:
            for email in emails:
                await stack.enter_async_context(self._account.peer_lock(email))
            yield

    async def _distribute(
        self, group: Group, needs: list[tuple[str, int]], distribution: bytes
    ) -> tuple[list[dict], dict[tuple[str, int], list[dict]]]:
        """The ``keys`` entries handing ``distribution`` to each device of ``needs``, and the sessions to
        store (the caller holds the members' locks)."""
        by_email: dict[str, list[int]] = {}
        for email, device in needs:
            by_email.setdefault(email, []).append(device)
        entries: list[dict] = []
        sessions: dict[tuple[str, int], list[dict]] = {}
        for lower, devices in by_email.items():
            email = group.email_of(lower)
            copies, advanced = await self._outbox.encrypt_for(email, devices, distribution)
            entries += [{"email": email, **copy} for copy in copies]
            sessions.update(advanced)
        return sorted(entries, key=lambda e: (e["email"].lower(), e["device"])), sessions

    async def transmit(self, record: dict) -> int:
        """Sends a stored group frame until the server takes it (``stale_epoch`` is repaired and sent
        again); returns the message id. A refusal fails the message and raises; a network failure
        raises and leaves it pending."""
        frame = record["frame"]
        client_id, group_id = frame["client_id"], frame["group"]
        stale = 0
        while True:
            try:
                message_id = await self._outbox.submit(frame, "group_send", "groups/messages")
                break
            except ApiError as error:
                if error.code == UNREACHABLE:
                    raise
                refusal = error
            if refusal.code == "stale_epoch":
                stale += 1
                self._groups.pop(group_id, None)
                if stale < STALE_MAX:
                    try:
                        record = await self._repair(record)
                        frame = record["frame"]
                        continue
                    except ApiError as error:
                        if error.code == UNREACHABLE:
                            raise
                        refusal = error
                    except ProtocolError as bad_bundle:
                        refusal = ApiError(0, str(bad_bundle.code), f"not sent: {bad_bundle}")
                else:
                    refusal = ApiError(
                        refusal.status, refusal.code, f"not sent: the group changed {STALE_MAX} times in a row"
                    )
            if refusal.code == "group_not_found":
                self._groups.pop(group_id, None)
            with self._store.transaction():
                self._store.put_secret(f"group_outbox:{client_id}", None)
                self._store.mark_failed(client_id)
            raise refusal
        async with self._lock(group_id):
            with self._store.transaction():
                self._store.mark_sent(client_id, message_id)
                self._store.put_secret(f"group_outbox:{client_id}", None)
                stored = self._store.get_json(f"senderkey:{group_id}")
                if stored and stored["key"]["keyId"] == _key_id(frame["body"]):
                    # The devices of `keys` hold this key now.
                    given = _pairs(stored["given"]) | {(k["email"].lower(), k["device"]) for k in frame["keys"]}
                    self._store.put_json(f"senderkey:{group_id}", {"key": stored["key"], "given": sorted(given)})
        return message_id

    async def _repair(self, record: dict) -> dict:
        """After ``stale_epoch``: section 22's rule applied to the group as it is now. The frame's ``keys``
        never reached anyone (the server stored nothing): only the devices given the key before count."""
        frame = record["frame"]
        group_id, client_id = frame["group"], frame["client_id"]
        own = self._outbox.own_email()
        group = await self.get(group_id)
        targets = group.devices(own, self._account.device_id)
        self._check_identities(group, own)
        async with self._lock(group_id):
            stored = self._store.get_json(f"senderkey:{group_id}")
            given = _pairs(stored["given"]) if stored else set()
            reusable = stored is not None and given <= targets and stored["key"]["keyId"] == _key_id(frame["body"])
        if not reusable:  # encrypted again, with a new key if a device that has the key left
            return await self._encrypt(group_id, b64decode(record["plaintext"]), client_id=client_id, text=None)
        async with self._lock(group_id):
            kept = [k for k in frame["keys"] if (k["email"].lower(), k["device"]) in targets]
            needs = sorted(targets - given - {(k["email"].lower(), k["device"]) for k in kept})
            async with self._member_locks(needs, own):
                added, sessions = await self._distribute(group, needs, b64decode(record["distribution"]))
                keys = sorted(kept + added, key=lambda e: (e["email"].lower(), e["device"]))
                repaired = {**record, "frame": {**frame, "epoch": group.epoch, "keys": keys}}
                with self._store.transaction():
                    self._account.require()
                    for (email, device), session_list in sessions.items():
                        self._store.put_sessions(email, device, session_list)
                    self._store.put_json(f"group_outbox:{client_id}", repaired)
        return repaired

    async def resend_pending(self) -> int:
        """On every connect: group frames stored but never confirmed; returns how many went out."""
        count = 0
        for record in self._store.pending_outgoing("group_outbox"):
            with contextlib.suppress(ClientError):
                await self.transmit(record)
                count += 1
        return count

    # -- receiving ----------------------------------------------------------------------------------------

    async def on_group_message(self, frame: dict) -> bool:
        try:
            message = await self.read(frame)
        except InvalidFrame as error:
            self._events.emit(Event("invalid_frame", {"detail": str(error)}))
            return True
        await self._receipts.ack(int(frame["id"]))  # only now that its outcome is stored
        if message is None:
            return True
        if message.to is not None:
            self._events.emit(
                Event("sent_elsewhere", {"group": message.group, "id": message.message_id, "text": message.text})
            )
            return True
        await self._inbox.deliver(message)
        if message.identity_changed:
            self._events.emit(Event("identity_changed", {"email": message.sender}))
        return True

    async def read(self, frame: dict) -> Message | None:
        """Decrypts and stores one group copy; None when it was stored already or is not a message (the
        group's settings: its name, announced as a ``group_renamed`` event)."""
        keys = self._account.require()
        own = self._outbox.own_email()
        copy_id = frame.get("id")
        if type(copy_id) is not int or copy_id < 1:
            raise InvalidFrame("the server sent a group message without a valid id")
        sender = frame.get("from")
        if not isinstance(sender, str) or not sender:
            raise InvalidFrame("the server sent a group message without a sender")
        outgoing = sender.lower() == own.lower()
        message_id = frame.get("message_id")
        device = frame.get("from_device")
        group_id = frame.get("group")
        problem = None
        if type(message_id) is not int or message_id < 1:
            message_id, problem = None, "the message id is malformed"
        if type(device) is not int or not 1 <= device <= MAX_DEVICE_ID:
            device, problem = 0, "the sender's device is malformed"
        try:
            group_id = _group_id(group_id)
        except ClientError:
            group_id, problem = None, "the group id is malformed"
        async with self._account.peer_lock(sender):
            if self._store.has_copy(copy_id):
                return None
            sessions = content = None
            record_name = f"senderkeys:{group_id}:{sender.lower()}:{device}"
            record_to_store = None  # after the distribution, then after the body
            account_changed = changed = False
            remote_identity = failure = None
            try:
                if problem:
                    raise ProtocolError(ErrorCode.INVALID_ARGUMENT, problem)
                stored_sessions = self._store.get_sessions(sender, device)
                record = self._store.get_json(record_name)
                key = frame.get("key")
                if key is not None:
                    if not isinstance(key, dict):
                        raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "the sender key entry is malformed")
                    opened = await self._inbox.open_pairwise(
                        stored_sessions, key.get("kind"), key.get("body"), outgoing=outgoing
                    )
                    sessions, stored_sessions = opened.sessions, opened.sessions
                    account_changed, remote_identity = opened.account_changed, opened.remote_identity
                    record = received_sender_keys(record, parse_sender_key_distribution(opened.plaintext, group_id))
                    record_to_store = record
                identity = self._sender_identity(sender, stored_sessions, outgoing, keys.identity_key)
                new_record, plaintext = await decrypt_group_message(
                    record,
                    group_id=group_id,
                    sender_identity_key=identity,
                    sender_device=device,
                    body=frame.get("body"),
                )
                content = decode_group_plaintext(plaintext)
                record_to_store = new_record
            except ProtocolError as error:
                failure = str(error.code)
            with self._store.transaction():
                self._account.require()  # erased meanwhile (this device unlinked): store nothing of it
                if sessions is not None:
                    # The pairwise envelope was authentic and is spent, whatever it carried.
                    self._store.put_sessions(sender, device, sessions)
                if account_changed:
                    self._account.save()
                if record_to_store is not None:
                    self._store.put_json(record_name, record_to_store)
                if remote_identity is not None and not outgoing:
                    changed = self._store.note_identity(sender, remote_identity) == "changed"
                renamed = content is not None and content.type == "settings" and content.name != self.name_of(group_id)
                if renamed:
                    # Sent to every member device of the time: those hold it now.
                    known = self._groups.get(group_id)
                    named = known.devices(own, self._account.device_id) if known else set()
                    self._set_name(group_id, content.name, named)
                    self._notice(group_id, sender, f'{sender} named the group "{content.name}"', copy_id=copy_id)
                elif content is not None and content.type == "settings":
                    self._notice(group_id, sender, None, copy_id=copy_id)  # the same name again: not shown
                elif content is not None and content.type == "unknown":
                    self._notice(group_id, sender, None, copy_id=copy_id)  # acknowledged, not shown
                else:
                    self._store.add_message(
                        peer=sender,
                        direction="out" if outgoing else "in",
                        status="failed" if failure else "sent" if outgoing else "received",
                        text=content.text if content is not None else None,
                        server_id=message_id,
                        failure=failure,
                        copy_id=copy_id,
                        group=group_id,
                    )
        if account_changed:
            self._inbox.key_upkeep()
        if content is not None and content.type == "settings":
            if not renamed:
                return None
            if group_id in self._groups:
                self._groups[group_id] = dataclasses.replace(self._groups[group_id], name=content.name)
            self._events.emit(Event("group_renamed", {"group": group_id, "name": content.name, "by": sender}))
            return None
        if content is not None and content.type == "unknown":
            return None
        return Message(
            id=copy_id,
            sender=sender,
            text=content.text if content is not None else None,
            sent_at=str(frame.get("sent_at", "")),
            failure=failure,
            identity_changed=changed,
            message_id=message_id,
            to=group_id if outgoing else None,
            group=group_id,
        )

    def _sender_identity(self, sender: str, sessions: list[dict], outgoing: bool, own_key: bytes) -> bytes:
        """The identity key the sender's messages are bound to: ours for our other devices, else the one
        our pairwise session with that device was made with (it carried the distribution)."""
        if outgoing:
            return own_key
        if sessions:
            return Session.from_json(sessions[0]).remote_identity_key
        known = self._store.get_identity(sender)
        if known is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SENDER_KEY, "no sender key of this device")
        return b64decode(known["identity_key"])

    # -- receipts -----------------------------------------------------------------------------------------

    async def on_group_receipts(self, frame: dict) -> bool:
        """``{receipts: [{id, delivered, read, of}]}``: the counts of our sent group messages."""
        receipts = frame.get("receipts")
        if isinstance(receipts, list):
            with self._store.transaction():
                for receipt in receipts:
                    if isinstance(receipt, dict) and all(
                        type(receipt.get(k)) is int and receipt[k] >= 0 for k in ("id", "delivered", "read", "of")
                    ):
                        self._store.set_group_receipts(
                            receipt["id"], receipt["delivered"], receipt["read"], receipt["of"]
                        )
        return False  # also an event

    async def ask_receipts(self) -> None:
        """On every connect: where our group messages not read by everyone stand (pushes are sparse)."""
        ids = self._store.awaiting_group_receipts(RECEIPTS_MAX_IDS)
        if ids:
            await self._socket.send({"type": "group_receipts", "ids": ids})

    async def sync_receipts(self) -> None:
        """The same question over REST."""
        ids = self._store.awaiting_group_receipts(RECEIPTS_MAX_IDS)
        if ids:
            await self.on_group_receipts(await self._http.call("POST", "groups/receipts", {"ids": ids}))

    async def on_connect(self) -> None:
        """Resend what waits, catch up with the changes missed while offline, ask for receipts."""
        with contextlib.suppress(ClientError):
            await self.resend_pending()
            for group in await self.list():
                await self.catch_up(group.id)
            await self.ask_receipts()


def _group_id(value: Any, *, invalid_answer: bool = False) -> str:
    """A group id in its lower-case text form (the server's, section 21)."""
    try:
        if isinstance(value, str) and len(value) == 36:
            return str(uuid.UUID(value))
    except ValueError:
        pass
    if invalid_answer:
        raise ApiError(0, "invalid_answer", "the server's group has no valid id")
    raise ClientError(f"not a group id: {value!r}")


def _settings(name: str) -> bytes:
    try:
        return encode_group_settings(name=name)
    except ProtocolError as error:
        raise ClientError(str(error)) from error


def _pairs(value: list) -> set[tuple[str, int]]:
    return {(str(email), int(device)) for email, device in value}


def _key_id(body: str) -> int:
    """The key id a body of ours was encrypted with (its header's bytes 1-4)."""
    return int.from_bytes(b64decode(body)[1:5], "big")


def _describe(change: dict) -> str:
    """A change (or a group_changed event) as a line of the group's history."""
    actor = change.get("actor") if isinstance(change.get("actor"), str) else "the server"
    members = change.get("members") if isinstance(change.get("members"), list) else []
    who = ", ".join(str(m) for m in members)
    return {
        "created": f"{actor} created the group with {who}",
        "added": f"{actor} added {who}",
        "removed": f"{actor} removed {who}",
        "left": f"{who} left",
        "admin": f"{actor} made {who} admin",
        "deleted": "the group was deleted",
    }.get(str(change.get("change")), f"{actor}: {change.get('change')} {who}")
