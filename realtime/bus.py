"""The event bus: group naming and the one way to publish a realtime event.

Every event is published only after the surrounding transaction commits (like Zulip's
`send_event_on_commit`): a client must never hear of a row that a rollback then erases. The
channel layer is at-most-once, so an event is only a nudge; clients resync from the API.

The bus is neutral: apps build their payloads (chat/events.py) and publish them here; the
chat consumer forwards them to the sockets.
"""

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

PUSH_EVENT = "push.event"
# Pushes to this user were given up (realtime.batching.Pushes): its sockets re-read their backlog.
BACKLOG_REREAD = "backlog.reread"


def user_group(user_id: int) -> str:
    """The channel-layer group holding every open socket of one user."""
    return f"user.{user_id}"


# --- publishing ------------------------------------------------------------------------

# Set by `collected_events()`: on commit, events are appended here instead of being sent from
# the database thread (the consumer sends them from the event loop, saving a thread hop).
_collector: ContextVar[list | None] = ContextVar("realtime_bus_collector", default=None)


def _send_now(user_ids: list[int], message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for user_id in user_ids:
        async_to_sync(layer.group_send)(user_group(user_id), message)


def _publish_on_commit(user_ids: Iterable[int], message: dict) -> None:
    ids = list(user_ids)
    collector = _collector.get()
    if collector is not None:
        transaction.on_commit(lambda: collector.append((ids, message)))
    else:
        transaction.on_commit(lambda: _send_now(ids, message))


def publish_on_commit(user_ids: Iterable[int], event: dict) -> None:
    """Push `event` (a JSON-able dict with a "type") to every open socket of these users
    once the current transaction commits (immediately when there is none)."""
    _publish_on_commit(user_ids, {"type": PUSH_EVENT, "event": event})


def message_on_commit(user_ids: Iterable[int], message: dict) -> None:
    """Send a channel-layer `message` (a dict whose "type" names the consumer method that
    handles it, e.g. accounts.sessions' "session.revoked") to every open socket of these
    users once the current transaction commits. For what a socket does, not what it tells
    its client (that is `publish_on_commit`)."""
    _publish_on_commit(user_ids, message)


@contextlib.contextmanager
def collected_events() -> Iterator[list[tuple[list[int], dict]]]:
    """Within this block, events published on commit are collected as (user_ids, message)
    instead of sent; the caller passes them to `send_collected` after the block (and so after
    the commit). Used by the consumer around its one database call per frame."""
    events: list[tuple[list[int], dict]] = []
    token = _collector.set(events)
    try:
        yield events
    finally:
        _collector.reset(token)


async def send_collected(layer, events: list[tuple[list[int], dict]]) -> None:
    send_many = getattr(layer, "group_send_many", None)  # realtime.redis_layer: one round trip
    if send_many is not None:
        await send_many([(user_group(user_id), message) for user_ids, message in events for user_id in user_ids])
        return
    for user_ids, message in events:
        for user_id in user_ids:
            await layer.group_send(user_group(user_id), message)
