"""The asynchronous client: an account on one server, its keys and sessions in a local state file.

A facade: each feature lives in its own module, and this class composes them and keeps the public
API (cli.py, bots, the README). Dependencies go one way, down this list:

    client.py    this facade: builds the parts, fills the socket's dispatch table
    groups.py    groups: membership, sender keys, group messages in and out, changes, group receipts
    inbox.py     receiving: decrypt, store, acknowledge; messages() and fetch()
    outbox.py    sending: encrypt, store the envelope, transmit; resend on connect
    receipts.py  ack/read with retries; delivered/read pushes; where sent messages stand
    keys.py      key upkeep (one-time prekeys, signed prekey) and contacts' identity changes
    contacts.py  contacts and contact requests
    linking.py   linking a device, both roles (docs/PROTOCOL.md section 18)
    devices.py   the account's devices: list, rename, unlink; devices_changed
    account.py   this device's keys and number, sign-up/in/out, unlinked, the account and per-peer locks
    transport.py the chat socket: connection, reconnects, close codes, frame routing
    http.py      the REST API over httpx: cookies, CSRF, refresh-on-401
    events.py, tasks.py, store.py, errors.py, protocol/

Rules kept across them, as in the browser client (static/js/session.js, docs/PROTOCOL.md section 7):
work on one peer's sessions runs under that peer's lock and is stored before an envelope leaves
or is acknowledged; nothing logs message texts or keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from .account import ONE_TIME_PREKEY_BATCH, Account
from .contacts import Contacts
from .devices import Devices
from .errors import ClientError
from .events import Event, Events
from .groups import Group, Groups
from .http import HttpApi
from .inbox import Inbox, Message
from .keys import Keys
from .linking import Linking, NewLink
from .outbox import Outbox, SentMessage
from .protocol import LinkOffer, LinkOpening
from .receipts import Receipts
from .store import Store, StoredMessage
from .tasks import Background
from .transport import ChatSocket

__all__ = ["Client", "Event", "Group", "Message", "SentMessage"]


class Client:
    def __init__(self, server: str | None, store: Store, *, on_event: Callable[[Event], Any] | None = None) -> None:
        self.store = store
        server = server or store.get_meta("server")
        if not server:
            raise ClientError("no server given (--server URL) and none stored in the state file")
        self.http = HttpApi(
            server,
            load_cookies=lambda: store.get_json("cookies"),
            save_cookies=self._save_cookies,
            on_device_removed=self._device_removed,
        )
        self.server = self.http.server
        if store.get_meta("server") not in (None, self.server):
            raise ClientError(f"this state file belongs to {store.get_meta('server')}, not {self.server}")
        self._events = Events(on_event)
        self._background = Background()
        self._socket = ChatSocket(self.http, self._events, self._background)
        self._account = Account(store, self.http)
        self._contacts = Contacts(self.http)
        self._devices = Devices(self.http, self._account, store, self._events, self._background)
        self._linking = Linking(self.http, self._account)
        self._keys = Keys(store, self.http, self._account, self._contacts, self._events, self._background)
        self._receipts = Receipts(store, self.http, self._socket, self._background)
        self._outbox = Outbox(store, self.http, self._account, self._socket)
        self._inbox = Inbox(store, self.http, self._account, self._socket, self._receipts, self._keys, self._events)
        self._groups = Groups(
            store, self.http, self._account, self._socket, self._outbox, self._inbox, self._receipts, self._events
        )
        self._inbox.group_reader = self._groups.read
        self._socket.wire(
            {
                "message": self._inbox.on_message,
                "sent": self._outbox.on_sent,
                "error": (self._receipts.on_error, self._outbox.on_error),
                "delivered": self._receipts.on_pushed,
                "read": self._receipts.on_pushed,
                "receipts": self._receipts.on_answer,
                "read_elsewhere": self._receipts.on_read_elsewhere,
                "devices_changed": (self._outbox.on_devices_changed, self._devices.on_devices_changed),
                "identity_changed": self._keys.on_identity_changed,
                "prekeys_low": self._keys.on_prekeys_low,
                "group_message": self._groups.on_group_message,
                "group_changed": self._groups.on_group_changed,
                "group_epoch": self._groups.on_group_epoch,
                "group_receipts": self._groups.on_group_receipts,
            },
            on_open=(
                self._outbox.resend_quietly,
                self._receipts.ask,
                self._keys.check_identities_quietly,
                self._groups.on_connect,
            ),
            # Receipts waiting for a retry go out only once the server took the socket.
            on_first_frame=(self._receipts.send_failed,),
            on_close=(self._outbox.fail_pending,),
        )

    def _save_cookies(self, cookies: dict) -> None:
        if cookies != self.store.get_json("cookies"):
            self.store.put_json("cookies", cookies)

    def _device_removed(self) -> None:
        """The server said this device was unlinked (http.py, transport.py): its keys and sessions go."""
        self._account.forget_device()

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
        await self._socket.close()
        await self._background.cancel_all()
        await self.http.aclose()
        self.store.close()

    # -- account ------------------------------------------------------------------------------------------

    @property
    def email(self) -> str | None:
        return self._account.email

    @property
    def identity_key(self) -> bytes:
        return self._account.identity_key

    @property
    def on_event(self) -> Callable[[Event], Any] | None:
        return self._events.on_event

    @on_event.setter
    def on_event(self, callback: Callable[[Event], Any] | None) -> None:
        self._events.on_event = callback

    @property
    def device_id(self) -> int | None:
        """This state file's device number in the account (None without keys)."""
        return self._account.device_id

    async def register(
        self,
        email: str,
        password: str,
        *,
        one_time_prekeys: int = ONE_TIME_PREKEY_BATCH,
        device_name: str | None = None,
    ) -> None:
        """Creates the account with fresh keys as its device 1 named ``device_name`` (default "Terminal on
        <hostname>"), keeps the keys only once the server accepted them, and signs in."""
        await self._account.register(email, password, one_time_prekeys=one_time_prekeys, device_name=device_name)
        await self.login(email, password)

    async def login(
        self, email: str, password: str, *, new_device: bool = False, device_name: str | None = None
    ) -> bool:
        """Signs in as this device (cookies like the browser). Raises DeviceRemoved (keys and sessions
        erased) when this device was unlinked. Without keys here, ``new_device`` starts over: a new identity
        key as a new device named ``device_name``; the account's other devices are removed and contacts are
        warned. Returns True when it started over."""
        started_over = await self._account.login(email, password, new_device=new_device, device_name=device_name)
        await self._keys.maintain()
        return started_over

    async def logout(self) -> None:
        await self._account.logout()

    async def me(self) -> dict:
        return await self._account.me()

    # -- devices ----------------------------------------------------------------------------------------

    async def devices(self) -> list[dict]:
        """The account's devices: ``{id, name, created_at, last_seen_at, current}`` (``current``: this one)."""
        return await self._devices.list()

    async def rename_device(self, device_id: int, name: str) -> dict:
        return await self._devices.rename(device_id, name)

    async def unlink_device(self, device_id: int) -> None:
        """Removes a device from the account. Unlinking this one erases its keys and raises DeviceRemoved."""
        await self._devices.unlink(device_id)

    # -- linking a device (docs/PROTOCOL.md section 18) ----------------------------------------------------

    async def open_link(self) -> NewLink:
        """New device (signed in, no keys here: a pending sign-in): opens a link; show ``link.code``."""
        return await self._linking.open()

    async def wait_for_link_offer(self, link: NewLink) -> LinkOpening:
        """New device: waits (until the link expires) for an existing device to answer the link; show the
        opening's ``verification_code`` and let the user compare it with the other screen."""
        return await self._linking.wait_for_offer(link)

    async def complete_link(self, link: NewLink, opening: LinkOpening, *, device_name: str | None = None) -> int:
        """New device, only after the user confirmed that both codes match: takes the account's identity
        key from the offer and becomes a device of the account named ``device_name``; returns its number."""
        return await self._linking.complete(link, opening, device_name=device_name)

    async def cancel_link(self, link_id: str) -> None:
        await self._linking.cancel(link_id)

    async def accept_link(self, code: str) -> LinkOffer:
        """Existing device: answers the new device's link code (or its ``https://host/#link=CODE`` form)
        with the account's identity key sealed for it; show the offer's ``verification_code``."""
        return await self._linking.offer(code)

    async def wait_for_link_closed(self, link_id: str) -> None:
        """Existing device: returns once the link is used, cancelled or expired."""
        await self._linking.wait_until_closed(link_id)

    # -- keys upkeep and identities -----------------------------------------------------------------------

    async def maintain_keys(self) -> dict:
        """Refills one-time prekeys below the minimum and rotates an old signed prekey (PROTOCOL.md 7.4)."""
        return await self._keys.maintain()

    async def rotate_signed_prekey(self) -> dict:
        return await self._keys.rotate_signed_prekey()

    async def check_identity(self, peer: str) -> bool:
        """Compares the key the server reports for ``peer`` with the trusted one; True when it changed."""
        return await self._keys.check_identity(peer)

    async def check_identities(self) -> list[str]:
        """Checks every contact (changes announced while this client was offline); returns who changed."""
        return await self._keys.check_identities()

    async def safety_number(self, peer: str) -> dict:
        """``{"safety_number", "changed", "new_safety_number"}`` for ``peer`` (60 digits in 12 groups)."""
        return await self._keys.safety_number(peer)

    async def accept_identity(self, peer: str) -> bool:
        """Accepts a contact's new identity key; sessions with the old key are dropped."""
        return await self._keys.accept_identity(peer)

    # -- contacts -----------------------------------------------------------------------------------------

    async def contacts(self) -> list[dict]:
        return await self._contacts.list()

    async def contact_requests(self) -> dict:
        return await self._contacts.requests()

    async def add_contact(self, email: str) -> dict:
        """Sends a contact request (or accepts theirs if they had already asked)."""
        return await self._contacts.add(email)

    async def answer_request(self, email: str, *, accept: bool = True) -> dict:
        return await self._contacts.answer(email, accept=accept)

    async def remove_contact(self, email: str) -> None:
        await self._contacts.remove(email)

    # -- messages -----------------------------------------------------------------------------------------

    async def send(self, peer: str, text: str) -> SentMessage:
        """Encrypts ``text`` once for each device of ``peer`` and each other device of this account (X3DH
        first with a device without a session) and sends it; returns the message id. Over the socket when
        connected, else through POST messages/."""
        return await self._outbox.send(peer, text)

    async def resend_pending(self) -> int:
        """Sends frames that were stored but never confirmed (a crash or lost connection before ``sent``),
        1:1 and group ones; returns how many went out."""
        return await self._outbox.resend_pending() + await self._groups.resend_pending()

    async def fetch(self) -> list[Message]:
        """REST fallback of the socket: downloads undelivered envelopes, stores them, then acknowledges them."""
        return await self._inbox.fetch()

    async def mark_read(self, message: Message | int) -> None:
        await self._receipts.mark_read(message.id if isinstance(message, Message) else int(message))

    async def sync_receipts(self) -> dict:
        """Where the sent messages still waiting for a read receipt stand, over REST."""
        return await self._receipts.sync()

    def history(self, peer: str | None = None, limit: int = 100, *, group: str | None = None) -> list[StoredMessage]:
        """The newest stored messages, oldest first: all, the conversation with ``peer``, or ``group``'s
        (its messages and notice lines)."""
        return self.store.history(peer, limit, group=group)

    # -- groups (docs/PROTOCOL.md part III) ----------------------------------------------------------------

    async def groups(self) -> list[Group]:
        """The groups this account is a member of, oldest first, with their members and names."""
        return await self._groups.list()

    def group_name(self, group: str) -> str | None:
        """The group's name as its members last sent it (None: not known yet)."""
        return self._groups.name_of(group)

    async def find_group(self, group: str) -> Group:
        """A group by its id or by a name only one of them has."""
        return await self._groups.find(group)

    async def create_group(self, name: str, emails: list[str]) -> Group:
        """Creates a group with these contacts and sends them its name (end-to-end encrypted). Without a
        network the name stays pending (sent on the next connect); ``GroupNameNotSent`` when it could not
        be sent otherwise: the group exists (the error carries it)."""
        return await self._groups.create(name, emails)

    async def add_member(self, group: str, email: str) -> Group:
        """Adds a contact to the group and sends the group's name again for them (a failure of that: as
        for ``create_group``)."""
        return await self._groups.add_member(group, email)

    async def remove_member(self, group: str, email: str) -> None:
        """Removes a member (admins only); the next message is sent with a new sender key."""
        await self._groups.remove_member(group, email)

    async def leave_group(self, group: str) -> None:
        await self._groups.leave(group)

    async def make_admin(self, group: str, email: str) -> Group:
        return await self._groups.make_admin(group, email)

    async def rename_group(self, group: str, name: str) -> None:
        await self._groups.rename(group, name)

    async def group_changes(self, group: str) -> list[dict]:
        """The group's changes from the server (those not seen yet become lines of its history)."""
        return await self._groups.changes(group)

    async def send_group(self, group: str, text: str) -> SentMessage:
        """Encrypts ``text`` once with this device's sender key of the group and sends it to every member
        device (handing the key to the devices that lack it); returns the message id."""
        return await self._groups.send(group, text)

    async def typing_group(self, group: str, state: str = "start") -> bool:
        """Tells the other members' open sockets that we are typing (``start``) or stopped (``stop``); over the
        open socket only, never stored: False when it is not connected."""
        return await self._groups.typing(group, state)

    async def sync_group_receipts(self) -> None:
        """Asks (over REST) where the sent group messages not yet read by everyone stand."""
        await self._groups.sync_receipts()

    # -- the socket ---------------------------------------------------------------------------------------

    async def connect(self, *, wait: bool = True, timeout: float = 15.0) -> None:
        """Starts the WebSocket (reconnecting by itself); with ``wait`` until the backlog was delivered."""
        self._account.require()
        await self._socket.connect(wait=wait, timeout=timeout)

    @property
    def connected(self) -> bool:
        return self._socket.connected

    def messages(self) -> AsyncIterator[Message]:
        """Incoming messages as they arrive (connects the socket if needed); stops when signed out."""
        return self._inbox.messages()

    def events(self) -> AsyncIterator[Event]:
        return self._events.stream()
