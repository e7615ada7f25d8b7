"""An in-memory channel layer for the embedded (single-process) setup that does not scan,
and the light per-channel queue both our layers use (realtime.redis_layer has the Redis one).

channels' `InMemoryChannelLayer` runs `_clean_expired()` on every `receive` and
`group_send`: a walk over every channel queue and every group membership in the process. With
a thousand open sockets that walk, not the messaging, is what the server spends its time on.
This subclass keeps the same semantics (per-channel capacity, message expiry, a channel whose
message expired is dropped from its groups, group membership expiry) but does the bookkeeping
only for the channel or group being touched, with a reverse index channel -> groups.

Messages are copied shallowly, not deep-copied: a receiver gets its own top-level dict, but
nested values are shared between the receivers of one group_send. Consumers must treat a
received message as read-only (ours do), which is what a layer that serialises would force.
"""

import asyncio
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

# The message a channel layer puts on every local channel that is in a group once its lost
# subscriptions are back (realtime.redis_layer): the group messages published while they were
# down are gone, so the consumer reads again what they would have carried
# (ChatConsumer.layer_resubscribed). Both layers also put it on a channel that refused a message
# because it was full, once it has room again (ChannelQueue).
RESUBSCRIBED = "layer.resubscribed"


class ChannelQueue:
    """One channel's messages: the part of `asyncio.Queue` a channel layer uses.

    Every open socket has a channel, and an `asyncio.Queue` costs about 3 KB even when empty
    (four deques and an Event); at 40 KB per idle socket in all, that was a thirteenth of it.
    This keeps two lists, made on first use, and the same rules: `put_nowait` raises
    `asyncio.QueueFull` past `maxsize` (0: unbounded), `get` waits in FIFO order among
    readers, and a reader cancelled after being woken passes the wake-up on."""

    __slots__ = ("_getters", "_items", "_overflowed", "_refill", "maxsize")

    def __init__(self, maxsize: int = 0, refill=None):
        self.maxsize = maxsize
        self._items: list | None = None
        self._getters: list[asyncio.Future] | None = None
        # A message refused because the queue was full is lost (at most once, like every push);
        # `refill()` makes the item put at the end of the queue once it has room again (a
        # RESUBSCRIBED: the consumer re-reads from the database what the lost message carried),
        # so a consumer that fell behind catches up by itself instead of at its next `sync`.
        self._refill = refill
        self._overflowed = False

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def first(self):
        """The oldest message, left in the queue."""
        return self._items[0]

    def put_nowait(self, item) -> None:
        if self._items is None:
            self._items = []
        elif 0 < self.maxsize <= len(self._items):
            self._overflowed = self._refill is not None
            raise asyncio.QueueFull
        self._items.append(item)
        self._wake_getter()

    def get_nowait(self):
        if not self._items:
            raise asyncio.QueueEmpty
        return self._take()

    def _take(self):
        item = self._items.pop(0)
        if self._overflowed and len(self._items) < self.maxsize:
            self._overflowed = False
            self._items.append(self._refill())
        return item

    async def get(self):
        while not self._items:
            if self._getters is None:
                self._getters = []
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                elif self._items:
                    self._wake_getter()
                raise
        return self._take()

    def _wake_getter(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return


class IndexedInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._channel_groups: dict[str, set[str]] = {}

    # --- channels ---------------------------------------------------------------------

    def _queue(self, channel: str) -> ChannelQueue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = ChannelQueue(
                maxsize=self.get_capacity(channel),
                refill=lambda: (time.time() + self.expiry, {"type": RESUBSCRIBED}),
            )
        return queue

    def _expire_channel(self, channel: str, queue: ChannelQueue) -> None:
        """Drop this channel's expired messages; a channel that let one expire is not being
        read (its consumer is gone), so it leaves its groups, like the parent class does."""
        now = time.time()
        expired = False
        while not queue.empty() and queue.first()[0] < now:
            queue.get_nowait()
            expired = True
        if expired:
            self._remove_from_groups(channel)
            if queue.empty():
                self.channels.pop(channel, None)

    def _put(self, channel: str, message: dict) -> None:
        queue = self._queue(channel)
        self._expire_channel(channel, queue)
        queue = self._queue(channel)
        try:
            queue.put_nowait((time.time() + self.expiry, dict(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        self.require_valid_channel_name(channel)
        self._put(channel, message)

    async def receive(self, channel):
        self.require_valid_channel_name(channel)
        queue = self._queue(channel)
        self._expire_channel(channel, queue)
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        except asyncio.CancelledError:
            # The reader is gone (its consumer exited): forget the queue if nothing waits in
            # it. The parent class drops a queue each time it runs empty, which costs a new
            # asyncio.Queue per message for a busy socket.
            if queue.empty() and self.channels.get(channel) is queue:
                self.channels.pop(channel, None)
            raise
        return message

    # --- groups -----------------------------------------------------------------------

    def _remove_from_groups(self, channel: str) -> None:
        for group in self._channel_groups.pop(channel, ()):
            members = self.groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    self.groups.pop(group, None)

    async def group_add(self, group, channel):
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.setdefault(group, {})[channel] = time.time()
        self._channel_groups.setdefault(channel, set()).add(group)

    async def group_discard(self, group, channel):
        self.require_valid_channel_name(channel)
        self.require_valid_group_name(group)
        members = self.groups.get(group)
        if members:
            members.pop(channel, None)
            if not members:
                self.groups.pop(group, None)
        groups = self._channel_groups.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                self._channel_groups.pop(channel, None)

    async def group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        members = self.groups.get(group)
        if not members:
            return
        joined_after = time.time() - self.group_expiry
        for channel, joined_at in list(members.items()):
            if joined_at and joined_at < joined_after:
                await self.group_discard(group, channel)
                continue
            try:
                self._put(channel, message)
            except ChannelFull:
                # At-most-once, like every channel layer: the envelope is in the database
                # and the client resyncs from it.
                pass

    async def flush(self):
        await super().flush()
        self._channel_groups = {}
