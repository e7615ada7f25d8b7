"""The channel layer for `REDIS_URL` setups (several processes): Redis pub/sub, at-most-once.

Written on redis-py's asyncio client only (`ConnectionPool`, `Redis`, and for the subscriber a
`Connection`'s `send_command`/`read_response`), so that what delivery depends on is here: the
subscriptions, their restoration after a cut, and the notice sent then. On the wire it is
channels-redis 4's `RedisPubSubChannelLayer`, so processes of either kind agree: a message is
msgpack, group `g` is the Redis channel `{prefix}__group__g`, a message to a channel is
published under the channel's name, and with several hosts a name lives on the same host.

Each process (each event loop) holds, per Redis host, a client that publishes and one
connection that subscribes: one SUBSCRIBE per group that has local members, not per socket,
and one PSUBSCRIBE for every channel this process made (`new_channel` costs no Redis command).

In its own module so that the embedded setup (realtime.layers) does not load redis-py.
"""

import asyncio
import binascii
import itertools
import logging
import uuid

import msgpack
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from redis import asyncio as aioredis

from realtime.layers import RESUBSCRIBED, ChannelQueue

logger = logging.getLogger(__name__)

# After a failed read or connect of the subscriber, wait this long before the next try,
# doubling up to the maximum while it keeps failing.
RECEIVE_RETRY_FIRST = 0.05
RECEIVE_RETRY_MAX = 1.0
# The subscriber's reads end after this long without a message and start again: a read never
# runs into the connection's socket_timeout (redis-py's default is 5 s), which would cut it.
READ_TIMEOUT = 1.0


def _pool(host) -> aioredis.ConnectionPool:
    """A host as channels-redis takes it: a URL, {"address": URL, **options}, a (host,
    port) pair, or a dict of `ConnectionPool` options.

    RESP2 unless the host says otherwise: on RESP3 (redis-py 8's default) every pub/sub
    message also goes through redis-py's push handler, which formats it for a debug log."""
    if isinstance(host, str):
        return aioredis.ConnectionPool.from_url(host, protocol=2)
    if isinstance(host, (tuple, list)):
        return aioredis.ConnectionPool(host=host[0], port=host[1], protocol=2)
    options = {"protocol": 2, **host}
    if "address" in options:
        return aioredis.ConnectionPool.from_url(options.pop("address"), **options)
    return aioredis.ConnectionPool(**options)


def _host_index(name: str, hosts: int) -> int:
    """channels-redis' `_consistent_hash`, so that a name lives on the same host for both."""
    if hosts == 1:
        return 0
    return int((binascii.crc32(name.encode()) & 0xFFF) / (4096 / hosts))


class _Host:
    """One Redis: a client that publishes, and one connection that subscribes, read by one
    task that connects it again with every subscription whenever it breaks.

    Commands on the subscriber go out only while it is `_ready` (connected, and the
    subscriptions of the moment sent); otherwise `_read` sends them all when it is. After a
    failure, the first reply on the new connection answers the SUBSCRIBE of every group,
    which Redis applies whole: from then on every group is subscribed again, and the layer
    puts RESUBSCRIBED on the members' channels (see `_Loop.resubscribed`)."""

    def __init__(self, host, loop: "_Loop"):
        self._loop = loop
        pool = _pool(host)
        self.redis = aioredis.Redis(connection_pool=pool)
        self._subscriber = pool.make_connection()
        # Publishes leave in call order, on one connection.
        self._publishing = asyncio.Lock()
        # Commands on the subscriber go out in order, the re-sent subscriptions first.
        self._sending = asyncio.Lock()
        self._channels: set[str] = set()
        self._patterns: set[str] = set()
        self._reader: asyncio.Task | None = None
        self._ready = False
        self._lost = False  # a connection failed since the subscriptions were last confirmed
        self._restoring = False  # waiting for the confirmation that ends `_lost`

    async def publish(self, name: str, data: bytes) -> None:
        async with self._publishing:
            await self.redis.publish(name, data)

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        async with self._publishing:
            pipe = self.redis.pipeline(transaction=False)
            for name, data in items:
                pipe.publish(name, data)
            await pipe.execute()

    async def subscribe(self, name: str, *, pattern: bool = False) -> None:
        names = self._patterns if pattern else self._channels
        if name not in names:
            names.add(name)
            await self._command("PSUBSCRIBE" if pattern else "SUBSCRIBE", name)

    async def unsubscribe(self, name: str) -> None:
        if name in self._channels:
            self._channels.discard(name)
            await self._command("UNSUBSCRIBE", name)

    async def _command(self, *args) -> None:
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
        async with self._sending:
            if not self._ready:
                return  # `_read` sends every subscription once connected
            try:
                # No health check: its PING's reply would be read here instead of by `_read`.
                await self._subscriber.send_command(*args, check_health=False)
            except Exception as exc:
                # The connection broke: `_read` fails on it too and subscribes again from the sets.
                logger.warning("redis pub/sub command failed error=%s", type(exc).__name__)

    async def _connect(self) -> None:
        """Connect the subscriber and send every subscription. Under `_sending`, so that no
        command goes before them: the first reply then answers the SUBSCRIBE of every group."""
        await self._subscriber.connect()
        async with self._sending:
            if self._channels:
                await self._subscriber.send_command("SUBSCRIBE", *self._channels, check_health=False)
            self._restoring = self._lost = self._lost and bool(self._channels)  # no group: no one to tell
            if self._patterns:
                await self._subscriber.send_command("PSUBSCRIBE", *self._patterns, check_health=False)
            self._ready = True

    async def _read(self) -> None:
        delay = RECEIVE_RETRY_FIRST
        while True:
            try:
                if not self._ready:
                    await self._connect()
                # push_request: on RESP3, pub/sub messages are pushes, returned only if asked.
                response = await self._subscriber.read_response(timeout=READ_TIMEOUT, push_request=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Not the host: its URL may carry the Redis password.
                logger.warning("redis pub/sub receive failed error=%s", type(exc).__name__)
                self._ready, self._lost = False, True
                await self._subscriber.disconnect(nowait=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECEIVE_RETRY_MAX)
                continue
            if response is None:
                continue  # READ_TIMEOUT passed without a message
            delay = RECEIVE_RETRY_FIRST
            kind = response[0]
            if kind == b"message":
                self._loop.deliver(response[1].decode(), response[2])
            elif kind == b"pmessage":
                self._loop.put(response[2].decode(), response[3])  # to one of this process's channels
            elif kind == b"subscribe" and self._restoring:
                self._restoring = self._lost = False
                logger.warning("redis pub/sub subscriptions restored")
                self._loop.resubscribed(self)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
        await self._subscriber.disconnect()
        await self.redis.aclose(close_connection_pool=True)


class _Loop:
    """The layer's state in one event loop: the local channels' queues, the local members of
    each group (by the group's Redis channel) and a `_Host` per Redis host."""

    def __init__(self, layer: "RedisPubSubLayer"):
        self.layer = layer
        self.channels: dict[str, ChannelQueue] = {}
        self.groups: dict[str, set[str]] = {}
        self.named: set[str] = set()  # channels not made here that a `receive` subscribed to
        self.hosts = [_Host(host, self) for host in layer.hosts]
        # This process's channels: `{prefix}specific.{id}.{n}`, one pattern for all of them.
        self.channel_prefix = f"{layer.prefix}specific.{uuid.uuid4().hex}."
        self._numbers = itertools.count()

    def host(self, name: str) -> _Host:
        return self.hosts[_host_index(name, len(self.hosts))]

    def put(self, channel: str, data: bytes) -> bool:
        """Queue `data` for a local channel (if it is still here); False if the channel is full."""
        queue = self.channels.get(channel)
        if queue is None:
            return True
        try:
            queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    def deliver(self, name: str, data: bytes) -> None:
        """A message on a subscribed Redis channel: a group's or a named channel's. A full
        channel misses it, like in every channel layer (the client resyncs)."""
        members = self.groups.get(name)
        if members is not None:
            for channel in members:
                self.put(channel, data)
        elif name in self.named:
            self.put(name, data)

    def _resubscribed_item(self) -> bytes:
        return self.layer.serialize({"type": RESUBSCRIBED})

    def resubscribed(self, host: _Host) -> None:
        """`host`'s subscriptions are back after a cut: every local channel in a group on that
        host gets one RESUBSCRIBED, in order with its other messages, so its consumer re-reads
        what the lost group messages carried."""
        data = self.layer.serialize({"type": RESUBSCRIBED})
        channels = {channel for name, members in self.groups.items() if self.host(name) is host for channel in members}
        for channel in channels:
            self.put(channel, data)

    async def new_channel(self) -> str:
        for host in self.hosts:
            await host.subscribe(self.channel_prefix + "*", pattern=True)
        channel = f"{self.channel_prefix}{next(self._numbers)}"
        self.channels[channel] = ChannelQueue(self.layer.capacity, self._resubscribed_item)
        return channel

    async def send(self, channel: str, data: bytes) -> None:
        if channel.startswith(self.channel_prefix):  # this process's: no need to go through Redis
            if not self.put(channel, data):
                raise ChannelFull(channel)
            return
        await self.host(channel).publish(channel, data)

    async def receive(self, channel: str) -> bytes:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = ChannelQueue(self.layer.capacity, self._resubscribed_item)
            if not channel.startswith(self.channel_prefix):
                self.named.add(channel)
                await self.host(channel).subscribe(channel)
        try:
            return await queue.get()
        except asyncio.CancelledError:
            # The reader is gone (channels cancels it when its consumer exits): forget the
            # channel, as channels-redis does.
            if self.channels.get(channel) is queue:
                del self.channels[channel]
                if channel in self.named:
                    self.named.discard(channel)
                    await self.host(channel).unsubscribe(channel)
            raise

    async def group_add(self, name: str, channel: str) -> None:
        if channel not in self.channels:
            raise RuntimeError(f"group_add() takes a channel of this process, not {channel!r}")
        members = self.groups.get(name)
        if members is None:
            members = self.groups[name] = set()
            members.add(channel)
            await self.host(name).subscribe(name)
        else:
            members.add(channel)

    async def group_discard(self, name: str, channel: str) -> None:
        members = self.groups.get(name)
        if members is None or channel not in members:
            return
        members.discard(channel)
        if not members:
            del self.groups[name]
            await self.host(name).unsubscribe(name)

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        by_host: dict[_Host, list[tuple[str, bytes]]] = {}
        for name, data in items:
            by_host.setdefault(self.host(name), []).append((name, data))
        for host, host_items in by_host.items():
            await host.publish_many(host_items)

    async def close(self) -> None:
        self.channels, self.groups, self.named = {}, {}, set()
        for host in self.hosts:
            await host.close()


class RedisPubSubLayer(BaseChannelLayer):
    """Channels' layer interface (groups, flush) over Redis pub/sub, plus `group_send_many`,
    `ChannelQueue` as each channel's queue, and RESUBSCRIBED (realtime.layers) put on the local
    members of groups whose subscription was cut and is back.

    CONFIG: `hosts` (a list, as channels-redis takes it; default the local Redis), `prefix` of
    every Redis channel name (default "asgi"), `capacity` of each channel's queue (default 0:
    unbounded, as with channels-redis' pub/sub layer; past it a group message is dropped for
    that channel and a `send` to a local channel raises ChannelFull). Publishing raises when
    Redis cannot be reached (realtime.batching.Pushes retries); a subscription waits for it.

    The state lives per event loop (tests and `async_to_sync` run their own loops), and is
    closed when that loop is."""

    extensions = ["groups", "flush"]

    def __init__(self, hosts=None, prefix: str = "asgi", capacity: int = 0):
        super().__init__(capacity=capacity)
        self.require_valid_group_name(prefix)  # so that the channel pattern has no wildcard
        if isinstance(hosts, (str, bytes)):
            raise ValueError("hosts is a list of Redis hosts, even for one")
        self.hosts = list(hosts or ["redis://localhost:6379"])
        self.prefix = prefix
        self._loops: dict[asyncio.AbstractEventLoop, _Loop] = {}

    def serialize(self, message: dict) -> bytes:
        return msgpack.packb(message)

    def deserialize(self, data: bytes) -> dict:
        return msgpack.unpackb(data)

    def _here(self) -> _Loop:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _Loop(self)
            self._close_with(loop)
        return state

    def _close_with(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close this loop's connections and reader tasks when the loop is closed (asyncio
        has no hook for it, so its `close` is wrapped): left open, they would be finalized
        on a closed loop, with errors."""
        close = loop.close

        def close_after_layer():
            state = self._loops.pop(loop, None)
            if state is not None:
                loop.run_until_complete(state.close())
            loop.close = close
            close()

        loop.close = close_after_layer

    def _group_channel(self, group: str) -> str:
        self.require_valid_group_name(group)
        return f"{self.prefix}__group__{group}"

    # --- channels ---------------------------------------------------------------------

    async def new_channel(self) -> str:
        return await self._here().new_channel()

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        await self._here().send(channel, self.serialize(message))

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        return self.deserialize(await self._here().receive(channel))

    # --- groups -----------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        await self._here().group_add(self._group_channel(group), channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._here().group_discard(self._group_channel(group), channel)

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        name = self._group_channel(group)
        await self._here().host(name).publish(name, self.serialize(message))

    async def group_send_many(self, sends: list[tuple[str, dict]]) -> None:
        """`group_send` for each (group, message), in order, as one pipelined round trip per
        Redis host instead of one round trip each. The batcher publishes a whole batch's
        events this way (realtime.bus.send_collected)."""
        items = [(self._group_channel(group), self.serialize(message)) for group, message in sends]
        await self._here().publish_many(items)

    # --- flush ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Forget every channel and group of this loop and close its connections; the layer
        can be used again (it connects again)."""
        state = self._loops.get(asyncio.get_running_loop())
        if state is not None:
            await state.close()
            self._loops[asyncio.get_running_loop()] = _Loop(self)
