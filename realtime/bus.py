"""The event bus: group naming and the one way to publish a realtime event.

Every event is published only after the surrounding transaction commits (like Zulip's
`send_event_on_commit`): a client must never hear of a row that a rollback then erases. The
channel layer is at-most-once, so an event is only a nudge; clients resync from the API.

The bus is neutral: each app builds its own payloads (chat/events.py, contacts/events.py,
keys/events.py) and publishes them here; the chat consumer forwards them to the sockets.

Two ways to reach the commit, one for each kind of caller:
- in Django's transactions (HTTP views, management commands, a service run alone), an event
  waits in `transaction.on_commit` and is sent from the committing thread;
- inside a batch of the delivery engine (realtime.batching), events go straight into the
  batch's list (`collecting`). The engine runs the transaction itself: it sends that list
  from the event loop after its own commit succeeded, and drops it when the batch is rolled
  back (realtime.db explains why the batch does not use Django's commit hooks).
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

# (user ids, channel-layer message), as collected in a batch and sent after its commit.
Collected = list[tuple[list[int], dict]]


def user_group(user_id: int) -> str:
    """The channel-layer group holding every open socket of one user."""
    return f"user.{user_id}"


# --- publishing ------------------------------------------------------------------------

# The events of the engine's batch running in this thread, if any (see `collecting`).
_batch_events: ContextVar[Collected | None] = ContextVar("realtime_bus_batch_events", default=None)


def _send_now(user_ids: list[int], message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for user_id in user_ids:
        async_to_sync(layer.group_send)(user_group(user_id), message)


def _publish_on_commit(user_ids: Iterable[int], message: dict) -> None:
    ids = list(user_ids)
    batch = _batch_events.get()
    if batch is not None:
        batch.append((ids, message))
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
def collecting(events: Collected) -> Iterator[None]:
    """For the delivery engine only (realtime.batching), around one batch transaction: events
    published in the block are appended to `events`, for the engine to send after its commit
    with `send_collected` (or to drop on rollback)."""
    token = _batch_events.set(events)
    try:
        yield
    finally:
        _batch_events.reset(token)


async def send_collected(layer, events: Collected) -> None:
    send_many = getattr(layer, "group_send_many", None)  # realtime.redis_layer: one round trip
    if send_many is not None:
        await send_many([(user_group(user_id), message) for user_ids, message in events for user_id in user_ids])
        return
    for user_ids, message in events:
        for user_id in user_ids:
            await layer.group_send(user_group(user_id), message)
