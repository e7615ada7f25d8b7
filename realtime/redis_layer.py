"""channels-redis' pub/sub layer with a lighter per-channel queue, for `REDIS_URL` setups, and
a notice to the consumers when its subscriptions were cut and are back.

In its own module so that the embedded setup (realtime.layers) does not load redis-py.
"""

import asyncio
import logging

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, create_pool, decode_hosts
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub

from realtime.layers import RESUBSCRIBED, ChannelQueue

logger = logging.getLogger(__name__)

# After a failed read of the pub/sub connection, wait this long before the next one, doubling
# up to the maximum while it keeps failing (channels-redis waits 1 s each time). The
# reconnection itself happens in redis-py as the read fails, when Redis is reachable.
RECEIVE_RETRY_FIRST = 0.05
RECEIVE_RETRY_MAX = 1.0


class _PubSub(PubSub):
    """redis-py's PubSub, noting each reconnection that re-sends subscriptions.

    redis-py calls `on_connect` whenever the pub/sub connection is established again (a cut
    connection, a restarted Redis), and it re-sends one SUBSCRIBE for every channel. Whatever
    was published in between is gone; `resubscribing` stays set until Redis confirms that
    SUBSCRIBE (see _Shard._do_receiving)."""

    resubscribing = False

    async def on_connect(self, connection):
        if self.channels:
            self.resubscribing = True
        await super().on_connect(connection)


class _Shard(RedisSingleShardConnection):
    """channels-redis' connection to one Redis, using `_PubSub` and telling its layer when a
    re-subscription is confirmed."""

    def _ensure_redis(self):
        # As channels-redis does it, with _PubSub.
        if self._redis is None:
            pool = create_pool(self.host)
            self._redis = aioredis.Redis(connection_pool=pool)
            self._pubsub = _PubSub(pool)

    async def _do_receiving(self):
        """channels-redis' receive loop, reading subscription confirmations as well.

        Redis applies one SUBSCRIBE command whole, and the first reply on a re-established
        connection answers the SUBSCRIBE that `_PubSub.on_connect` sent: once it is read,
        every group is subscribed again, so a message committed before then is in the
        database for the consumers to re-read, and one published after it is received."""
        delay = RECEIVE_RETRY_FIRST
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(timeout=0.1)
                    delay = RECEIVE_RETRY_FIRST
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._receive_message(message)
                    elif message["type"] == "subscribe" and self._pubsub.resubscribing:
                        self._pubsub.resubscribing = False
                        # Not the host: its URL may carry the Redis password.
                        logger.warning("redis pub/sub subscriptions restored")
                        self.channel_layer.resubscribed(self)
                else:
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # channels-redis ends the loop on a TimeoutError; this retries
                logger.warning("redis pub/sub receive failed error=%s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECEIVE_RETRY_MAX)


class _RedisPubSubLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts=None, *args, **kwargs):
        super().__init__(hosts, *args, **kwargs)
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]

    async def _subscribe_to_channel(self, channel):
        # As channels-redis does it, with a ChannelQueue instead of an asyncio.Queue.
        self.channels[channel] = ChannelQueue()
        await self._get_shard(channel).subscribe(channel)

    def resubscribed(self, shard: _Shard) -> None:
        """`shard`'s subscriptions are back after a cut: every local channel in a group that
        lives on that shard gets one `layer.resubscribed` message, in order with its other
        messages, so its consumer re-reads what the lost group messages carried."""
        data = self.channel_layer.serialize({"type": RESUBSCRIBED})
        channels = {
            channel
            for group_channel, members in self.groups.items()
            if self._get_shard(group_channel) is shard
            for channel in members
        }
        for channel in channels:
            queue = self.channels.get(channel)
            if queue is not None:
                queue.put_nowait(data)


class RedisPubSubLayer(RedisPubSubChannelLayer):
    """channels-redis' pub/sub layer with `ChannelQueue` as each channel's local queue
    (about 3 KB less per idle socket), and `layer.resubscribed` (realtime.layers.RESUBSCRIBED)
    sent to the local members of groups whose subscription was cut and restored. The Redis
    subscriptions and their reconnection are channels-redis' and redis-py's own code.
    `_get_layer` is channels-redis' method with the subclass put in; it and the classes above
    rely on that version's internals (`_layers`, `_args`, `_kwargs`, `_wrap_close`,
    `_shards`, the shard's `_ensure_redis`/`_do_receiving`/`_receive_message`), so a
    channels-redis or redis-py upgrade must re-check them (the Redis tests exercise them)."""

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _RedisPubSubLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer

    async def group_send_many(self, sends: list[tuple[str, dict]]) -> None:
        """`group_send` for each (group, message), in order, as one pipelined round trip per
        Redis shard instead of one round trip each. The batcher publishes a whole batch's
        events this way."""
        layer = self._get_layer()
        by_shard: dict = {}
        for group, message in sends:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append((channel, self.serialize(message)))
        for shard, items in by_shard.items():
            # What RedisSingleShardConnection.publish does, for many messages at once.
            async with shard._lock:
                shard._ensure_redis()
                pipe = shard._redis.pipeline(transaction=False)
                for channel, data in items:
                    pipe.publish(channel, data)
                await pipe.execute()
