"""The realtime events of the groups app, published through realtime.bus after the commit.

Builders take primitives and log nothing. A push is a nudge: a client that missed one finds
the group as it is in GET /api/v1/groups and the lines it missed in POST groups/changes.
"""


def group_changed_event(*, group: str, epoch: int, kind: str, actor: str | None, subjects: list[str]) -> dict:
    """To every member after a change of the group's membership (and to the one removed or
    leaving): `kind` is created, added, removed, left or admin."""
    return {
        "type": "group_changed",
        "group": group,
        "epoch": epoch,
        "change": kind,
        "actor": actor,
        "members": subjects,
    }


def group_epoch_event(*, group: str, epoch: int) -> dict:
    """To every member when a member's devices changed: the group's messages now go to another
    set of devices (a sender hands its key to a new device, or replaces it after a removal)."""
    return {"type": "group_epoch", "group": group, "epoch": epoch}
