"""An in-memory channel layer for the embedded (single-process) setup that does not scan.

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


class IndexedInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._channel_groups: dict[str, set[str]] = {}

    # --- channels ---------------------------------------------------------------------

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    def _expire_channel(self, channel: str, queue: asyncio.Queue) -> None:
        """Drop this channel's expired messages; a channel that let one expire is not being
        read (its consumer is gone), so it leaves its groups, like the parent class does."""
        now = time.time()
        expired = False
        while not queue.empty() and queue._queue[0][0] < now:
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
