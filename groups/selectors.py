"""Reads of groups, always from one member's point of view: a group someone is not a member of
does not exist for them (`group_for_member` answers None, the views 404).

The keys app asks `co_member_by_email` ("may these two exchange keys although they are not
contacts?"): members of one group hand each other their sender keys over pairwise sessions
(docs/PROTOCOL.md section 22).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count

from accounts.models import Device, User
from accounts.selectors import user_by_email
from groups.models import Group, GroupChange, Membership

CHANGES_PAGE_MAX = 500


@dataclass(frozen=True)
class Member:
    email: str
    role: str
    joined_at: datetime
    devices: list[int]  # active device ids, ascending


@dataclass(frozen=True)
class GroupView:
    id: str
    epoch: int
    role: str  # the caller's
    created_at: datetime
    members: list[Member]


@dataclass(frozen=True)
class Change:
    id: int
    epoch: int
    change: str
    actor: str | None
    members: list[str]
    at: datetime


def group_for_member(*, user_id: int, uid, for_update: bool = False) -> Group | None:
    """The group with this uid if `user_id` is a member of it (locked with `for_update`)."""
    groups = Group.objects.filter(uid=uid, memberships__user_id=user_id)
    if for_update:
        groups = Group.objects.select_for_update().filter(pk__in=groups.values("pk"))
    return groups.first()


def membership(*, group_id: int, user_id: int) -> Membership | None:
    return Membership.objects.filter(group_id=group_id, user_id=user_id).select_related("user").first()


def member_ids(*, group_id: int) -> list[int]:
    return list(Membership.objects.filter(group_id=group_id).values_list("user_id", flat=True))


def most_groups(*, user_ids: list[int]) -> int:
    """The largest number of groups any of these accounts is in (one query)."""
    counts = Membership.objects.filter(user_id__in=user_ids).values("user_id").annotate(n=Count("id"))
    return max((row["n"] for row in counts), default=0)


def groups_of(*, user_id: int, uids=None) -> list[GroupView]:
    """The groups `user_id` is a member of (only those in `uids` if given), oldest first, each
    with its members and their active devices: three queries whatever the numbers."""
    mine = Membership.objects.filter(user_id=user_id).select_related("group")
    if uids is not None:
        mine = mine.filter(group__uid__in=list(uids))
    mine = list(mine.order_by("group_id"))
    rows = list(
        Membership.objects.filter(group_id__in=[m.group_id for m in mine])
        .order_by("group_id", "joined_at", "id")
        .values_list("group_id", "user_id", "user__email", "role", "joined_at")
    )
    devices = defaultdict(list)
    for owner, device in (
        Device.objects.filter(user_id__in={row[1] for row in rows}, removed_at__isnull=True)
        .order_by("device_id")
        .values_list("user_id", "device_id")
    ):
        devices[owner].append(device)
    members = defaultdict(list)
    for group_id, member_id, email, role, joined_at in rows:
        members[group_id].append(Member(email, role, joined_at, devices[member_id]))
    return [GroupView(str(m.group.uid), m.group.epoch, m.role, m.group.created_at, members[m.group_id]) for m in mine]


def changes_of(*, group: Group, after: int = 0, limit: int = CHANGES_PAGE_MAX) -> list[Change]:
    """The group's membership changes with an id above `after`, oldest first."""
    rows = GroupChange.objects.filter(group=group, id__gt=after).select_related("actor").order_by("id")[:limit]
    return [
        Change(
            row.id, row.epoch, row.kind, row.actor.email if row.actor else None, row.subjects.split(), row.created_at
        )
        for row in rows
    ]


def share_a_group(*, user_id: int, other_id: int) -> bool:
    return Membership.objects.filter(
        user_id=other_id, group__in=Membership.objects.filter(user_id=user_id).values("group")
    ).exists()


def co_member_by_email(*, user_id: int, email: str) -> User | None:
    """The active user with this email if they share a group with `user_id`, else None."""
    other = user_by_email(email=email)
    if other is None or other.pk == user_id or not share_a_group(user_id=user_id, other_id=other.pk):
        return None
    return other
