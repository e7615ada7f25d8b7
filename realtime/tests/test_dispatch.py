"""realtime.dispatch: the consumer message loop (one inbox, no task per message)."""

import asyncio

import pytest
from channels.exceptions import StopConsumer

from realtime.dispatch import _Inbox, dispatch_in_order


def _source(queue: asyncio.Queue):
    return queue.get


async def test_messages_from_both_inputs_are_dispatched_one_at_a_time_in_order():
    frames, pushes = asyncio.Queue(), asyncio.Queue()
    handled, running = [], []

    async def dispatch(message):
        running.append(message)
        assert len(running) == 1, "two handlers ran at once"
        await asyncio.sleep(0)  # a handler that awaits (the database) holds back the next one
        handled.append(message)
        running.remove(message)
        if message == "stop":
            raise StopConsumer()

    for n in range(3):
        frames.put_nowait(f"frame {n}")
        pushes.put_nowait(f"push {n}")
    loop = asyncio.ensure_future(dispatch_in_order([_source(frames), _source(pushes)], dispatch))
    await asyncio.sleep(0.01)
    frames.put_nowait("stop")
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(loop, 1)
    assert [m for m in handled if m.startswith("frame")] == ["frame 0", "frame 1", "frame 2"]
    assert [m for m in handled if m.startswith("push")] == ["push 0", "push 1", "push 2"]
    assert handled[-1] == "stop"


async def test_an_input_that_fails_ends_the_loop_with_its_error_and_stops_the_other_input():
    pushes = asyncio.Queue()
    reads = []

    async def broken():
        raise RuntimeError("layer gone")

    async def tracked():
        reads.append("started")
        try:
            return await pushes.get()
        except asyncio.CancelledError:
            reads.append("cancelled")
            raise

    async def dispatch(message):
        raise AssertionError("nothing to dispatch")

    with pytest.raises(RuntimeError, match="layer gone"):
        await asyncio.wait_for(dispatch_in_order([tracked, broken], dispatch), 1)
    assert reads == ["started", "cancelled"]


async def test_reads_ahead_at_most_one_message_per_input():
    frames = asyncio.Queue()
    for n in range(5):
        frames.put_nowait(n)
    release = asyncio.Event()

    async def dispatch(message):
        await release.wait()
        raise StopConsumer()

    loop = asyncio.ensure_future(dispatch_in_order([_source(frames)], dispatch))
    await asyncio.sleep(0.01)
    # One message handled, one in the inbox, one held by the input's reader: two left queued.
    assert frames.qsize() == 2
    release.set()
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(loop, 1)


async def test_inbox_writer_cancelled_after_being_let_in_passes_its_turn_on():
    inbox = _Inbox()
    await inbox.put("first")
    second = asyncio.ensure_future(inbox.put("second"))
    third = asyncio.ensure_future(inbox.put("third"))
    await asyncio.sleep(0)  # both writers wait for the slot
    assert await inbox.get() == "first"  # lets "second" in...
    second.cancel()  # ...which is cancelled before it runs
    await asyncio.sleep(0)
    assert await asyncio.wait_for(inbox.get(), 1) == "third"
    assert second.cancelled()
    await third
