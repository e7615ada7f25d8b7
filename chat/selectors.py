"""Reads of the chat app, always scoped to the requesting user."""

from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Q

from chat import events, sql
from chat.models import Envelope

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def envelopes_pending(
    *, user_id: int, device_id: int = 1, after: int = 0, limit: int = PAGE_SIZE, ids: Collection[int] | None = None
) -> list[dict]:
    """The undelivered copies for one device of the user with an id above `after` (and in
    `ids`, if given), oldest first, as `message` events (the same shape the socket pushes)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    rows = sql.queue_rows(
        user_id=user_id, device_id=device_id, after=after, limit=limit, ids=None if ids is None else sorted(ids)
    )
    return [_pending_event(row) for row in rows]


def _pending_event(row: sql.PendingRow) -> dict:
    if row.group_uid is None:
        return events.message_event(
            id=row.id,
            message_id=row.message_id or row.id,
            client_id=row.client_id,
            sender_email=row.sender_email,
            sender_device=row.sender_device,
            to_email=row.peer_email or row.recipient_email,
            kind=row.kind,
            body=row.body,
            sent_at=row.created_at,
        )
    return events.group_message_event(
        id=row.id,
        message_id=row.message_id or row.id,
        client_id=row.client_id,
        group=str(row.group_uid),
        epoch=row.group_epoch or 0,
        sender_email=row.sender_email,
        sender_device=row.sender_device,
        body=row.group_body or "",
        key=(row.kind, row.body) if row.body else None,
        sent_at=row.created_at,
    )


@dataclass(frozen=True)
class PendingWindow:
    events: list[dict]  # `message` events, oldest first
    cursor: int  # every undelivered id up to here is in `events` or was in `skip`
    drained: bool  # nothing undelivered above `cursor`
    size: dict[int, int]  # body bytes of each envelope in `events`


def envelopes_pending_within(
    *,
    user_id: int,
    device_id: int = 1,
    after: int,
    room: int,
    skip: Collection[int] = (),
    at_least_one: bool = False,
) -> PendingWindow:
    """The user's undelivered envelopes above `after`, oldest first, as far as their bodies
    fit in `room` bytes (with `at_least_one`, the first one even if it alone is bigger), not
    counting the ids in `skip` (already sent on this socket, not acknowledged yet).

    The socket's flow control (chat.consumers): a client that does not read must not make
    the server hold its whole backlog in memory. The ids and sizes are read first (from the
    queue index, one page), and the bodies only of the envelopes that fit, so a socket with
    a full window costs a small read and no body at all. Both reads are chat.sql's: a socket
    that fell behind (a burst of group messages) reads its backlog page after page."""
    rows = sql.queue_sizes(user_id=user_id, device_id=device_id, after=after, limit=PAGE_SIZE)
    chosen: dict[int, int] = {}
    cursor, total, full = after, 0, False
    for pk, size in rows:
        if pk not in skip:
            if total + size > room and not (at_least_one and not chosen):
                full = True
                break
            chosen[pk] = size
            total += size
        cursor = pk
    page = (
        envelopes_pending(user_id=user_id, device_id=device_id, after=after, limit=MAX_PAGE_SIZE, ids=chosen)
        if chosen
        else []
    )
    return PendingWindow(events=page, cursor=cursor, drained=not full and len(rows) < PAGE_SIZE, size=chosen)


def envelopes_undelivered_among(*, user_id: int, device_id: int = 1, ids: Collection[int]) -> set[int]:
    """Which of `ids` are copies to this device of the user that are still undelivered (the
    others were acknowledged on another socket of the device, or deleted at the end of
    retention or with their device)."""
    return sql.queue_among(user_id=user_id, device_id=device_id, ids=list(ids))


def envelope_receipts(*, user_id: int, ids: list[int]) -> dict:
    """Where messages the user SENT stand: a `receipts` event with the message ids now
    `delivered` (not yet read), `read`, and `unknown`. A message is delivered when any
    recipient device acknowledged its copy, read when any read it (`own` copies do not count).
    Messages the user RECEIVED are answered too, for the read state of the user's devices
    (docs/PROTOCOL.md section 17.3): their ids are `read` when any of the user's devices
    marked its copy read, else `delivered`.

    Receipt pushes are at-most-once like every push: a sender who was offline, or whose
    process died, when the recipient acknowledged never hears it. The sender's client asks
    again with the ids it still waits on (on every connect) and gets the current state; the
    receipt columns of the envelope row are the truth, so nothing new is stored for this.

    Only the user's own sent envelopes are answered. An id of anyone else's envelope, and an
    id that no longer exists (an undelivered envelope deleted at the end of retention), are
    both `unknown`: the answer tells nothing about other people's mail.
    """
    # By the primary key and the message_id index: a copy is either a message's first (its id
    # is the message id) or names it.
    copies = (
        Envelope.objects.filter(Q(id__in=ids) | Q(message_id__in=ids), peer__isnull=True)
        .filter(Q(sender_id=user_id) | Q(recipient_id=user_id))
        .values_list("id", "message_id", "delivered_at", "read_at")
    )
    wanted = set(ids)
    state: dict[int, int] = {}  # message id -> 0 sent, 1 delivered, 2 read (the best of its copies)
    for pk, message_id, delivered_at, read_at in copies:
        message_id = message_id or pk
        if message_id not in wanted:
            continue
        seen = 2 if read_at is not None else 1 if delivered_at is not None else 0
        state[message_id] = max(state.get(message_id, 0), seen)
    delivered = sorted(pk for pk, seen in state.items() if seen == 1)
    read = sorted(pk for pk, seen in state.items() if seen == 2)
    unknown = sorted(pk for pk in ids if pk not in state)
    return events.receipts_event(delivered=delivered, read=read, unknown=unknown)
