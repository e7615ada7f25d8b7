"""realtime.redis_layer against a real Redis: channels' layer interface, `group_send_many`,
capacity, channels-redis' wire format, and the notice after a cut subscription is back.

Two layer objects in one test stand for two processes: each has its own connections,
subscriptions and channels. A subscription reaches Redis after `group_add` returns, so tests
wait for Redis to report it (`PUBSUB NUMSUB`) before they publish.
"""

import asyncio
import time

import msgpack
import pytest
from channels.exceptions import ChannelFull
from redis import asyncio as aioredis

from realtime.layers import RESUBSCRIBED, ChannelQueue
from realtime.redis_layer import RedisPubSubLayer
from realtime.tests.helpers import until

pytestmark = pytest.mark.redis


async def subscribers(admin, name: str) -> int:
    return dict(await admin.pubsub_numsub(name))[name.encode()]


async def subscribers_at_least(admin, name: str, count: int) -> bool:
    return await subscribers(admin, name) >= count


async def no_subscriber(admin, name: str) -> bool:
    return await subscribers(admin, name) == 0


async def numpat_at_least(admin, count: int) -> bool:
    return await admin.pubsub_numpat() >= count


async def joined(admin, layer, group: str, *channels: str) -> None:
    for channel in channels:
        await layer.group_add(group, channel)
    name = layer._group_channel(group)
    await until(lambda: subscribers_at_least(admin, name, 1), f"the subscription to {group}")


async def nothing_for(layer, channel: str) -> bool:
    """True when nothing is waiting for `channel` (the pending read is cancelled, which makes
    the layer forget the channel: call it last for that channel)."""
    try:
        await asyncio.wait_for(layer.receive(channel), 0.2)
    except TimeoutError:
        return True
    return False


@pytest.fixture
def prefix():
    return f"test{time.monotonic_ns()}"


@pytest.fixture
async def admin(settings):
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def make_layer(settings, prefix):
    made = []

    def make(**config):
        layer = RedisPubSubLayer(hosts=[settings.REDIS_URL], prefix=prefix, **config)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.flush()


async def test_send_reaches_a_channel_of_another_process_and_one_of_its_own(admin, make_layer):
    patterns = await admin.pubsub_numpat()
    here, there = make_layer(), make_layer()
    mine, theirs = await here.new_channel(), await there.new_channel()
    await until(lambda: numpat_at_least(admin, patterns + 2), "both processes' channel patterns")
    await here.send(theirs, {"type": "x", "n": 1})
    await here.send(mine, {"type": "x", "n": 2})
    assert await asyncio.wait_for(there.receive(theirs), 5) == {"type": "x", "n": 1}
    assert await asyncio.wait_for(here.receive(mine), 5) == {"type": "x", "n": 2}


async def test_group_send_reaches_every_member_in_every_process_and_only_them(admin, make_layer):
    here, there = make_layer(), make_layer()
    a, b, outsider = await here.new_channel(), await here.new_channel(), await here.new_channel()
    c = await there.new_channel()
    await joined(admin, here, "user.1", a, b)
    await joined(admin, there, "user.1", c)
    await until(lambda: subscribers_at_least(admin, here._group_channel("user.1"), 2), "both processes")
    await here.group_send("user.1", {"type": "push.event", "n": 1})
    assert type(here._here().channels[a]) is ChannelQueue  # the light queue, per socket
    for layer, channel in ((here, a), (here, b), (there, c)):
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "push.event", "n": 1}
    assert await nothing_for(here, outsider)


async def test_a_process_subscribes_once_per_group_whatever_its_members(admin, make_layer):
    layer = make_layer()
    members = [await layer.new_channel() for _ in range(3)]
    await joined(admin, layer, "user.1", *members)
    name = layer._group_channel("user.1")
    assert await subscribers(admin, name) == 1
    assert await admin.pubsub_numpat() >= 1  # one pattern for every channel of the process
    for channel in members[:2]:
        await layer.group_discard("user.1", channel)
    assert await subscribers(admin, name) == 1
    await layer.group_discard("user.1", members[2])
    await until(lambda: no_subscriber(admin, name), "the group's unsubscription")


async def test_group_discard_stops_delivery_to_that_channel_only(admin, make_layer):
    layer = make_layer()
    stays, leaves = await layer.new_channel(), await layer.new_channel()
    await joined(admin, layer, "user.1", stays, leaves)
    await layer.group_discard("user.1", leaves)
    await layer.group_send("user.1", {"type": "x"})
    assert await asyncio.wait_for(layer.receive(stays), 5) == {"type": "x"}
    assert await nothing_for(layer, leaves)


async def test_group_send_many_delivers_in_order(admin, make_layer):
    layer = make_layer()
    a, b = await layer.new_channel(), await layer.new_channel()
    await joined(admin, layer, "user.1", a)
    await joined(admin, layer, "user.2", b)
    await layer.group_send_many([("user.1", {"type": "x", "n": n}) for n in range(5)] + [("user.2", {"type": "y"})])
    assert [await asyncio.wait_for(layer.receive(a), 5) for _ in range(5)] == [{"type": "x", "n": n} for n in range(5)]
    assert await asyncio.wait_for(layer.receive(b), 5) == {"type": "y"}


async def test_a_full_channel_drops_group_messages_and_refuses_direct_sends(admin, make_layer):
    layer = make_layer(capacity=2)
    a, b = await layer.new_channel(), await layer.new_channel()
    await joined(admin, layer, "user.1", a, b)
    await layer.group_send_many([("user.1", {"type": "x", "n": n}) for n in range(4)])
    # Each message reaches a and b in one step: once b has 0 and 1, a holds them too.
    assert [(await asyncio.wait_for(layer.receive(b), 5))["n"] for _ in range(2)] == [0, 1]
    with pytest.raises(ChannelFull):
        await layer.send(a, {"type": "direct"})
    assert [(await layer.receive(a))["n"] for _ in range(2)] == [0, 1]
    # Each channel that lost messages is told once it has room (its consumer re-reads them).
    assert await asyncio.wait_for(layer.receive(a), 5) == {"type": RESUBSCRIBED}
    assert await asyncio.wait_for(layer.receive(b), 5) == {"type": RESUBSCRIBED}


async def test_the_default_capacity_is_unbounded_as_with_channels_redis(admin, make_layer):
    layer = make_layer()
    a = await layer.new_channel()
    await joined(admin, layer, "user.1", a)
    await layer.group_send_many([("user.1", {"type": "x", "n": n}) for n in range(150)])
    assert [(await asyncio.wait_for(layer.receive(a), 5))["n"] for _ in range(150)] == list(range(150))


async def test_messages_are_channels_redis_msgpack_on_its_group_channel_names(admin, make_layer, prefix):
    """What a process running channels-redis' RedisPubSubChannelLayer publishes is received,
    and what this layer publishes is what that one would."""
    layer = make_layer()
    a = await layer.new_channel()
    await joined(admin, layer, "user.1", a)
    await admin.publish(f"{prefix}__group__user.1", msgpack.packb({"type": "old", "ids": [1, 2]}))
    assert await asyncio.wait_for(layer.receive(a), 5) == {"type": "old", "ids": [1, 2]}

    listener = admin.pubsub()
    await listener.subscribe(f"{prefix}__group__user.2")
    try:
        assert (await listener.get_message(timeout=5))["type"] == "subscribe"
        await layer.group_send("user.2", {"type": "new", "body": "é"})
        message = await listener.get_message(timeout=5)
        assert msgpack.unpackb(message["data"]) == {"type": "new", "body": "é"}
    finally:
        await listener.aclose()


async def test_receive_subscribes_a_named_channel_and_cancelling_it_forgets_the_channel(admin, make_layer, prefix):
    layer = make_layer()
    name = f"{prefix}worker"
    reader = asyncio.ensure_future(layer.receive(name))
    await until(lambda: subscribers_at_least(admin, name, 1), "the named channel's subscription")
    await make_layer().send(name, {"type": "job"})
    assert await asyncio.wait_for(reader, 5) == {"type": "job"}
    reader = asyncio.ensure_future(layer.receive(name))
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await until(lambda: no_subscriber(admin, name), "the named channel's unsubscription")


async def test_group_add_takes_only_a_channel_of_this_process(make_layer):
    here, there = make_layer(), make_layer()
    with pytest.raises(RuntimeError):
        await here.group_add("user.1", await there.new_channel())


async def test_flush_forgets_channels_and_groups_and_the_layer_works_after(admin, make_layer):
    layer = make_layer()
    a = await layer.new_channel()
    await joined(admin, layer, "user.1", a)
    await layer.flush()
    await until(lambda: no_subscriber(admin, layer._group_channel("user.1")), "the flush to close the subscriber")
    b = await layer.new_channel()
    await joined(admin, layer, "user.1", b)
    await layer.group_send("user.1", {"type": "x"})
    assert await asyncio.wait_for(layer.receive(b), 5) == {"type": "x"}


async def test_group_members_are_told_when_a_cut_subscription_is_back(admin, make_layer):
    """Redis cuts the pub/sub connection (CLIENT KILL): the layer connects again and
    subscribes again, and once Redis confirms it every local member of a group gets
    RESUBSCRIBED (what was published in between is lost); a channel in no group gets nothing."""
    layer = make_layer()
    member, loner = await layer.new_channel(), await layer.new_channel()
    await joined(admin, layer, "user.1", member)

    assert await admin.client_kill_filter(_type="pubsub", skipme=True) >= 1
    assert await asyncio.wait_for(layer.receive(member), 10) == {"type": RESUBSCRIBED}
    assert await subscribers(admin, layer._group_channel("user.1")) == 1
    await layer.group_send("user.1", {"type": "after"})
    assert await asyncio.wait_for(layer.receive(member), 5) == {"type": "after"}
    assert await nothing_for(layer, loner)
