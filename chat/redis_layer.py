"""channels-redis' pub/sub layer with a lighter per-channel queue, for `REDIS_URL` setups.

In its own module so that the embedded setup (chat.layers) does not load redis-py.
"""

import asyncio

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
from channels_redis.utils import _wrap_close

from chat.layers import ChannelQueue


class _RedisPubSubLoopLayer(RedisPubSubLoopLayer):
    async def _subscribe_to_channel(self, channel):
        # As channels-redis does it, with a ChannelQueue instead of an asyncio.Queue.
        self.channels[channel] = ChannelQueue()
        await self._get_shard(channel).subscribe(channel)


class RedisPubSubLayer(RedisPubSubChannelLayer):
    """channels-redis' pub/sub layer with `ChannelQueue` as each channel's local queue
    (about 3 KB less per idle socket). Everything else, the Redis subscriptions included, is
    channels-redis' own code. `_get_layer` is its method with the subclass put in: it relies
    on that version's internals (`_layers`, `_args`, `_kwargs`, `_wrap_close`), so a
    channels-redis upgrade must re-check it (the Redis tests exercise it)."""

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
