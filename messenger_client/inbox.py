"""Receiving: decrypt an envelope, store its outcome, then acknowledge it; the live stream of
incoming messages (``Client.messages()``) and its REST fallback (``fetch``).

- Under the peer's lock, the new session state and the message are stored in one transaction, and
  only then is the envelope acknowledged: a crash before the ack means redelivery, and a
  redelivered envelope (its server id already stored) is only acknowledged again.
- An envelope that does not decrypt is stored as failed (``Message.text`` None) and the sessions
  are left as they were: later messages still decrypt.
- A one-time prekey's private key is deleted only when a session was established from it; the key
  upkeep then refills the server (keys.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .account import Account
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
    """An incoming message, stored before it was acknowledged. ``text`` is None when it did not decrypt."""

    id: int
    sender: str
    text: str | None
    sent_at: str
    failure: str | None = None
    identity_changed: bool = False


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
        message = await self.decrypt(frame)
        # Acknowledged only now that its outcome is stored (a crash before this means redelivery).
        await self._receipts.ack(int(frame["id"]))
        if message is not None:
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
                message = await self.decrypt(frame)
                ids.append(int(frame["id"]))
                after = max(after, int(frame["id"]))
                if message is not None:
                    received.append(message)
            if ids:
                await self._http.call("POST", "messages/ack", {"ids": ids})
            if not page.get("has_more") or not frames:
                break
        return received

    async def decrypt(self, frame: dict) -> Message | None:
        """Decrypts and stores one envelope; None when it was already stored (a redelivery)."""
        keys = self._account.require()
        peer = str(frame["from"])
        server_id = int(frame["id"])
        async with self._account.peer_lock(peer):
            if self._store.has_incoming(server_id):
                return None
            stored = self._store.get_sessions(peer)
            text = failure = None
            new_sessions = stored
            account_changed = False
            remote_identity = None
            try:
                candidates = [Session.from_json(s) for s in stored]
                envelope = parse_envelope(frame.get("kind"), frame.get("body"))
                outcome = None
                if envelope.kind == KIND_PREKEY:
                    index = next(
                        (i for i, s in enumerate(candidates) if s.is_initial_message_for_session(envelope)), None
                    )
                    if index is not None:
                        outcome = (candidates[index], await candidates[index].decrypt(envelope), index)
                    else:
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
                        raise last_error or ProtocolError(ErrorCode.SESSION_MISMATCH, "no session with this contact")
                session, plaintext, index = outcome
                text = plaintext.decode("utf-8", errors="replace")
                remote_identity = b64encode(session.remote_identity_key)
                rest = [s for i, s in enumerate(stored) if i != index]
                new_sessions = [session.to_json(), *rest][: 1 + ARCHIVED_SESSIONS]
            except ProtocolError as error:
                failure = str(error.code)
            with self._store.transaction():
                self._account.require()  # erased meanwhile (this device unlinked): store nothing of it
                if failure is None:
                    self._store.put_sessions(peer, new_sessions)
                if account_changed:
                    self._account.save()
                self._store.add_message(
                    peer=peer,
                    direction="in",
                    status="failed" if failure else "received",
                    text=text,
                    server_id=server_id,
                    failure=failure,
                )
                changed = remote_identity is not None and self._store.note_identity(peer, remote_identity) == "changed"
        if account_changed:
            self._keys.maintain_in_background()
        return Message(
            id=server_id,
            sender=peer,
            text=text,
            sent_at=str(frame.get("sent_at", "")),
            failure=failure,
            identity_changed=changed,
        )
