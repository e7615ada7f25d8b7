"""Bounded resources per user on the socket: the cap on open sockets, the flow-control window
of unacknowledged envelopes, and the rate limits on `ack`, `read` and `sync` frames."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings

from chat import services
from chat.consumers import CLOSE_TOO_MANY_SOCKETS
from chat.models import Envelope
from chat.tests.helpers import communicator, open_socket, receive, send_frame
from realtime import bus

pytestmark = pytest.mark.django_db(transaction=True)

BODY = "x" * 1000


@sync_to_async
def store(sender, to, count: int, body: str = BODY) -> list[int]:
    """`count` envelopes from sender to `to`, stored through the service (one batch)."""
    requests = [
        services.SendRequest(sender.id, sender.email, to.email, uuid.uuid4(), "message", body) for _ in range(count)
    ]
    results = services.envelopes_send(requests)
    return [result.id for result in results]


@sync_to_async
def undelivered_ids(recipient) -> list[int]:
    return list(
        Envelope.objects.filter(recipient_id=recipient.id, delivered_at=None)
        .order_by("id")
        .values_list("id", flat=True)
    )


BARRIER = {"type": "receipts", "ids": [1]}


@pytest.fixture(autouse=True)
def _barriers_are_not_rate_limited(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "receipts": "10000/1"}


async def frames_until_barrier(socket) -> list[dict]:
    """Every frame the server sent for what happened before: a `receipts` question goes
    last, and since a socket's frames are handled one at a time (a backlog on connect, the
    refill after an ack), its answer comes after everything they sent. A push travels through
    the channel layer in its own time: wait for expected pushes with `pushed` first."""
    await send_frame(socket, BARRIER)
    frames = []
    while (frame := await receive(socket))["type"] != "receipts":
        frames.append(frame)
    return frames


async def pushed(socket, count: int) -> list[int]:
    """The ids of the next `count` frames, which must be `message` frames."""
    frames = [await receive(socket) for _ in range(count)]
    assert [frame["type"] for frame in frames] == ["message"] * count, frames
    return [frame["id"] for frame in frames]


MARKER = {"type": "test_marker"}


async def frames_after_pushes(socket, user) -> list[dict]:
    """Every frame the server sent for the pushes published to `user` so far, and then for the
    socket's own frames (`frames_until_barrier`). `store` returns once its pushes are published;
    a marker published to the user's group after them reaches the socket after them (a channel's
    messages keep their order, through Redis too, and the consumer handles them one at a time),
    so once the marker is read, the consumer has handled every one of those pushes: an absent
    frame is really absent, not late."""
    await get_channel_layer().group_send(bus.user_group(user.id), {"type": bus.PUSH_EVENT, "event": MARKER})
    frames = []
    while (frame := await receive(socket)) != MARKER:
        frames.append(frame)
    return frames + await frames_until_barrier(socket)


def message_ids(frames) -> list[int]:
    return [frame["id"] for frame in frames if frame["type"] == "message"]


# --- the cap on open sockets ------------------------------------------------------------------


async def test_a_socket_over_the_per_user_cap_is_closed_with_4429(alice, bob, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    first, _ = await open_socket(alice)
    second, _ = await open_socket(alice)
    third = communicator(alice)
    connected, _ = await third.connect()
    assert connected
    closed = await third.receive_output()
    assert (closed["type"], closed["code"]) == ("websocket.close", CLOSE_TOO_MANY_SOCKETS)
    await third.disconnect()
    # another user is not affected
    other, _ = await open_socket(bob)
    # closing one frees its place
    await second.disconnect()
    again, _ = await open_socket(alice)
    for socket in (first, again, other):
        await socket.disconnect()


async def test_a_refused_socket_does_not_free_a_place_it_never_had(alice, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 1
    first, _ = await open_socket(alice)
    for _ in range(2):
        refused = communicator(alice)
        await refused.connect()
        assert (await refused.receive_output())["code"] == CLOSE_TOO_MANY_SOCKETS
        await refused.disconnect()
    refused = communicator(alice)
    await refused.connect()
    assert (await refused.receive_output())["code"] == CLOSE_TOO_MANY_SOCKETS
    await refused.disconnect()
    await first.disconnect()


async def test_zero_switches_the_socket_cap_off(alice, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 0
    sockets = [(await open_socket(alice))[0] for _ in range(3)]
    for socket in sockets:
        await socket.disconnect()


@pytest.mark.redis
async def test_the_cap_counts_the_sockets_of_every_process():
    """Two processes are two counters on one Redis: places taken on one count on the other."""
    from realtime.sockets import _RedisCount

    process_a, process_b = _RedisCount(django_settings.REDIS_URL), _RedisCount(django_settings.REDIS_URL)
    user_id = 10**9 + 1
    try:
        assert await process_a.take(user_id, "a1", 2)
        assert await process_b.take(user_id, "b1", 2)
        assert not await process_b.take(user_id, "b2", 2)
        assert not await process_a.take(user_id, "a2", 2)
        await process_a.release(user_id, "a1")
        assert await process_b.take(user_id, "b2", 2)
    finally:
        for process, member in ((process_a, "a1"), (process_b, "b1"), (process_b, "b2")):
            await process.release(user_id, member)
        await process_a._redis.aclose()
        await process_b._redis.aclose()


@pytest.mark.redis
async def test_places_of_a_killed_process_expire_with_their_lease():
    """A killed process releases nothing: its entries are scored with the end of their lease,
    and a lapsed lease no longer counts (the survivor takes the places without any cleanup)."""
    from realtime.sockets import KEY_PREFIX, _RedisCount

    survivor = _RedisCount(django_settings.REDIS_URL)
    user_id = 10**9 + 2
    key = KEY_PREFIX + str(user_id)
    try:
        seconds, _ = await survivor._redis.time()
        # the dead process's two sockets: one lease lapsed a second ago, one still running
        await survivor._redis.zadd(key, {"dead-1": seconds - 1, "dead-2": seconds + 60})
        assert await survivor.take(user_id, "s1", 2)
        assert not await survivor.take(user_id, "s2", 2)
        assert set(await survivor._redis.zrange(key, 0, -1)) == {b"dead-2", b"s1"}
    finally:
        await survivor._redis.delete(key)
        await survivor._redis.aclose()


# --- flow control -----------------------------------------------------------------------------


async def test_a_socket_that_never_acks_gets_at_most_the_window(contacts, settings):
    alice, bob = contacts
    settings.CHAT_UNACKED_WINDOW_BYTES = 3500
    stored = await store(alice, bob, 10)
    socket = communicator(bob)
    await socket.connect()
    frames = await frames_until_barrier(socket)
    assert message_ids(frames) == stored[:3]  # 3 x 1000 bytes fit, a fourth would not
    assert "queue_empty" not in [frame["type"] for frame in frames]
    # a sync does not push past the window either
    await send_frame(socket, {"type": "sync"})
    assert await frames_until_barrier(socket) == []
    await socket.disconnect()


async def test_acks_free_room_and_the_rest_follows_in_order_once(contacts, settings):
    alice, bob = contacts
    settings.CHAT_UNACKED_WINDOW_BYTES = 3500
    stored = await store(alice, bob, 10)
    socket = communicator(bob)
    await socket.connect()
    received = message_ids(await frames_until_barrier(socket))
    assert received == stored[:3]
    # one ack makes room for one more envelope
    await send_frame(socket, {"type": "ack", "ids": received[:1]})
    received += message_ids(await frames_until_barrier(socket))
    assert received == stored[:4]
    while True:
        await send_frame(socket, {"type": "ack", "ids": received[-3:]})
        frames = await frames_until_barrier(socket)
        received += message_ids(frames)
        assert len(received) <= len(stored)
        if frames and frames[-1]["type"] == "queue_empty":
            break
    assert received == stored  # in id order, each once, none lost
    await send_frame(socket, {"type": "ack", "ids": received[-3:]})
    assert await frames_until_barrier(socket) == []
    assert await undelivered_ids(bob) == []
    await socket.disconnect()


async def test_live_pushes_beyond_the_window_wait_in_the_database_and_follow_in_order(contacts, settings):
    alice, bob = contacts
    settings.CHAT_UNACKED_WINDOW_BYTES = 2500
    socket, _ = await open_socket(bob)
    first = await store(alice, bob, 2)
    assert await pushed(socket, 2) == first
    # the window is full: these are stored, and not pushed
    later = await store(alice, bob, 1) + await store(alice, bob, 1) + await store(alice, bob, 1)
    # a small one that would fit must not overtake the ones waiting
    small = await store(alice, bob, 1, body="x")
    assert await frames_after_pushes(socket, bob) == []
    await send_frame(socket, {"type": "ack", "ids": first})
    assert message_ids(await frames_until_barrier(socket)) == later[:2]
    await send_frame(socket, {"type": "ack", "ids": later[:2]})
    frames = await frames_until_barrier(socket)
    assert message_ids(frames) == [later[2], *small]
    assert frames[-1] == {"type": "queue_empty"}
    # the window has room again: new envelopes are pushed at once
    await send_frame(socket, {"type": "ack", "ids": [later[2], *small]})
    assert await frames_until_barrier(socket) == []
    newest = await store(alice, bob, 1)
    assert await pushed(socket, 1) == newest
    await socket.disconnect()


async def test_envelopes_acknowledged_on_another_tab_leave_the_window(contacts, settings):
    """Only one tab acknowledges: the other's window must not stay full of envelopes that
    are delivered already (a full window asks the database when the next push comes)."""
    alice, bob = contacts
    settings.CHAT_UNACKED_WINDOW_BYTES = 2500
    alice_socket, _ = await open_socket(alice)
    acking, silent = (await open_socket(bob))[0], (await open_socket(bob))[0]
    first = await store(alice, bob, 2)
    assert await pushed(acking, 2) == first
    assert await pushed(silent, 2) == first
    await send_frame(acking, {"type": "ack", "ids": first})
    assert await receive(alice_socket) == {"type": "delivered", "ids": first}  # committed
    later = await store(alice, bob, 1)
    assert await pushed(silent, 1) == later
    assert await receive(silent) == {"type": "queue_empty"}  # read from the database: caught up
    assert await pushed(acking, 1) == later
    # a window full of envelopes nobody acknowledged takes nothing more
    more = await store(alice, bob, 2)
    assert await pushed(silent, 1) == more[:1]
    assert await frames_after_pushes(silent, bob) == []
    for socket in (alice_socket, acking, silent):
        await socket.disconnect()


async def test_an_envelope_bigger_than_the_window_still_goes_out_alone(contacts, settings):
    alice, bob = contacts
    settings.CHAT_UNACKED_WINDOW_BYTES = 500
    stored = await store(alice, bob, 2)
    socket = communicator(bob)
    await socket.connect()
    assert message_ids(await frames_until_barrier(socket)) == stored[:1]
    await send_frame(socket, {"type": "ack", "ids": stored[:1]})
    frames = await frames_until_barrier(socket)
    assert message_ids(frames) == stored[1:]
    assert frames[-1] == {"type": "queue_empty"}
    await socket.disconnect()


# --- rate limits on ack, read, sync -----------------------------------------------------------


async def test_ack_frames_are_rate_limited_and_a_limited_ack_marks_nothing(contacts, settings):
    alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ack": "1/60"}
    stored = await store(alice, bob, 2)
    socket, _ = await open_socket(bob, expect_backlog=2)
    await send_frame(socket, {"type": "ack", "ids": stored[:1]})
    await send_frame(socket, {"type": "ack", "ids": stored[1:]})
    error = await receive(socket)
    assert (error["type"], error["code"], error["retry_after"] > 0) == ("error", "rate_limited", True)
    assert await undelivered_ids(bob) == stored[1:]
    await socket.disconnect()


async def test_read_frames_are_rate_limited(contacts, settings):
    alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "read": "1/60"}
    stored = await store(alice, bob, 2)
    socket, _ = await open_socket(bob, expect_backlog=2)
    await send_frame(socket, {"type": "read", "ids": stored[:1]})
    await send_frame(socket, {"type": "read", "ids": stored[1:]})
    assert (await receive(socket))["code"] == "rate_limited"
    assert await undelivered_ids(bob) == stored[1:]
    await socket.disconnect()


async def test_sync_frames_are_rate_limited_per_user(contacts, settings):
    _alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "sync": "2/60"}
    tab1, _ = await open_socket(bob)
    tab2, _ = await open_socket(bob)
    await send_frame(tab1, {"type": "sync"})
    assert await receive(tab1) == {"type": "queue_empty"}
    await send_frame(tab2, {"type": "sync"})
    assert await receive(tab2) == {"type": "queue_empty"}
    await send_frame(tab1, {"type": "sync"})
    assert (await receive(tab1))["code"] == "rate_limited"
    await tab1.disconnect()
    await tab2.disconnect()


def test_default_frame_limits_leave_room_for_a_client_that_acks_every_message():
    """The clients ack each message as it arrives (the Python client one frame per message)
    and the browser sends `sync` every 30 s: the defaults must be far above both."""
    from messenger.ratelimit import parse_limit

    limits = django_settings.RATE_LIMITS
    for scope in ("ack", "read"):
        burst, seconds = parse_limit(limits[scope])
        assert burst >= 1000
        assert burst / seconds >= 100
    burst, seconds = parse_limit(limits["sync"])
    assert burst >= 10
    assert seconds / burst <= 30 / 4
