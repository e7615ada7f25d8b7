"""Receiving: decrypt an envelope, store its outcome, then acknowledge it; the live stream of
incoming messages (``Client.messages()``) and its REST fallback (``fetch``).

- Each device receives its own copy of a message (docs/PROTOCOL.md section 17.2): the session is
  the one with the sending device, ``(from, from_device)``; an initial message founds it.
- Under the sender's lock, the new session state and the message are stored in one transaction,
  and only then is the copy acknowledged (by its copy id): a crash before the ack means
  redelivery, and a redelivered copy (its copy id already stored) is only acknowledged again.
- A copy from our own account is one of our messages sent from another device: stored as sent in
  the conversation with its ``to``, with no receipt; its sessions must carry OUR identity key.
- An envelope that does not decrypt is stored as failed (``Message.text`` None) and the sessions
  are left as they were: later messages still decrypt.
- A one-time prekey's private key is deleted only when a session was established from it; the key
  upkeep then refills the server (keys.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from .account import MAX_DEVICE_ID, Account
from .errors import ClientError
from .events import Event, Events
from .http import HttpApi
from .keys import Keys
from .protocol import KIND_PREKEY, ErrorCode, ProtocolError, Session, b64encode, parse_envelope
from .receipts import Receipts
from .store import Store
from .transport import ChatSocket

ARCHIVED_SESSIONS = 3


@dataclass(frozen=True)
class Message:
    """An incoming message, stored before it was acknowledged. ``text`` is None when it did not decrypt.

    A copy of one of our own messages sent from another device of the account (``to`` set) is stored
    in the conversation with ``to`` as sent; it is announced as a ``sent_elsewhere`` event, not
    yielded by ``messages()``."""

    id: int
    sender: str
    text: str | None
    sent_at: str
    failure: str | None = None
    identity_changed: bool = False
    message_id: int | None = None  # what receipts name; ``id`` is this copy's (``mark_read`` sends it)
    to: str | None = None  # set on a message WE sent from another device of the account: its contact
    group: str | None = None  # the group's id, for a group message (groups.py)


class Inbox:
    def __init__(
        self,
        store: Store,
        http: HttpApi,
        account: Account,
        socket: ChatSocket,
        receipts: Receipts,
        keys: Keys,
        events: Events,
    ) -> None:
        self._store = store
        self._http = http
        self._account = account
        self._socket = socket
        self._receipts = receipts
        self._keys = keys
        self._events = events
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        # groups.py's reader of a `group_message` copy (the REST queue mixes them with 1:1 copies):
        # stores it and returns the Message to list, or None.
        self.group_reader: Callable[[dict], Awaitable[Message | None]] | None = None

    async def messages(self) -> AsyncIterator[Message]:
        """Incoming messages as they arrive (connects the socket if needed); stops when signed out."""
        if self._socket.task is None:
            self._account.require()
            await self._socket.connect(wait=False)
        while True:
            getter = asyncio.create_task(self._queue.get())
            done, _ = await asyncio.wait({getter, self._socket.task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            getter.cancel()
            self._socket.raise_why_stopped()
            return

    async def on_message(self, frame: dict) -> bool:
        try:
            message = await self.decrypt(frame)
        except InvalidFrame as error:  # no id to acknowledge it by, or no sender: nothing to store
            self._events.emit(Event("invalid_frame", {"detail": str(error)}))
            return True
        # Acknowledged only now that its outcome is stored (a crash before this means redelivery).
        await self._receipts.ack(int(frame["id"]))
        if message is None:
            return True
        if message.to is not None:
            self._events.emit(
                Event("sent_elsewhere", {"to": message.to, "id": message.message_id, "text": message.text})
            )
            return True
        await self._queue.put(message)
        if message.identity_changed:
            self._events.emit(Event("identity_changed", {"email": message.sender}))
        return True

    async def fetch(self) -> list[Message]:
        """REST fallback of the socket: downloads undelivered envelopes, stores them, then acknowledges them."""
        received: list[Message] = []
        after = 0
        while True:
            page = await self._http.call("GET", f"messages/?after={after}")
            frames = page.get("messages", [])
            ids = []
            for frame in frames:
                if frame.get("type") == "group_message" and self.group_reader is not None:
                    message = await self.group_reader(frame)
                else:
                    message = await self.decrypt(frame)
                ids.append(int(frame["id"]))
                after = max(after, int(frame["id"]))
                if message is not None and message.to is None:  # our own from elsewhere: in the history
                    received.append(message)
            if ids:
                await self._http.call("POST", "messages/ack", {"ids": ids})
            if not page.get("has_more") or not frames:
                break
        return received

    async def decrypt(self, frame: dict) -> Message | None:
        """Decrypts and stores one copy; None when it was already stored (a redelivery)."""
        self._account.require()
        copy = _copy_fields(frame, self._account.email)
        peer, device = copy.sender, copy.sender_device
        async with self._account.peer_lock(peer):
            if self._store.has_copy(copy.id):
                return None
            stored = self._store.get_sessions(peer, device)
            text = failure = None
            new_sessions = stored
            account_changed = False
            remote_identity = None
            try:
                if copy.problem:
                    raise ProtocolError(ErrorCode.INVALID_ARGUMENT, copy.problem)
                opened = await self.open_pairwise(stored, frame.get("kind"), frame.get("body"), outgoing=copy.outgoing)
                text = opened.plaintext.decode("utf-8", errors="replace")
                new_sessions, account_changed = opened.sessions, opened.account_changed
                remote_identity = opened.remote_identity
            except ProtocolError as error:
                failure = str(error.code)
            changed = False
            with self._store.transaction():
                self._account.require()  # erased meanwhile (this device unlinked): store nothing of it
                if failure is None:
                    self._store.put_sessions(peer, device, new_sessions)
                if account_changed:
                    self._account.save()
                self._store.add_message(
                    peer=copy.conversation,
                    direction="out" if copy.outgoing else "in",
                    status="failed" if failure else "sent" if copy.outgoing else "received",
                    text=text,
                    server_id=copy.message_id,
                    failure=failure,
                    copy_id=copy.id,
                )
                if remote_identity is not None and not copy.outgoing:
                    changed = self._store.note_identity(peer, remote_identity) == "changed"
        if account_changed:
            self.key_upkeep()
        return Message(
            id=copy.id,
            sender=peer,
            text=text,
            sent_at=str(frame.get("sent_at", "")),
            failure=failure,
            identity_changed=changed,
            message_id=copy.message_id,
            to=copy.conversation if copy.outgoing else None,
        )

    async def open_pairwise(self, stored: list[dict], kind: object, body: object, *, outgoing: bool) -> Opened:
        """Decrypts one pairwise envelope from a device whose stored sessions are ``stored`` (the
        caller holds that peer's lock): a session that matches, else, for an initial message, a new
        one founded with our keys (the account then changed: save it in the same transaction as the
        sessions). ``outgoing``: the sender is another device of our account. Raises ProtocolError
        and changes nothing when it does not decrypt."""
        keys = self._account.require()
        candidates = [Session.from_json(s) for s in stored]
        envelope = parse_envelope(kind, body)
        outcome = None
        account_changed = False
        if envelope.kind == KIND_PREKEY:
            index = next((i for i, s in enumerate(candidates) if s.is_initial_message_for_session(envelope)), None)
            if index is not None:
                outcome = (candidates[index], await candidates[index].decrypt(envelope), index)
            else:
                # Another device of this account holds OUR identity key: a session founded with
                # any other key is not one of ours (checked first: no one-time prekey spent on it).
                if outgoing and envelope.prekey.identity_key != keys.identity_key:
                    raise ProtocolError(ErrorCode.SESSION_MISMATCH, "not this account's identity key")
                async with self._account.lock:
                    accepted = await keys.accept_initial_message(envelope)
                account_changed = True
                outcome = (accepted.session, accepted.plaintext, None)
        else:
            last_error: ProtocolError | None = None
            for i, candidate in enumerate(candidates):
                try:
                    outcome = (candidate, await candidate.decrypt(envelope), i)
                    break
                except ProtocolError as error:
                    last_error = error
            if outcome is None:
                raise last_error or ProtocolError(ErrorCode.SESSION_MISMATCH, "no session with this device")
        session, plaintext, index = outcome
        rest = [s for i, s in enumerate(stored) if i != index]
        return Opened(
            plaintext=plaintext,
            sessions=[session.to_json(), *rest][: 1 + ARCHIVED_SESSIONS],
            account_changed=account_changed,
            remote_identity=b64encode(session.remote_identity_key),
        )

    async def deliver(self, message: Message) -> None:
        """A received message for ``messages()`` (groups.py hands its text messages here)."""
        await self._queue.put(message)

    def key_upkeep(self) -> None:
        """An initial message spent a one-time prekey: the server is refilled in the background."""
        self._keys.maintain_in_background()


@dataclass(frozen=True)
class Opened:
    """A pairwise envelope decrypted: its plaintext, the sessions to store for that device, whether the
    account (its one-time prekeys) changed, and the sender's identity key (base64)."""

    plaintext: bytes
    sessions: list[dict]
    account_changed: bool
    remote_identity: str


class InvalidFrame(ClientError):
    """A ``message`` frame without a valid copy id or sender (a server bug): it cannot be stored."""


@dataclass(frozen=True)
class _Copy:
    """The routing fields of a ``message`` frame (docs/PROTOCOL.md section 17.2), checked. ``problem``
    says why the copy cannot be read (it is then stored as failed and acknowledged)."""

    id: int
    message_id: int | None
    sender: str
    sender_device: int
    conversation: str  # the contact the conversation is with
    outgoing: bool  # one of our messages, sent from another device of the account
    problem: str | None


def _copy_fields(frame: dict, own_email: str | None) -> _Copy:
    copy_id = frame.get("id")
    if type(copy_id) is not int or copy_id < 1:
        raise InvalidFrame("the server sent a message without a valid id")
    sender = frame.get("from")
    if not isinstance(sender, str) or not sender:
        raise InvalidFrame("the server sent a message without a sender")
    problem = None
    message_id = frame.get("message_id", copy_id)  # absent: a server from before devices (one copy)
    if type(message_id) is not int or message_id < 1:
        message_id, problem = None, "the message id is malformed"
    device = frame.get("from_device", 1)  # absent: a server from before devices (the sender's device 1)
    if type(device) is not int or not 1 <= device <= MAX_DEVICE_ID:
        device, problem = 0, "the sender's device is malformed"
    outgoing = own_email is not None and sender.lower() == own_email.lower()
    conversation = sender
    if outgoing:
        to = frame.get("to")
        if isinstance(to, str) and to and to.lower() != own_email.lower():
            conversation = to
        else:
            problem = "a copy of our own message names no contact"
    return _Copy(copy_id, message_id, sender, device, conversation, outgoing, problem)
