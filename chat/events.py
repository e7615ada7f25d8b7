"""The chat app's server frames (message, sent, delivered, read, receipts, queue_empty, error,
typing), published through realtime.bus or sent by chat.consumers.

Every app builds its own events (contacts.events, keys.events); the list of every server
frame, with its fields, is in docs/ARCHITECTURE.md ("WebSocket protocol"). Builders take
primitives, never model instances, and none of them logs anything (bodies and keys never
reach the log).
"""

from datetime import datetime


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# Routing keys of a published event, read and removed by chat.consumers before the event is sent:
# deliver only to the sockets of this device / of every device but this one.
DEVICE_KEY = "_device"
EXCEPT_DEVICE_KEY = "_except_device"


def message_event(
    *,
    id: int,
    message_id: int,
    client_id: str,
    sender_email: str,
    sender_device: int,
    to_email: str,
    kind: str,
    body: str,
    sent_at: datetime,
) -> dict:
    """One copy of a message (docs/PROTOCOL.md section 17.2): `id` is the copy's (acknowledge
    it), `message_id` the message's (receipts), `to` the conversation's other party for the
    sender's own devices (the recipient itself otherwise)."""
    return {
        "type": "message",
        "id": id,
        "message_id": message_id,
        "client_id": str(client_id),
        "from": sender_email,
        "from_device": sender_device,
        "to": to_email,
        "kind": kind,
        "body": body,
        "sent_at": _timestamp(sent_at),
    }


def group_message_event(
    *,
    id: int,
    message_id: int,
    client_id: str,
    group: str,
    epoch: int,
    sender_email: str,
    sender_device: int,
    body: str,
    key: tuple[str, str] | None,
    sent_at: datetime,
) -> dict:
    """One device's copy of a group message (docs/PROTOCOL.md section 23): the body every
    member device gets, and `key` (kind, body), the sender key distribution for this device,
    when the sender included one."""
    event = {
        "type": "group_message",
        "id": id,
        "message_id": message_id,
        "client_id": str(client_id),
        "group": group,
        "epoch": epoch,
        "from": sender_email,
        "from_device": sender_device,
        "body": body,
        "sent_at": _timestamp(sent_at),
    }
    if key is not None:
        event["key"] = {"kind": key[0], "body": key[1]}
    return event


def group_copy_for_device(event: dict, id: int, key: tuple[str, str] | None, device_id: int) -> dict:
    """One device's copy of a `group_message_event` built once per message: its own id and key
    entry, routed to that device (`for_device`). Building the event once saves a hundred
    timestamps and UUID strings per message to a hundred members."""
    copy = {**event, "id": id, DEVICE_KEY: device_id}
    if key is not None:
        copy["key"] = {"kind": key[0], "body": key[1]}
    return copy


def group_receipts_event(*, receipts: list[tuple[int, int, int, int]]) -> dict:
    """Where group messages stand: (message id, members delivered to, members who read,
    members it was sent to)."""
    return {
        "type": "group_receipts",
        "receipts": [
            {"id": pk, "delivered": delivered, "read": read, "of": of} for pk, delivered, read, of in receipts
        ],
    }


def message_size(event: dict) -> int:
    """The bytes a `message` or `group_message` event counts in a socket's window: the
    envelope's `size` column (its body, and a group copy's key plus the group body)."""
    key = event.get("key")
    return len(event["body"].encode()) + (len(key["body"].encode()) if key else 0)


def for_device(event: dict, device_id: int) -> dict:
    """`event`, to be sent only to the sockets of one device of the user it is published to."""
    return {**event, DEVICE_KEY: device_id}


def except_device(event: dict, device_id: int) -> dict:
    """`event`, to be sent to the sockets of every device of the user but this one."""
    return {**event, EXCEPT_DEVICE_KEY: device_id}


def read_elsewhere_event(*, ids: list[int]) -> dict:
    """To a reader's other devices: these messages were read on another device."""
    return {"type": "read_elsewhere", "ids": ids}


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
    fields: dict | None = None,
) -> dict:
    """A frame the server could not apply: `client_id` names a failed `send`; `frame` ("ack"
    or "read") and `ids` name a failed receipt, whose envelopes were not marked (the client
    sends that frame again); `fields` are the error's own (DomainError.fields: the devices of a
    `device_mismatch`)."""
    event = {"type": "error", "code": code, "detail": detail}
    if client_id is not None:
        event["client_id"] = str(client_id)
    if ids is not None:
        event["frame"] = str(frame)
        event["ids"] = list(ids)
    if retry_after is not None:
        event["retry_after"] = retry_after
    if fields:
        event.update(fields)
    return event


def typing_event(*, sender_email: str, state: str, group: str | None = None) -> dict:
    event = {"type": "typing", "from": sender_email, "state": state}
    if group is not None:
        event["group"] = group
    return event
