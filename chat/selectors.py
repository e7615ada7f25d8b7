"""Reads of the chat app, always scoped to the requesting user."""

from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Q

from chat import events, group_messages
from chat.models import Envelope

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def _queue(*, user_id: int, device_id: int):
    """The undelivered copies addressed to one device of the user."""
    return Envelope.objects.filter(recipient_id=user_id, recipient_device=device_id, delivered_at__isnull=True)


def envelopes_pending(
    *, user_id: int, device_id: int = 1, after: int = 0, limit: int = PAGE_SIZE, ids: Collection[int] | None = None
) -> list[dict]:
    """The undelivered copies for one device of the user with an id above `after` (and in
    `ids`, if given), oldest first, as `message` events (the same shape the socket pushes)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    rows = _queue(user_id=user_id, device_id=device_id).filter(id__gt=after)
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    columns = (
        "id",
        "message_id",
        "client_id",
        "sender__email",
        "sender_device",
        "recipient__email",
        "peer__email",
        "kind",
        "body",
        "created_at",
        "group__uid",
    )
    found = list(rows.order_by("id").values_list(*columns)[:limit])
    groups = group_messages.bodies_of({row[1] or row[0] for row in found if row[10] is not None})
    return [_pending_event(row, groups) for row in found]


def _pending_event(row: tuple, groups: dict[int, tuple[str, int]]) -> dict:
    pk, message_id, client_id, sender_email, sender_device, recipient_email, peer, kind, body, sent_at, group = row
    if group is None:
        return events.message_event(
            id=pk,
            message_id=message_id or pk,
            client_id=client_id,
            sender_email=sender_email,
            sender_device=sender_device,
            to_email=peer or recipient_email,
            kind=kind,
            body=body,
            sent_at=sent_at,
        )
    group_body, epoch = groups.get(message_id or pk, ("", 0))
    return events.group_message_event(
        id=pk,
        message_id=message_id or pk,
        client_id=client_id,
        group=str(group),
        epoch=epoch,
        sender_email=sender_email,
        sender_device=sender_device,
        body=group_body,
        key=(kind, body) if body else None,
        sent_at=sent_at,
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
    a full window costs a small read and no body at all."""
    rows = list(
        _queue(user_id=user_id, device_id=device_id)
        .filter(id__gt=after)
        .order_by("id")
        .values_list("id", "size")[:PAGE_SIZE]
    )
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
    ids = sorted(ids)
    found: set[int] = set()
    for start in range(0, len(ids), MAX_PAGE_SIZE):
        found.update(
            _queue(user_id=user_id, device_id=device_id)
            .filter(id__in=ids[start : start + MAX_PAGE_SIZE])
            .values_list("id", flat=True)
        )
    return found


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
