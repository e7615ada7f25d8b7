"""The realtime events of the keys app, published through realtime.bus after the commit.

Builders take primitives and log nothing (a key in an event is a public key, but keys never
reach the log). The list of every server frame is in docs/ARCHITECTURE.md ("WebSocket
protocol").
"""


def prekeys_low_event(*, remaining: int) -> dict:
    """To the owner of the one-time prekeys, when a claim left few unused."""
    return {"type": "prekeys_low", "remaining": remaining}


def identity_changed_event(*, email: str, identity_key: str) -> dict:
    """To every contact and pending counterparty of a user whose identity key changed (a new
    device): clients warn and hold messages until the user accepts the new key."""
    return {"type": "identity_changed", "email": email, "identity_key": identity_key}
