"""Realtime events: group names and payload builders, and the one way to publish them.

Every event is published only after the surrounding transaction commits (like Zulip's
`send_event_on_commit`): a client must never hear of a row that a rollback then erases. The
channel layer is at-most-once, so an event is only a nudge; clients resync from the API.
"""

from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def user_group(user_id: int) -> str:
    """The channel-layer group holding every open socket of one user."""
    return f"user.{user_id}"


def _send_now(user_ids: list[int], message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for user_id in user_ids:
        async_to_sync(layer.group_send)(user_group(user_id), message)


def publish_on_commit(user_ids: Iterable[int], event: dict) -> None:
    """Push `event` (a JSON-able dict with a "type") to every open socket of these users
    once the current transaction commits (immediately when there is none)."""
    ids = list(user_ids)
    transaction.on_commit(lambda: _send_now(ids, {"type": "push.event", "event": event}))


def session_revoked_publish(*, user_id: int) -> None:
    """Close every socket of a user (logout, deactivation, new device)."""
    ids = [user_id]
    transaction.on_commit(lambda: _send_now(ids, {"type": "session.revoked"}))
