"""The embedded channel layer keeps InMemoryChannelLayer's semantics without its scans."""

import asyncio
import time

import pytest
from channels.exceptions import ChannelFull

from realtime.layers import RESUBSCRIBED, ChannelQueue, IndexedInMemoryChannelLayer


@pytest.fixture
def layer():
    return IndexedInMemoryChannelLayer(capacity=3, expiry=60)


async def test_group_send_reaches_every_member_and_only_them(layer):
    a, b, c = [await layer.new_channel() for _ in range(3)]
    await layer.group_add("user.1", a)
    await layer.group_add("user.1", b)
    await layer.group_add("user.2", c)
    await layer.group_send("user.1", {"type": "push.event", "n": 1})
    assert await layer.receive(a) == {"type": "push.event", "n": 1}
    assert await layer.receive(b) == {"type": "push.event", "n": 1}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(c), 0.05)


async def test_group_discard_stops_delivery_and_forgets_empty_groups(layer):
    a = await layer.new_channel()
    await layer.group_add("user.1", a)
    await layer.group_discard("user.1", a)
    await layer.group_send("user.1", {"type": "x"})
    assert layer.groups == {}
    assert layer._channel_groups == {}
    assert layer.channels == {}


async def test_a_full_channel_drops_group_messages_but_refuses_direct_sends(layer):
    a = await layer.new_channel()
    await layer.group_add("user.1", a)
    for n in range(5):
        await layer.group_send("user.1", {"type": "x", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send(a, {"type": "x"})
    assert [(await layer.receive(a))["n"] for _ in range(3)] == [0, 1, 2]
    # Once it has room, the channel is told that it lost messages: its consumer re-reads the
    # database (ChatConsumer.layer_resubscribed). Once, however many were lost.
    assert await layer.receive(a) == {"type": RESUBSCRIBED}
    await layer.group_send("user.1", {"type": "x", "n": 9})
    assert await layer.receive(a) == {"type": "x", "n": 9}


async def test_a_channel_whose_message_expired_leaves_its_groups(layer):
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("user.1", a)
    await layer.group_add("user.1", b)
    layer.expiry = -1  # everything sent from now on is already expired
    await layer.send(a, {"type": "x"})
    layer.expiry = 60
    await layer.group_send("user.1", {"type": "y"})
    assert set(layer.groups["user.1"]) == {b}
    assert await layer.receive(b) == {"type": "y"}


async def test_group_membership_expires(layer):
    a = await layer.new_channel()
    await layer.group_add("user.1", a)
    layer.groups["user.1"][a] = time.time() - layer.group_expiry - 1
    await layer.group_send("user.1", {"type": "x"})
    assert "user.1" not in layer.groups


async def test_receivers_get_their_own_top_level_dict(layer):
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", a)
    await layer.group_add("g", b)
    await layer.group_send("g", {"type": "x"})
    first, second = await layer.receive(a), await layer.receive(b)
    first["type"] = "changed"
    assert second["type"] == "x"


async def test_flush_forgets_everything(layer):
    a = await layer.new_channel()
    await layer.group_add("g", a)
    await layer.send(a, {"type": "x"})
    await layer.flush()
    assert (layer.channels, layer.groups, layer._channel_groups) == ({}, {}, {})


async def test_a_readers_queue_is_kept_while_it_reads_and_dropped_when_it_stops(layer):
    a = await layer.new_channel()
    await layer.send(a, {"type": "x"})
    await layer.receive(a)
    queue = layer.channels[a]
    await layer.send(a, {"type": "y"})
    await layer.receive(a)
    assert layer.channels[a] is queue
    reader = asyncio.ensure_future(layer.receive(a))
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert a not in layer.channels


async def test_channel_queue_is_fifo_bounded_and_passes_a_cancelled_wake_up_on():
    queue = ChannelQueue(maxsize=2)
    first, second = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # both readers wait
    queue.put_nowait("a")  # wakes the first reader...
    first.cancel()  # ...which is cancelled before it runs: the second one gets "a"
    assert await asyncio.wait_for(second, 1) == "a"
    queue.put_nowait("b")
    queue.put_nowait("c")
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait("d")
    assert (queue.get_nowait(), await queue.get()) == ("b", "c")
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
