"""Reads of the chat app, always scoped to the requesting user."""

from collections.abc import Collection
from dataclasses import dataclass

from chat import events
from chat.models import Envelope

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def envelopes_pending(
    *, user_id: int, after: int = 0, limit: int = PAGE_SIZE, ids: Collection[int] | None = None
) -> list[dict]:
    """The user's undelivered envelopes with an id above `after` (and in `ids`, if given),
    oldest first, as `message` events (the same shape the socket pushes)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    rows = Envelope.objects.filter(recipient_id=user_id, delivered_at__isnull=True, id__gt=after)
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    rows = rows.order_by("id").values_list("id", "client_id", "sender__email", "kind", "body", "created_at")[:limit]
    return [
        events.message_event(
            id=pk, client_id=client_id, sender_email=sender_email, kind=kind, body=body, sent_at=created_at
        )
        for pk, client_id, sender_email, kind, body, created_at in rows
    ]


@dataclass(frozen=True)
class PendingWindow:
    events: list[dict]  # `message` events, oldest first
    cursor: int  # every undelivered id up to here is in `events` or was in `skip`
    drained: bool  # nothing undelivered above `cursor`
    size: dict[int, int]  # body bytes of each envelope in `events`


def envelopes_pending_within(
    *, user_id: int, after: int, room: int, skip: Collection[int] = (), at_least_one: bool = False
) -> PendingWindow:
    """The user's undelivered envelopes above `after`, oldest first, as far as their bodies
    fit in `room` bytes (with `at_least_one`, the first one even if it alone is bigger), not
    counting the ids in `skip` (already sent on this socket, not acknowledged yet).

    The socket's flow control (chat.consumers): a client that does not read must not make
    the server hold its whole backlog in memory. The ids and sizes are read first (from the
    queue index, one page), and the bodies only of the envelopes that fit, so a socket with
    a full window costs a small read and no body at all."""
    rows = list(
        Envelope.objects.filter(recipient_id=user_id, delivered_at__isnull=True, id__gt=after)
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
    page = envelopes_pending(user_id=user_id, after=after, limit=MAX_PAGE_SIZE, ids=chosen) if chosen else []
    return PendingWindow(events=page, cursor=cursor, drained=not full and len(rows) < PAGE_SIZE, size=chosen)


def envelopes_undelivered_among(*, user_id: int, ids: Collection[int]) -> set[int]:
    """Which of `ids` are envelopes to the user that are still undelivered (the others were
    acknowledged on another socket of the user, or deleted at the end of retention)."""
    ids = sorted(ids)
    found: set[int] = set()
    for start in range(0, len(ids), MAX_PAGE_SIZE):
        found.update(
            Envelope.objects.filter(
                recipient_id=user_id, delivered_at__isnull=True, id__in=ids[start : start + MAX_PAGE_SIZE]
            ).values_list("id", flat=True)
        )
    return found


def envelope_receipts(*, user_id: int, ids: list[int]) -> dict:
    """Where envelopes the user SENT stand: a `receipts` event with the ids now `delivered`
    (not yet read), `read`, and `unknown`.

    Receipt pushes are at-most-once like every push: a sender who was offline, or whose
    process died, when the recipient acknowledged never hears it. The sender's client asks
    again with the ids it still waits on (on every connect) and gets the current state; the
    receipt columns of the envelope row are the truth, so nothing new is stored for this.

    Only the user's own sent envelopes are answered. An id of anyone else's envelope, and an
    id that no longer exists (an undelivered envelope deleted at the end of retention), are
    both `unknown`: the answer tells nothing about other people's mail.
    """
    rows = Envelope.objects.filter(sender_id=user_id, id__in=ids).values_list("id", "delivered_at", "read_at")
    delivered, read, found = [], [], set()
    for pk, delivered_at, read_at in rows:
        found.add(pk)
        if read_at is not None:
            read.append(pk)
        elif delivered_at is not None:
            delivered.append(pk)
    unknown = [pk for pk in ids if pk not in found]
    return events.receipts_event(delivered=sorted(delivered), read=sorted(read), unknown=sorted(unknown))
