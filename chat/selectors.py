"""Reads of the chat app, always scoped to the requesting user."""

from chat import events
from chat.models import Envelope

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def envelopes_pending(*, user_id: int, after: int = 0, limit: int = PAGE_SIZE) -> list[dict]:
    """The user's undelivered envelopes with an id above `after`, oldest first, as `message`
    events (the same shape the socket pushes)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    rows = (
        Envelope.objects.filter(recipient_id=user_id, delivered_at__isnull=True, id__gt=after)
        .order_by("id")
        .values_list("id", "client_id", "sender__email", "kind", "body", "created_at")[:limit]
    )
    return [
        events.message_event(
            id=pk, client_id=client_id, sender_email=sender_email, kind=kind, body=body, sent_at=created_at
        )
        for pk, client_id, sender_email, kind, body, created_at in rows
    ]


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
