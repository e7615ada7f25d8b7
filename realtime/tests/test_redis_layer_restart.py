"""realtime.redis_layer when its Redis dies and comes back: publishing fails meanwhile, and
afterwards every group is subscribed again, its local members are told (RESUBSCRIBED), and
group messages are delivered again.

The test runs its own redis-server on a free port, so that it can kill and restart it.
"""

import asyncio
import shutil
import socket
import subprocess
import time

import pytest
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from realtime.layers import RESUBSCRIBED
from realtime.redis_layer import RedisPubSubLayer

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server program"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A redis-server of this test's own, started and killed on demand."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    await client.ping()
                    return
                except RedisConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
async def redis_server():
    server = RedisServer()
    await server.start()
    yield server
    server.kill()


async def until(condition, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_after_a_redis_restart_groups_are_subscribed_again_and_their_members_told(redis_server):
    layer = RedisPubSubLayer(hosts=[redis_server.url])
    groups = [layer._group_channel(g) for g in ("user.1", "user.2")]

    async def subscribed(names) -> bool:
        async with aioredis.Redis.from_url(redis_server.url) as admin:
            return all(count == 1 for _, count in await admin.pubsub_numsub(*names))

    try:
        member, loner = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("user.1", member)
        await until(lambda: subscribed(groups[:1]), "the first subscription")

        redis_server.kill()
        with pytest.raises(RedisConnectionError):
            await layer.group_send("user.1", {"type": "lost"})
        # A socket that joins a group meanwhile is subscribed once Redis is back.
        latecomer = await layer.new_channel()
        await layer.group_add("user.2", latecomer)
        await redis_server.start()

        assert await asyncio.wait_for(layer.receive(member), 15) == {"type": RESUBSCRIBED}
        assert await asyncio.wait_for(layer.receive(latecomer), 5) == {"type": RESUBSCRIBED}
        assert await subscribed(groups)
        await layer.group_send("user.1", {"type": "after"})
        await layer.group_send_many([("user.2", {"type": "after"})])
        assert await asyncio.wait_for(layer.receive(member), 5) == {"type": "after"}
        assert await asyncio.wait_for(layer.receive(latecomer), 5) == {"type": "after"}
        with pytest.raises(TimeoutError):  # in no group: no notice
            await asyncio.wait_for(layer.receive(loner), 0.2)
    finally:
        await layer.flush()
