"""The asynchronous client: an account on one server, its keys and sessions in a local state file.

Rules kept here, as in the browser client (static/js/session.js, docs/PROTOCOL.md section 7):
- All work on one peer's sessions runs under that peer's lock; the new session state and the message it
  produced are stored in ONE local transaction before the envelope leaves (never encrypt twice from the
  same stored state), and an incoming envelope is acknowledged only after its outcome is stored.
- A one-time prekey's private key is deleted only when a session was established from it.
- The first identity key seen for a contact is trusted; a different one later is a pending change and
  nothing is encrypted to that contact until it is accepted (``accept_identity``).
- Nothing here logs message texts or keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .errors import ApiError, ClientError, IdentityChanged, NotSetUp, NotSignedIn, TooManyConnections
from .http import HttpApi
from .protocol import (
    KIND_PREKEY,
    ErrorCode,
    ProtocolAccount,
    ProtocolError,
    Session,
    b64decode,
    b64encode,
    format_safety_number,
    parse_envelope,
    safety_number,
)
from .store import Store, StoredMessage

ONE_TIME_PREKEY_BATCH = 100
ONE_TIME_PREKEY_MIN = 25
SIGNED_PREKEY_ROTATE_SECONDS = 7 * 24 * 3600
ARCHIVED_SESSIONS = 3
SEND_TIMEOUT = 10.0
# Close codes of the chat socket (see docs/ARCHITECTURE.md).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SESSION_REVOKED = 4403
CLOSE_TOO_MANY_SOCKETS = 4429
# After 4429 an established client waits this long (plus up to as much again) before trying again.
TOO_MANY_SOCKETS_RETRY = 60.0
RECEIPTS_MAX_IDS = 1000  # the server answers about this many envelopes per question
# An `ack`/`read` the server could not apply is sent again after a backoff from the first to the
# most (seconds, with jitter; a failure after a quiet spell of the most starts again).
RECEIPT_RETRY_FIRST = 0.25
RECEIPT_RETRY_MAX = 30.0
MAX_IDS_PER_FRAME = 1000  # as the server accepts


@dataclass(frozen=True)
class Message:
    """An incoming message, stored before it was acknowledged. ``text`` is None when it did not decrypt."""

    id: int
    sender: str
    text: str | None
    sent_at: str
    failure: str | None = None
    identity_changed: bool = False


@dataclass(frozen=True)
class SentMessage:
    id: int
    client_id: str
    to: str


@dataclass(frozen=True)
class Event:
    """Any other server frame: contact requests and answers, receipts, identity changes, typing..."""

    type: str
    data: dict = field(default_factory=dict)


class Client:
    def __init__(self, server: str | None, store: Store, *, on_event: Callable[[Event], Any] | None = None) -> None:
        self.store = store
        server = server or store.get_meta("server")
        if not server:
            raise ClientError("no server given (--server URL) and none stored in the state file")
        self.http = HttpApi(server)
        self.server = self.http.server
        if store.get_meta("server") not in (None, self.server):
            raise ClientError(f"this state file belongs to {store.get_meta('server')}, not {self.server}")
        self.http.import_cookies(store.get_json("cookies"))
        self.http.load_stored_cookies = lambda: self.store.get_json("cookies")
        self.http.store_cookies = self._save_cookies
        self.on_event = on_event
        self._email = store.get_meta("email")
        self._account: ProtocolAccount | None = None
        account_json = store.get_json("account")
        if account_json is not None:
            self._account = ProtocolAccount.from_json(account_json)
        self._peer_locks: dict[str, asyncio.Lock] = {}
        self._account_lock = asyncio.Lock()
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        # Bounded: a bot that never reads events() must not grow without limit (oldest dropped).
        self._events: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
        self._socket_task: asyncio.Task | None = None
        self._ws = None
        self._connected = asyncio.Event()
        self._queue_empty = asyncio.Event()
        self._pending_sends: dict[str, asyncio.Future] = {}
        # Receipts the server answered with an error: sent again after a backoff and on connect.
        self._failed_receipts: dict[str, set[int]] = {"read": set(), "ack": set()}
        self._receipt_failures = 0
        self._last_receipt_failure = 0.0
        self._receipt_retry: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._fatal: Exception | None = None
        self._closing = False

    # -- opening and closing ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, server: str | None, state_path: str, passphrase: str, *, on_event: Callable[[Event], Any] | None = None
    ) -> Client:
        """Opens (or creates) the state file; use as ``async with Client.open(...) as client``."""
        return cls(server, Store(state_path, passphrase), on_event=on_event)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        self._closing = True
        if self._socket_task is not None:
            self._socket_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._socket_task
            self._socket_task = None
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.store.close()

    # -- account ------------------------------------------------------------------------------------------

    @property
    def email(self) -> str | None:
        return self._email

    @property
    def identity_key(self) -> bytes:
        return self._require_account().identity_key

    def _require_account(self) -> ProtocolAccount:
        if self._account is None:
            raise NotSetUp("this state file holds no keys: register, or log in with --new-device")
        return self._account

    def _check_email(self, email: str) -> None:
        stored = self.email
        if stored is not None and stored.lower() != email.lower():
            raise ClientError(f"this state file belongs to {stored}; use another --state file for {email}")

    async def _api(self, method: str, endpoint: str, body: Any = None, *, auth: bool = True) -> Any:
        try:
            return await self.http.call(method, endpoint, body, auth=auth)
        finally:
            self._save_cookies()

    def _save_cookies(self) -> None:
        cookies = self.http.export_cookies()
        if cookies != self.store.get_json("cookies"):
            self.store.put_json("cookies", cookies)

    def _save_account(self) -> None:
        self.store.put_json("account", self._require_account().to_json())

    async def register(self, email: str, password: str, *, one_time_prekeys: int = ONE_TIME_PREKEY_BATCH) -> None:
        """Creates the account with fresh keys, keeps them only once the server accepted them, and signs in."""
        self._check_email(email)
        if self._account is not None:
            raise ClientError(f"this state file already holds the keys of {self.email}")
        account = ProtocolAccount.create(one_time_prekeys=one_time_prekeys)
        await self._api(
            "POST", "auth/register", {"email": email, "password": password, **account.registration_keys()}, auth=False
        )
        with self.store.transaction():
            self._account = account
            self._save_account()
            self.store.set_meta("email", email)
            self.store.set_meta("server", self.server)
            self.store.set_meta("signed_prekey_created_at", str(time.time()))
        self._email = email
        await self.login(email, password)

    async def login(self, email: str, password: str, *, new_device: bool = False) -> None:
        """Signs in (cookies like the browser). Without this state file's keys on the server, ``new_device``
        makes this the account's device (new identity key; other sessions are signed out, contacts warned)."""
        self._check_email(email)
        user = await self._api("POST", "auth/login", {"email": email, "password": password}, auth=False)
        with self.store.transaction():
            self._email = user.get("email", email) if isinstance(user, dict) else email
            self.store.set_meta("email", self._email)
            self.store.set_meta("server", self.server)
        status = await self._api("GET", "keys/prekeys/count")
        ours = self._account is not None and status.get("identity_key") == b64encode(self._account.identity_key)
        if not ours:
            if not new_device:
                raise NotSetUp(
                    "the account's keys are on another device (or this state file has none): log in with "
                    "--new-device to move the account here (other sessions are signed out, contacts see a new "
                    "safety number)"
                )
            account = ProtocolAccount.create(one_time_prekeys=ONE_TIME_PREKEY_BATCH)
            await self._api("PUT", "keys/identity", {"password": password, **account.registration_keys()})
            with self.store.transaction():
                self._account = account
                self._save_account()
                self.store.set_meta("signed_prekey_created_at", str(time.time()))
                for peer in self._peers_with_sessions():
                    self.store.put_sessions(peer, [])
        await self.maintain_keys()

    def _peers_with_sessions(self) -> list[str]:
        return [row[0] for row in self.store._db.execute("SELECT peer FROM sessions").fetchall()]

    async def logout(self) -> None:
        await self._api("POST", "auth/logout", auth=False)
        self.http.import_cookies({})
        self._save_cookies()

    async def me(self) -> dict:
        return await self._api("GET", "auth/me")

    # -- keys upkeep --------------------------------------------------------------------------------------

    async def maintain_keys(self) -> dict:
        """Refills one-time prekeys below the minimum and rotates an old signed prekey (PROTOCOL.md 7.4)."""
        async with self._account_lock:
            account = self._require_account()
            status = await self._api("GET", "keys/prekeys/count")
            if status.get("identity_key") and status["identity_key"] != b64encode(account.identity_key):
                raise NotSetUp("another device holds this account's keys now (log in with --new-device)")
            uploaded = 0
            minimum = max(ONE_TIME_PREKEY_MIN, int(status.get("low_threshold") or 0))
            count = int(status.get("count") or 0)
            if count < minimum:
                room = int(status.get("max_unused") or ONE_TIME_PREKEY_BATCH) - count
                batch = min(ONE_TIME_PREKEY_BATCH - count, room)
                if batch > 0:
                    keys = account.generate_one_time_prekeys(batch)
                    # The new private keys and the advanced id counter are stored BEFORE the upload: a lost
                    # response can never make an id be used twice.
                    self._save_account()
                    await self._api("POST", "keys/prekeys", {"one_time_prekeys": keys})
                    uploaded = batch
            rotated = False
            created = float(self.store.get_meta("signed_prekey_created_at") or 0)
            server_age = float(status.get("signed_prekey_age_seconds") or 0)
            server_max = float(status.get("signed_prekey_max_age_seconds") or 0) or float("inf")
            if time.time() - created > SIGNED_PREKEY_ROTATE_SECONDS or server_age > min(
                SIGNED_PREKEY_ROTATE_SECONDS, server_max / 2
            ):
                signed = account.rotate_signed_prekey()
                with self.store.transaction():
                    self._save_account()
                    self.store.set_meta("signed_prekey_created_at", str(time.time()))
                await self._api("PUT", "keys/signed-prekey", signed)
                rotated = True
            return {"uploaded": uploaded, "rotated": rotated}

    async def rotate_signed_prekey(self) -> dict:
        async with self._account_lock:
            signed = self._require_account().rotate_signed_prekey()
            with self.store.transaction():
                self._save_account()
                self.store.set_meta("signed_prekey_created_at", str(time.time()))
            return await self._api("PUT", "keys/signed-prekey", signed)

    # -- contacts -----------------------------------------------------------------------------------------

    async def contacts(self) -> list[dict]:
        return await self._api("GET", "contacts/")

    async def contact_requests(self) -> dict:
        return await self._api("GET", "contacts/requests")

    async def add_contact(self, email: str) -> dict:
        """Sends a contact request (or accepts theirs if they had already asked)."""
        return await self._api("POST", "contacts/requests", {"email": email})

    async def answer_request(self, email: str, *, accept: bool = True) -> dict:
        requests = await self.contact_requests()
        for request in requests.get("incoming", []):
            if request["email"].lower() == email.lower():
                action = "accept" if accept else "reject"
                return await self._api("PUT", f"contacts/requests/{request['id']}", {"action": action})
        raise ApiError(404, "request_not_found", f"no pending contact request from {email}")

    async def remove_contact(self, email: str) -> None:
        await self._api("POST", "contacts/remove", {"email": email})

    # -- identities and safety numbers --------------------------------------------------------------------

    async def _lookup_identity(self, peer: str) -> str:
        payload = await self._api("POST", "keys/identity/lookup", {"email": peer})
        return payload["identity_key"]

    async def check_identity(self, peer: str) -> bool:
        """Compares the key the server reports for ``peer`` with the trusted one; True when it changed."""
        key = await self._lookup_identity(peer)
        async with self._peer_lock(peer):
            return self.store.note_identity(peer, key) == "changed"

    async def check_identities(self) -> list[str]:
        """Checks every contact (changes announced while this client was offline); returns who changed."""
        changed = []
        for contact in await self.contacts():
            with contextlib.suppress(ApiError):
                if await self.check_identity(contact["email"]):
                    changed.append(contact["email"])
        return changed

    async def safety_number(self, peer: str) -> dict:
        """``{"safety_number", "changed", "new_safety_number"}`` for ``peer`` (60 digits in 12 groups).

        Asks the server for the contact's current key first, so a change is noticed here too."""
        with contextlib.suppress(ApiError):
            await self.check_identity(peer)
        known = self.store.get_identity(peer)
        if known is None:
            raise ApiError(404, "not_found", f"no identity key known for {peer} (not a contact?)")
        own = self._require_account().identity_key

        def number(key: str) -> str:
            return format_safety_number(safety_number(own, b64decode(key)))

        return {
            "safety_number": number(known["identity_key"]),
            "changed": bool(known["changed_to"]),
            "new_safety_number": number(known["changed_to"]) if known["changed_to"] else None,
        }

    async def accept_identity(self, peer: str) -> bool:
        """Accepts a contact's new identity key; sessions with the old key are dropped."""
        async with self._peer_lock(peer):
            with self.store.transaction():
                if not self.store.accept_identity(peer):
                    return False
                trusted = self.store.get_identity(peer)["identity_key"]
                sessions = [
                    s
                    for s in self.store.get_sessions(peer)
                    if b64encode(Session.from_json(s).remote_identity_key) == trusted
                ]
                self.store.put_sessions(peer, sessions)
            return True

    def _peer_lock(self, peer: str) -> asyncio.Lock:
        return self._peer_locks.setdefault(peer.lower(), asyncio.Lock())

    # -- sending ------------------------------------------------------------------------------------------

    async def send(self, peer: str, text: str) -> SentMessage:
        """Encrypts ``text`` for ``peer`` (X3DH first if there is no session) and sends it; returns the
        server's id. Over the socket when connected, else through POST messages/."""
        envelope = await self._encrypt_for(peer, text)
        server_id = await self._transmit(envelope)
        return SentMessage(server_id, envelope["client_id"], peer)

    async def _encrypt_for(self, peer: str, text: str) -> dict:
        account = self._require_account()
        plaintext = text.encode()
        async with self._peer_lock(peer):
            known = self.store.get_identity(peer)
            if known and known["changed_to"]:
                raise IdentityChanged(peer)
            stored = self.store.get_sessions(peer)
            if stored:
                session = Session.from_json(stored[0])
                out = await session.encrypt(plaintext)
                sessions = [session.to_json(), *stored[1:]]
            else:
                bundle = await self._api("POST", "keys/bundle", {"email": peer})
                # A key the server hands out must match the one we trust for this contact (the server
                # could substitute its own).
                if self.store.note_identity(peer, str(bundle.get("identity_key"))) == "changed":
                    raise IdentityChanged(peer)
                session, out = await account.initiate_session(bundle, plaintext)
                sessions = [session.to_json()]
            envelope = {"client_id": str(uuid.uuid4()), "to": peer, "kind": out.kind, "body": out.body}
            with self.store.transaction():
                self.store.put_sessions(peer, sessions)
                self.store.add_message(
                    peer=peer, direction="out", status="pending", text=text, client_id=envelope["client_id"]
                )
                self.store.put_json(f"outbox:{envelope['client_id']}", envelope)
        return envelope

    async def _transmit(self, envelope: dict) -> int:
        client_id = envelope["client_id"]
        server_id = None
        ws = self._ws
        if ws is not None:
            future = asyncio.get_running_loop().create_future()
            self._pending_sends[client_id] = future
            try:
                await ws.send(json.dumps({"type": "send", **envelope}))
                server_id = await asyncio.wait_for(asyncio.shield(future), SEND_TIMEOUT)
            except (ConnectionClosed, TimeoutError, ConnectionError):
                server_id = None  # fall back to REST with the same client_id (idempotent)
            except ApiError:
                self._drop_outbox(client_id, failed=True)
                raise
            finally:
                self._pending_sends.pop(client_id, None)
        if server_id is None:
            try:
                result = await self._api("POST", "messages/", envelope)
            except ApiError as error:
                if error.status:  # refused by the server (not a network failure): it will never be sent
                    self._drop_outbox(client_id, failed=True)
                raise
            server_id = int(result["id"])
        with self.store.transaction():
            self.store.mark_sent(client_id, server_id)
            self.store.put_secret(f"outbox:{client_id}", None)
        return server_id

    def _drop_outbox(self, client_id: str, *, failed: bool) -> None:
        with self.store.transaction():
            self.store.put_secret(f"outbox:{client_id}", None)
            if failed:
                self.store._db.execute("UPDATE messages SET status = 'failed' WHERE client_id = ?", (client_id,))

    async def resend_pending(self) -> int:
        """Sends envelopes that were stored but never confirmed (a crash or lost connection before ``sent``)."""
        count = 0
        for envelope in self.store.pending_outgoing():
            with contextlib.suppress(ApiError):
                await self._transmit(envelope)
                count += 1
        return count

    # -- receiving ----------------------------------------------------------------------------------------

    async def _decrypt_frame(self, frame: dict) -> Message | None:
        """Decrypts and stores one envelope; None when it was already stored (a redelivery)."""
        account = self._require_account()
        peer = str(frame["from"])
        server_id = int(frame["id"])
        async with self._peer_lock(peer):
            if self.store.has_incoming(server_id):
                return None
            stored = self.store.get_sessions(peer)
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
                        async with self._account_lock:
                            accepted = await account.accept_initial_message(envelope)
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
            with self.store.transaction():
                if failure is None:
                    self.store.put_sessions(peer, new_sessions)
                if account_changed:
                    self._save_account()
                self.store.add_message(
                    peer=peer,
                    direction="in",
                    status="failed" if failure else "received",
                    text=text,
                    server_id=server_id,
                    failure=failure,
                )
                changed = remote_identity is not None and self.store.note_identity(peer, remote_identity) == "changed"
        if account_changed:
            self._spawn(self._maintain_quietly())
        return Message(
            id=server_id,
            sender=peer,
            text=text,
            sent_at=str(frame.get("sent_at", "")),
            failure=failure,
            identity_changed=changed,
        )

    async def fetch(self) -> list[Message]:
        """REST fallback of the socket: downloads undelivered envelopes, stores them, then acknowledges them."""
        received: list[Message] = []
        after = 0
        while True:
            page = await self._api("GET", f"messages/?after={after}")
            frames = page.get("messages", [])
            ids = []
            for frame in frames:
                message = await self._decrypt_frame(frame)
                ids.append(int(frame["id"]))
                after = max(after, int(frame["id"]))
                if message is not None:
                    received.append(message)
            if ids:
                await self._api("POST", "messages/ack", {"ids": ids})
            if not page.get("has_more") or not frames:
                break
        return received

    async def mark_read(self, message: Message | int) -> None:
        server_id = message.id if isinstance(message, Message) else int(message)
        self.store.mark_incoming_read([server_id])
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "read", "ids": [server_id]}))
                return
        await self._api("POST", "messages/read", {"ids": [server_id]})

    async def sync_receipts(self) -> dict:
        """REST fallback of the socket's ``receipts`` question: where the sent messages still
        waiting for a read receipt stand (the ``delivered``/``read`` pushes missed while offline)."""
        ids = self.store.awaiting_receipts(RECEIPTS_MAX_IDS)
        if not ids:
            return {"delivered": [], "read": [], "unknown": []}
        answer = await self._api("GET", "messages/receipts?ids=" + ",".join(str(i) for i in ids))
        self._apply_receipts(answer)
        return answer

    def _apply_receipts(self, answer: dict) -> None:
        def ids(name: str) -> list[int]:
            return [int(i) for i in answer.get(name, []) if isinstance(i, int)]

        self.store.mark_outgoing(ids("delivered"), "delivered")
        self.store.mark_outgoing(ids("read"), "read")
        self.store.mark_expired(ids("unknown"))

    def history(self, peer: str | None = None, limit: int = 100) -> list[StoredMessage]:
        return self.store.history(peer, limit)

    # -- the socket ---------------------------------------------------------------------------------------

    async def connect(self, *, wait: bool = True, timeout: float = 15.0) -> None:
        """Starts the WebSocket (reconnecting by itself); with ``wait`` until the backlog was delivered."""
        self._require_account()
        if self._socket_task is None or self._socket_task.done():
            self._fatal = None
            self._queue_empty.clear()
            self._socket_task = asyncio.create_task(self._run_socket())
        if wait:
            waiter = asyncio.create_task(self._queue_empty.wait())
            done, _ = await asyncio.wait(
                {waiter, self._socket_task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if self._fatal is not None:
                raise self._fatal
            if not done:
                raise ClientError(f"could not connect to {self.server} within {timeout:.0f} s")

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def messages(self) -> AsyncIterator[Message]:
        """Incoming messages as they arrive (connects the socket if needed); stops when signed out."""
        if self._socket_task is None:
            await self.connect(wait=False)
        while True:
            getter = asyncio.create_task(self._inbox.get())
            done, _ = await asyncio.wait({getter, self._socket_task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            getter.cancel()
            if self._fatal is not None:
                raise self._fatal
            if not self._socket_task.cancelled() and self._socket_task.exception() is not None:
                raise self._socket_task.exception()
            return

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self._events.get()

    def _ws_url(self) -> str:
        scheme = "wss" if self.http.secure else "ws"
        return f"{scheme}://{urllib.parse.urlsplit(self.server).netloc}/ws/chat/"

    async def _run_socket(self) -> None:
        delay = 0.5
        established = False
        while not self._closing:
            code = None
            try:
                async with connect(
                    self._ws_url(),
                    origin=self.server,
                    additional_headers={"Cookie": self.http.cookie_header("/ws/chat/")},
                    open_timeout=10,
                    # Envelopes are ciphertext: deflate cannot shrink them and only costs CPU on both ends.
                    compression=None,
                ) as ws:
                    self._ws = ws
                    self._connected.set()
                    self._spawn(self._resend_quietly())
                    self._spawn(self._ask_receipts(ws))
                    self._spawn(self._check_identities_quietly())
                    greeted = False
                    try:
                        async for raw in ws:
                            # A refused socket is accepted and closed at once: only a frame proves
                            # the server took it. Receipts waiting for a retry go out only then
                            # (sent into a refused socket, they would be taken as sent and lost).
                            established = True
                            if not greeted:
                                greeted = True
                                self._spawn(self._send_failed_receipts())
                            await self._dispatch(json.loads(raw))
                            delay = 0.5
                    except ConnectionClosed:
                        pass
                    code = ws.close_code
            except (OSError, InvalidHandshake, TimeoutError):
                code = None
            finally:
                self._ws = None
                self._connected.clear()
                for future in self._pending_sends.values():
                    if not future.done():
                        future.set_exception(ConnectionError("socket closed"))
            if code == CLOSE_SESSION_REVOKED:
                self._fatal = NotSignedIn("signed out by the server (logged out elsewhere or a new device): log in")
                return
            if code == CLOSE_TOO_MANY_SOCKETS:
                # The account has all the sockets the server allows. On the first attempt that is
                # the caller's answer (connect() raises it); a client that was connected before
                # (a network blip while its old socket still counts) keeps trying, once a minute
                # or so, never in a tight loop.
                if not established:
                    self._fatal = TooManyConnections()
                    return
                self._emit(Event("too_many_connections", {"retry_in": TOO_MANY_SOCKETS_RETRY}))
                await asyncio.sleep(TOO_MANY_SOCKETS_RETRY * (1 + random.random()))  # noqa: S311 - jitter, not a secret
                continue
            if code == CLOSE_UNAUTHENTICATED:
                try:
                    await self.http.refresh()
                    self._save_cookies()
                    continue
                except NotSignedIn as error:
                    self._fatal = error
                    return
                except ApiError:
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _dispatch(self, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "message":
            message = await self._decrypt_frame(frame)
            # Acknowledged only now that its outcome is stored (a crash before this means redelivery).
            if self._ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._ws.send(json.dumps({"type": "ack", "ids": [int(frame["id"])]}))
            if message is not None:
                await self._inbox.put(message)
                if message.identity_changed:
                    self._emit(Event("identity_changed", {"email": message.sender}))
            return
        if kind == "sent":
            future = self._pending_sends.get(str(frame.get("client_id")))
            if future is not None and not future.done():
                future.set_result(int(frame["id"]))
            return
        if kind == "error" and frame.get("frame") in self._failed_receipts and isinstance(frame.get("ids"), list):
            self._receipt_failed(frame)
            return
        if kind == "error" and frame.get("client_id"):
            future = self._pending_sends.get(str(frame["client_id"]))
            if future is not None and not future.done():
                future.set_exception(
                    ApiError(0, str(frame.get("code")), str(frame.get("detail")), retry_after=frame.get("retry_after"))
                )
                return
        if kind == "queue_empty":
            self._queue_empty.set()
        elif kind in ("delivered", "read"):
            self.store.mark_outgoing([int(i) for i in frame.get("ids", [])], kind)
        elif kind == "receipts":
            self._apply_receipts(frame)
        elif kind == "identity_changed" and frame.get("email"):
            self._spawn(self._note_identity_quietly(str(frame["email"])))
            return
        elif kind == "prekeys_low":
            self._spawn(self._maintain_quietly())
        self._emit(Event(str(kind), {k: v for k, v in frame.items() if k != "type"}))

    def _receipt_failed(self, frame: dict) -> None:
        """The server could not apply an `ack` or `read` (the error names which, and its ids):
        those envelopes were not marked. Without a retry they would come back on the next
        connect (an ack; stored already, so not shown twice) or their sender would never hear
        that they were read. Sent again after `retry_after` or a backoff, and on every connect."""
        ids = [i for i in frame["ids"] if type(i) is int and i > 0]
        self._failed_receipts[frame["frame"]].update(ids)
        now = time.monotonic()
        if now - self._last_receipt_failure > RECEIPT_RETRY_MAX:
            self._receipt_failures = 0
        self._last_receipt_failure = now
        self._receipt_failures += 1
        retry_after = frame.get("retry_after")
        if isinstance(retry_after, int | float) and retry_after > 0:
            delay = float(retry_after)
        else:
            ceiling = min(RECEIPT_RETRY_MAX, RECEIPT_RETRY_FIRST * 2 ** (self._receipt_failures - 1))
            delay = ceiling / 2 + random.random() * ceiling / 2  # noqa: S311 (jitter, not a secret)
        if self._receipt_retry is None or self._receipt_retry.done():
            self._receipt_retry = self._spawn(self._send_failed_receipts(delay))

    async def _send_failed_receipts(self, delay: float = 0.0) -> None:
        """Sends the receipts waiting for a retry (a `read` marks delivered too: it goes first);
        without a socket they wait for the next connect."""
        await asyncio.sleep(delay)
        for kind in ("read", "ack"):
            ids = sorted(self._failed_receipts[kind])
            for start in range(0, len(ids), MAX_IDS_PER_FRAME):
                chunk = ids[start : start + MAX_IDS_PER_FRAME]
                ws = self._ws
                if ws is None:
                    return
                try:
                    await ws.send(json.dumps({"type": kind, "ids": chunk}))
                except ConnectionClosed:
                    return
                self._failed_receipts[kind].difference_update(chunk)

    def _emit(self, event: Event) -> None:
        if self._events.full():
            self._events.get_nowait()
        self._events.put_nowait(event)
        if self.on_event is not None:
            self.on_event(event)

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _maintain_quietly(self) -> None:
        with contextlib.suppress(ClientError):
            await self.maintain_keys()

    async def _ask_receipts(self, ws) -> None:
        """Receipt pushes are at-most-once: on every connect, ask where unconfirmed messages stand."""
        ids = self.store.awaiting_receipts(RECEIPTS_MAX_IDS)
        if ids:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "receipts", "ids": ids}))

    async def _resend_quietly(self) -> None:
        with contextlib.suppress(ClientError):
            await self.resend_pending()

    async def _note_identity_quietly(self, peer: str) -> None:
        with contextlib.suppress(ClientError):
            if await self.check_identity(peer):
                self._emit(Event("identity_changed", {"email": peer}))

    async def _check_identities_quietly(self) -> None:
        with contextlib.suppress(ClientError):
            for peer in await self.check_identities():
                self._emit(Event("identity_changed", {"email": peer}))
