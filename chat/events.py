"""Every payload the server pushes; they are published through realtime.bus.

All server frames are built here, so the WebSocket protocol can be read in one place:

    message                   id, client_id, from, kind, body, sent_at
    sent                      client_id, id            (to the sender's socket that sent it)
    delivered / read          ids                      (to every socket of the sender)
    receipts                  delivered, read, unknown (to the socket that asked, see below)
    queue_empty                                        (after the backlog: connect, sync, re-read)
    error                     code, detail [, client_id | frame + ids, retry_after]
    typing                    from, state
    contact_request           id, from
    contact_request_answered  id, by, accepted
    contact_removed           email
    prekeys_low               remaining
    identity_changed          email

Builders take primitives, never model instances, so any app can call them without importing
chat models; none of them logs anything (bodies and keys never reach the log).
"""

from datetime import datetime

# --- payloads: chat ---------------------------------------------------------------------


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def message_event(*, id: int, client_id: str, sender_email: str, kind: str, body: str, sent_at: datetime) -> dict:
    return {
        "type": "message",
        "id": id,
        "client_id": str(client_id),
        "from": sender_email,
        "kind": kind,
        "body": body,
        "sent_at": _timestamp(sent_at),
    }


def sent_event(*, client_id: str, id: int) -> dict:
    return {"type": "sent", "client_id": str(client_id), "id": id}


def delivered_event(*, ids: list[int]) -> dict:
    return {"type": "delivered", "ids": ids}


def read_event(*, ids: list[int]) -> dict:
    return {"type": "read", "ids": ids}


def receipts_event(*, delivered: list[int], read: list[int], unknown: list[int]) -> dict:
    """The answer to a sender's `receipts` question (chat.selectors.envelope_receipts)."""
    return {"type": "receipts", "delivered": delivered, "read": read, "unknown": unknown}


def queue_empty_event() -> dict:
    return {"type": "queue_empty"}


def error_event(
    *,
    code: str,
    detail: str,
    client_id: str | None = None,
    frame: str | None = None,
    ids: list[int] | None = None,
    retry_after: int | None = None,
) -> dict:
    """A frame the server could not apply: `client_id` names a failed `send`; `frame` ("ack"
    or "read") and `ids` name a failed receipt, whose envelopes were not marked (the client
    sends that frame again)."""
    event = {"type": "error", "code": code, "detail": detail}
    if client_id is not None:
        event["client_id"] = str(client_id)
    if ids is not None:
        event["frame"] = str(frame)
        event["ids"] = list(ids)
    if retry_after is not None:
        event["retry_after"] = retry_after
    return event


def typing_event(*, sender_email: str, state: str) -> dict:
    return {"type": "typing", "from": sender_email, "state": state}


# --- payloads: other apps ----------------------------------------------------------------


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


def prekeys_low_event(*, remaining: int) -> dict:
    """To the owner of the one-time prekeys, when a claim left few unused."""
    return {"type": "prekeys_low", "remaining": remaining}


def identity_changed_event(*, email: str, identity_key: str) -> dict:
    """To every contact and pending counterparty of a user whose identity key changed (a new
    device): clients warn and hold messages until the user accepts the new key."""
    return {"type": "identity_changed", "email": email, "identity_key": identity_key}
