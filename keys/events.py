"""The realtime events of the keys app, published through realtime.bus after the commit.

Builders take primitives and log nothing (a key in an event is a public key, but keys never
reach the log). The list of every server frame is in docs/ARCHITECTURE.md ("WebSocket
protocol").
"""


def prekeys_low_event(*, device_id: int, remaining: int) -> dict:
    """To the owner of the one-time prekeys, when a claim left few unused on one device (its
    other devices ignore it)."""
    return {"type": "prekeys_low", "device_id": device_id, "remaining": remaining}


def devices_changed_event(*, email: str) -> dict:
    """To an account's own sockets and its contacts, when a device was added or removed: a
    quiet notice, never a safety-number change (docs/PROTOCOL.md section 19)."""
    return {"type": "devices_changed", "email": email}


def identity_changed_event(*, email: str, identity_key: str) -> dict:
    """To every contact and pending counterparty of a user whose identity key changed (a new
    device): clients warn and hold messages until the user accepts the new key."""
    return {"type": "identity_changed", "email": email, "identity_key": identity_key}
