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
