"""Faults under traffic, two daphne processes on MariaDB + Redis: delivery recovers by itself.

Pairs of users talk across the two processes while the test cuts Redis' pub/sub connections,
then its publish connections (each time refusing new connections for a while, so that pushes
are published while nobody can hear them, or cannot be published at all), kills the servers'
MariaDB connections (with acknowledgements in flight, then with sends in flight), and finally
kills one daphne process with SIGKILL.

The clients are raw sockets doing what every client must (`Peer`): acknowledge what they
receive, send a failed `ack` again (its error names the ids), send a `send` again when its
error says so or when it was not confirmed before a reconnect, and reconnect when the socket
closes. They never send `sync`. After each fault every message must be received, and its row
marked delivered, within DEADLINE seconds, and after the Redis and MariaDB faults no client
may have reconnected: the servers recover on their own. Nothing is stored twice.
"""

import asyncio
import contextlib
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from redis import asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from accounts.models import User
from chat.models import Envelope
from chat.tests.helpers import make_contacts

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PAIRS = 6
BURST = 8  # messages per sender and fault
DEADLINE = 15.0  # seconds from the end of a fault until everything is delivered
RETRY_DELAY = 0.1  # the clients' wait before sending a failed frame again
RECONNECT_DELAY = 0.2


class Peer:
    """A chat socket that behaves as a client must, and never sends `sync`."""

    def __init__(self, urls: list[str], token: str):
        self.urls = urls  # its own server first, then the one to fall back to
        self.token = token
        self.received: list[int] = []  # message ids in arrival order, duplicates included
        self.unconfirmed: dict[str, dict] = {}  # client_id -> send frame
        self.confirmed: dict[str, int] = {}  # client_id -> envelope id
        self.unexpected: list[dict] = []  # error frames a client could not act on
        self.connections = 0
        self.hold_acks = False
        self.held: list[int] = []
        self._ws = None
        self._up = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._later: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._up.wait(), 15)

    async def stop(self) -> None:
        for task in [self._task, *self._later]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _run(self) -> None:
        while True:
            for url in self.urls:
                with contextlib.suppress(OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                    async with connect(
                        url,
                        additional_headers={
                            "Cookie": f"{settings.AUTH_COOKIE_ACCESS}={self.token}",
                            "Origin": "http://" + urlsplit(url).netloc,
                        },
                        compression=None,
                        proxy=None,
                        open_timeout=5,
                    ) as ws:
                        self._ws = ws
                        self.connections += 1
                        self._up.set()
                        for frame in list(self.unconfirmed.values()):  # the outbox goes again
                            await ws.send(json.dumps(frame))
                        async for raw in ws:
                            await self._on_frame(json.loads(raw))
                self._ws = None
                await asyncio.sleep(RECONNECT_DELAY)  # the client's reconnect backoff

    async def _on_frame(self, frame: dict) -> None:
        kind = frame["type"]
        if kind == "message":
            self.received.append(frame["id"])
            if self.hold_acks:
                self.held.append(frame["id"])
            else:
                await self._send({"type": "ack", "ids": [frame["id"]]})
        elif kind == "sent":
            self.confirmed[frame["client_id"]] = frame["id"]
            self.unconfirmed.pop(frame["client_id"], None)
        elif kind == "error" and frame.get("code") == "server_error" and frame.get("frame") == "ack":
            self._retry({"type": "ack", "ids": frame["ids"]})
        elif kind == "error" and frame.get("code") == "server_error" and frame.get("client_id") in self.unconfirmed:
            self._retry(self.unconfirmed[frame["client_id"]])
        elif kind == "error":
            self.unexpected.append(frame)

    async def _send(self, frame: dict) -> None:
        # With the socket gone, a reconnect sends the outbox again and the backlog comes back.
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps(frame))

    def _retry(self, frame: dict) -> None:
        async def later():
            await asyncio.sleep(RETRY_DELAY)  # the client's backoff before sending it again
            await self._send(frame)

        task = asyncio.create_task(later())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def send_message(self, to: User, body: str) -> None:
        client_id = str(uuid.uuid4())
        frame = {"type": "send", "client_id": client_id, "to": to.email, "kind": "message", "body": body}
        self.unconfirmed[client_id] = frame
        await self._send(frame)

    async def release_acks(self) -> None:
        self.hold_acks = False
        ids, self.held = self.held, []
        assert ids, "no acknowledgement was held"
        await self._send({"type": "ack", "ids": ids})


@pytest.fixture
def pairs(make_account, settings):
    settings.RATE_LIMITS_ENABLED = False  # more sign-ups than one client may make
    users = []
    for _ in range(PAIRS):
        alice, bob = make_account(), make_account()
        make_contacts(alice, bob)
        users.append((User.objects.get(pk=alice.id), User.objects.get(pk=bob.id)))
    return users


@sync_to_async
def undelivered_rows() -> int:
    return Envelope.objects.filter(delivered_at__isnull=True).count()


@sync_to_async
def stored_client_ids() -> list[str]:
    return [str(client_id) for client_id in Envelope.objects.values_list("client_id", flat=True)]


def connection_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return cursor.fetchone()[0]


@pytest.fixture
def test_connection_id(transactional_db) -> int:
    """The MariaDB connection of the test's main thread (the fixtures and the database flush at
    the end use it; `sync_to_async` calls run in another thread, on another connection)."""
    return connection_id()


@sync_to_async
def kill_server_database_connections(spare: int) -> int:
    """KILL every MariaDB connection to the test database except the test's own two (this
    thread's and `spare`): the servers' chat database threads lose theirs, and the next
    statement on it fails."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID NOT IN (CONNECTION_ID(), %s)",
            [connection.settings_dict["NAME"], spare],
        )
        ids = [row[0] for row in cursor.fetchall()]
        for victim in ids:
            with contextlib.suppress(Exception):  # it may have closed in between
                cursor.execute(f"KILL CONNECTION {int(victim)}")
    return len(ids)


@contextlib.asynccontextmanager
async def redis_cut(client_type: str):
    """CLIENT KILL every Redis connection of `client_type` ("pubsub": the servers'
    subscriptions; "normal": their publish connections) and refuse new connections until the
    block ends, so that the fault lasts while the block sends messages. (`maxclients` is set
    back when the block ends; a test process killed inside it leaves that Redis refusing
    new clients until `CONFIG SET maxclients` is run by hand.)"""
    admin = aioredis.Redis.from_url(settings.REDIS_URL)
    maxclients = (await admin.config_get("maxclients"))["maxclients"]
    try:
        clients = await admin.client_list()
        own = await admin.client_id()
        victims = [c for c in await admin.client_list(_type=client_type) if int(c["id"]) != own]
        assert victims, f"no {client_type} connection to cut"
        await admin.config_set("maxclients", len(clients) - len(victims))
        await admin.client_kill_filter(_type=client_type, skipme=True)
        yield
    finally:
        await admin.config_set("maxclients", maxclients)
        await admin.aclose()


async def wait_until(condition, deadline: float, what: str) -> None:
    """Poll `condition` (sync or async) until it holds; fail at the monotonic `deadline`."""
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE:.0f} s of the fault: {what}")
        await asyncio.sleep(0.05)


class Traffic:
    def __init__(self, pairs, cluster):
        self.users = pairs
        self.cluster = cluster
        self.senders: list[Peer] = []
        self.recipients: list[Peer] = []
        self.sent = 0

    def peer(self, user: User, home: int) -> Peer:
        servers = self.cluster.servers[home:] + self.cluster.servers[:home]
        return Peer([server.url for server in servers], self.cluster.token_for(user))

    async def start(self) -> None:
        # Each pair spans both processes, half of them in each direction.
        for i, (alice, bob) in enumerate(self.users):
            self.senders.append(self.peer(alice, i % 2))
            self.recipients.append(self.peer(bob, (i + 1) % 2))
        await asyncio.gather(*(peer.start() for peer in [*self.senders, *self.recipients]))

    async def stop(self) -> None:
        for peer in [*self.senders, *self.recipients]:
            await peer.stop()

    async def burst(self) -> None:
        for n in range(BURST):
            for sender, (_, bob) in zip(self.senders, self.users, strict=True):
                await sender.send_message(bob, f"ciphertext-{self.sent + n}")
        self.sent += BURST

    def all_confirmed(self) -> bool:
        return all(not sender.unconfirmed for sender in self.senders)

    def all_received(self) -> bool:
        return all(
            set(sender.confirmed.values()) <= set(recipient.received)
            for sender, recipient in zip(self.senders, self.recipients, strict=True)
        )

    async def all_delivered(self, since: float, what: str) -> float:
        """Everything sent so far confirmed, received and marked delivered; returns the time
        it took from `since` (the end of the fault)."""
        deadline = since + DEADLINE
        await wait_until(self.all_confirmed, deadline, f"{what}: every send confirmed")
        await wait_until(self.all_received, deadline, f"{what}: every message received")
        await wait_until(self._none_undelivered, deadline, f"{what}: every row delivered")
        return time.monotonic() - since

    async def _none_undelivered(self) -> bool:
        return await undelivered_rows() == 0

    def connections(self) -> list[int]:
        return [peer.connections for peer in [*self.senders, *self.recipients]]


async def test_delivery_recovers_from_faults_without_the_clients_help(cluster, pairs, test_connection_id):
    traffic = Traffic(pairs, cluster)
    await traffic.start()
    took = {}
    try:
        await traffic.burst()
        await traffic.all_delivered(time.monotonic(), "before any fault")

        # Redis cuts the subscriptions: pushes published until they are back are lost.
        async with redis_cut("pubsub"):
            await traffic.burst()
            await wait_until(traffic.all_confirmed, time.monotonic() + DEADLINE, "sends stored during the cut")
        took["redis pub/sub cut"] = await traffic.all_delivered(time.monotonic(), "after the pub/sub cut")

        # Redis cuts the publish connections: publishing fails until new ones are admitted.
        async with redis_cut("normal"):
            await traffic.burst()
            await wait_until(traffic.all_confirmed, time.monotonic() + DEADLINE, "sends stored during the cut")
        took["redis publish cut"] = await traffic.all_delivered(time.monotonic(), "after the publish cut")

        # MariaDB kills the servers' connections while acknowledgements are on their way...
        for recipient in traffic.recipients:
            recipient.hold_acks = True
        await traffic.burst()
        await wait_until(traffic.all_confirmed, time.monotonic() + DEADLINE, "sends before the ack fault")
        await wait_until(traffic.all_received, time.monotonic() + DEADLINE, "messages before the ack fault")
        assert await kill_server_database_connections(test_connection_id) >= 2
        for recipient in traffic.recipients:
            await recipient.release_acks()
        took["database kill, acks"] = await traffic.all_delivered(time.monotonic(), "after the database kill (acks)")
        # ... and while messages are being sent.
        assert await kill_server_database_connections(test_connection_id) >= 2
        await traffic.burst()
        took["database kill, sends"] = await traffic.all_delivered(time.monotonic(), "after the database kill (sends)")

        assert traffic.connections() == [1] * 2 * PAIRS  # nobody had to reconnect

        # A process dies: its clients reconnect to the other one, as clients do.
        bursting = asyncio.create_task(traffic.burst())
        await asyncio.to_thread(cluster.servers[1].kill)
        await bursting
        took["daphne kill -9"] = await traffic.all_delivered(time.monotonic(), "after kill -9")
    finally:
        await traffic.stop()
    print("delivered after the fault, seconds:", {fault: round(seconds, 2) for fault, seconds in took.items()})

    # Nothing stored twice: one row per client_id ever sent, the confirmed ids among them.
    stored = await stored_client_ids()
    assert len(stored) == len(set(stored)) == PAIRS * traffic.sent
    for sender, recipient in zip(traffic.senders, traffic.recipients, strict=True):
        assert set(sender.confirmed) <= set(stored)
        assert set(recipient.received) == set(sender.confirmed.values())
        assert not sender.unexpected
        assert not recipient.unexpected
