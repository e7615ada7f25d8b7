"""The realtime events of the contacts app, published through realtime.bus after the commit.

Builders take primitives and log nothing (emails never reach the log). The list of every
server frame is in docs/ARCHITECTURE.md ("WebSocket protocol").
"""


def contact_request_event(*, request_id: int, from_email: str) -> dict:
    """To the addressee of a new contact request."""
    return {"type": "contact_request", "id": request_id, "from": from_email}


def contact_request_answered_event(*, request_id: int, by_email: str, accepted: bool) -> dict:
    """To the requester, once the addressee accepted. (A rejection is never announced: to
    its requester a rejected request looks pending, as in Signal.)"""
    return {"type": "contact_request_answered", "id": request_id, "by": by_email, "accepted": accepted}


def contact_removed_event(*, email: str) -> dict:
    """To both sides of a removed contact (`email` is the contact who is gone from the
    receiver's list)."""
    return {"type": "contact_removed", "email": email}
