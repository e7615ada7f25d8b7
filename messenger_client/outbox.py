"""Sending: encrypt for a contact, keep the envelope in the outbox, hand it to the server.

- Under the peer's lock, the new session state, the message and its envelope are stored in ONE
  local transaction before the envelope leaves: a crash never makes us encrypt twice from the same
  stored state, and the stored envelope is sent again as it is (same ``client_id``, which the
  server deduplicates) on the next connect (``resend_pending``).
- Over the socket when connected (``send`` answered by ``sent`` or an ``error`` naming the
  ``client_id``), else, or when the socket fails meanwhile, through POST messages/.
- Nothing is encrypted to a contact whose identity key changed and was not accepted (keys.py), and
  a bundle's key must match the trusted one (the server could substitute its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

from .account import Account
from .errors import ApiError, ClientError, IdentityChanged
from .http import HttpApi
from .protocol import Session
from .store import Store
from .transport import ChatSocket

SEND_TIMEOUT = 10.0


@dataclass(frozen=True)
class SentMessage:
    id: int
    client_id: str
    to: str


class Outbox:
    def __init__(self, store: Store, http: HttpApi, account: Account, socket: ChatSocket) -> None:
        self._store = store
        self._http = http
        self._account = account
        self._socket = socket
        self._pending: dict[str, asyncio.Future] = {}  # client_id -> the server's id, from `sent`

    async def send(self, peer: str, text: str) -> SentMessage:
        """Encrypts ``text`` for ``peer`` (X3DH first if there is no session) and sends it; returns the
        server's id. Over the socket when connected, else through POST messages/."""
        envelope = await self.encrypt(peer, text)
        server_id = await self.transmit(envelope)
        return SentMessage(server_id, envelope["client_id"], peer)

    async def encrypt(self, peer: str, text: str) -> dict:
        """Encrypts and stores (session, message, envelope) without sending: the envelope waits in the outbox."""
        keys = self._account.require()
        plaintext = text.encode()
        async with self._account.peer_lock(peer):
            known = self._store.get_identity(peer)
            if known and known["changed_to"]:
                raise IdentityChanged(peer)
            stored = self._store.get_sessions(peer)
            if stored:
                session = Session.from_json(stored[0])
                out = await session.encrypt(plaintext)
                sessions = [session.to_json(), *stored[1:]]
            else:
                bundle = await self._http.call("POST", "keys/bundle", {"email": peer})
                if self._store.note_identity(peer, str(bundle.get("identity_key"))) == "changed":
                    raise IdentityChanged(peer)
                session, out = await keys.initiate_session(bundle, plaintext)
                sessions = [session.to_json()]
            envelope = {"client_id": str(uuid.uuid4()), "to": peer, "kind": out.kind, "body": out.body}
            with self._store.transaction():
                self._account.require()  # erased meanwhile (this device unlinked): store nothing of it
                self._store.put_sessions(peer, sessions)
                self._store.add_message(
                    peer=peer, direction="out", status="pending", text=text, client_id=envelope["client_id"]
                )
                self._store.put_json(f"outbox:{envelope['client_id']}", envelope)
        return envelope

    async def transmit(self, envelope: dict) -> int:
        client_id = envelope["client_id"]
        server_id = None
        if self._socket.connected:
            future = asyncio.get_running_loop().create_future()
            self._pending[client_id] = future
            try:
                if await self._socket.send({"type": "send", **envelope}):
                    server_id = await asyncio.wait_for(asyncio.shield(future), SEND_TIMEOUT)
            except (TimeoutError, ConnectionError):
                server_id = None  # fall back to REST with the same client_id (idempotent)
            except ApiError:
                self._drop(client_id, failed=True)
                raise
            finally:
                self._pending.pop(client_id, None)
        if server_id is None:
            try:
                result = await self._http.call("POST", "messages/", envelope)
            except ApiError as error:
                if error.status:  # refused by the server (not a network failure): it will never be sent
                    self._drop(client_id, failed=True)
                raise
            server_id = int(result["id"])
        with self._store.transaction():
            self._store.mark_sent(client_id, server_id)
            self._store.put_secret(f"outbox:{client_id}", None)
        return server_id

    def _drop(self, client_id: str, *, failed: bool) -> None:
        with self._store.transaction():
            self._store.put_secret(f"outbox:{client_id}", None)
            if failed:
                self._store.mark_failed(client_id)

    async def resend_pending(self) -> int:
        """Sends envelopes that were stored but never confirmed (a crash or lost connection before ``sent``)."""
        count = 0
        for envelope in self._store.pending_outgoing():
            with contextlib.suppress(ApiError):
                await self.transmit(envelope)
                count += 1
        return count

    async def resend_quietly(self) -> None:
        """On every connect."""
        with contextlib.suppress(ClientError):
            await self.resend_pending()

    # -- server frames ------------------------------------------------------------------------------------

    async def on_sent(self, frame: dict) -> bool:
        future = self._pending.get(str(frame.get("client_id")))
        if future is not None and not future.done():
            future.set_result(int(frame["id"]))
        return True

    async def on_error(self, frame: dict) -> bool:
        """An error naming one of our sends: that send is refused (a rate limit, not a contact...)."""
        future = self._pending.get(str(frame["client_id"])) if frame.get("client_id") else None
        if future is None or future.done():
            return False
        future.set_exception(
            ApiError(0, str(frame.get("code")), str(frame.get("detail")), retry_after=frame.get("retry_after"))
        )
        return True

    def fail_pending(self) -> None:
        """The socket closed: sends waiting for `sent` fall back to REST."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("socket closed"))
