"""realtime.redis_layer when its Redis dies and comes back: publishing fails meanwhile, and
afterwards every group is subscribed again, its local members are told (RESUBSCRIBED), and
group messages are delivered again. With several Redis hosts, only the groups of the host
that came back are told.

The tests run redis-servers of their own on free ports, so that they can kill and restart them.
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
from realtime.redis_layer import RedisPubSubLayer, _host_index
from realtime.tests.helpers import until

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


@pytest.fixture
async def second_redis_server():
    server = RedisServer()
    await server.start()
    yield server
    server.kill()


async def subscribed(server: RedisServer, *names: str) -> list[int]:
    async with aioredis.Redis.from_url(server.url) as admin:
        return [count for _, count in await admin.pubsub_numsub(*names)]


async def test_after_a_redis_restart_groups_are_subscribed_again_and_their_members_told(redis_server):
    layer = RedisPubSubLayer(hosts=[redis_server.url])
    groups = [layer._group_channel(g) for g in ("user.1", "user.2")]

    async def first_subscribed() -> bool:
        return await subscribed(redis_server, groups[0]) == [1]

    try:
        member, loner = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("user.1", member)
        await until(first_subscribed, "the first subscription")

        redis_server.kill()
        with pytest.raises(RedisConnectionError):
            await layer.group_send("user.1", {"type": "lost"})
        # A socket that joins a group meanwhile is subscribed once Redis is back.
        latecomer = await layer.new_channel()
        await layer.group_add("user.2", latecomer)
        await redis_server.start()

        assert await asyncio.wait_for(layer.receive(member), 15) == {"type": RESUBSCRIBED}
        assert await asyncio.wait_for(layer.receive(latecomer), 5) == {"type": RESUBSCRIBED}
        assert await subscribed(redis_server, *groups) == [1, 1]
        await layer.group_send("user.1", {"type": "after"})
        await layer.group_send_many([("user.2", {"type": "after"})])
        assert await asyncio.wait_for(layer.receive(member), 5) == {"type": "after"}
        assert await asyncio.wait_for(layer.receive(latecomer), 5) == {"type": "after"}
        with pytest.raises(TimeoutError):  # in no group: no notice
            await asyncio.wait_for(layer.receive(loner), 0.2)
    finally:
        await layer.flush()


async def test_groups_live_on_one_host_each_and_only_those_of_a_restarted_host_are_told(
    redis_server, second_redis_server
):
    """Each group's Redis channel lives on one host, chosen as channels-redis chooses it."""
    servers = [redis_server, second_redis_server]
    layer = RedisPubSubLayer(hosts=[server.url for server in servers])
    by_host = {}
    for n in range(100):
        by_host.setdefault(_host_index(layer._group_channel(f"user.{n}"), 2), f"user.{n}")
        if len(by_host) == 2:
            break
    groups = [by_host[0], by_host[1]]
    names = [layer._group_channel(group) for group in groups]

    async def placed() -> bool:
        return [await subscribed(server, *names) for server in servers] == [[1, 0], [0, 1]]

    try:
        members = [await layer.new_channel() for _ in groups]
        for group, member in zip(groups, members, strict=True):
            await layer.group_add(group, member)
        await until(placed, "each group's subscription on its own host")
        for group, member in zip(groups, members, strict=True):
            await layer.group_send(group, {"type": "x", "group": group})
            assert await asyncio.wait_for(layer.receive(member), 5) == {"type": "x", "group": group}

        second_redis_server.kill()
        await second_redis_server.start()
        assert await asyncio.wait_for(layer.receive(members[1]), 15) == {"type": RESUBSCRIBED}
        await until(placed, "the subscription on the restarted host")
        await layer.group_send_many([(group, {"type": "after"}) for group in groups])
        assert await asyncio.wait_for(layer.receive(members[0]), 5) == {"type": "after"}
        assert await asyncio.wait_for(layer.receive(members[1]), 5) == {"type": "after"}
    finally:
        await layer.flush()
