"""Writes of groups: creating one, adding, removing and promoting members, leaving, and the
epoch of a group whose members' devices changed.

The rules, and why:
- Only accepted contacts of the one who adds can be added (creating a group adds its first
  members): being put in a group must not be a way around the contact request, which is how a
  person says who may write to them. An unknown email gets the same `not_a_contact` as a
  stranger, so the endpoint tells nobody which emails have accounts.
- Any member may add their contacts (as in Signal's default); only admins remove others; anyone
  may leave at once. The creator is the first admin; an admin may make another member admin.
  When the last admin leaves, the member who joined earliest becomes admin, so a group is never
  left without one; when the last member leaves, the group is deleted.
- A group has at most GROUP_MEMBERS_MAX members and an account is in at most
  GROUPS_PER_USER_MAX groups (409 `group_full`, `too_many_groups`).
- Every change runs with the group's row locked (and, where a cap on someone's groups is
  checked, that account's row), so concurrent changes are applied one after the other: the
  caps hold and each change gets its own epoch.
- A change of who receives the group's messages (joins, removals, departures, and a member's
  device linked or unlinked) raises the epoch (groups.models says why); a new admin does not.
- Every change is announced to the members (and to the one removed or leaving) after the
  commit, and membership changes are kept as `GroupChange` rows for clients that were offline.
- Creating groups and adding members count against the `group_change` rate limit.

Logs carry ids only, never emails.
"""

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import F

from accounts.models import User, normalize_email
from accounts.ratelimit import rate_limit_hit
from accounts.selectors import user_by_email
from contacts.selectors import are_contacts
from groups import events, selectors
from groups.errors import (
    AdminRequired,
    AlreadyMember,
    GroupFull,
    GroupNotFound,
    MemberNotFound,
    NotAContact,
    TooManyGroups,
)
from groups.models import Group, GroupChange, Membership
from messenger.validation import InvalidInput
from realtime import bus

logger = logging.getLogger(__name__)

Role = Membership.Role
Kind = GroupChange.Kind


def _lock_users(user_ids: Iterable[int]) -> None:
    """Row locks on these accounts, in id order (two transactions locking overlapping sets
    cannot deadlock): their numbers of groups do not change until the commit."""
    list(User.objects.select_for_update().filter(pk__in=sorted(set(user_ids))).order_by("pk").values_list("pk"))


def _check_room(users: list[User]) -> None:
    if selectors.most_groups(user_ids=[user.pk for user in users]) >= settings.GROUPS_PER_USER_MAX:
        raise TooManyGroups()


def _contact_of(actor: User, email: str) -> User:
    other = user_by_email(email=email)
    if other is None or other.pk == actor.pk or not are_contacts(user_id=actor.pk, other_id=other.pk):
        raise NotAContact()
    return other


def _record(group: Group, kind: str, actor: User | None, subjects: list[User], *, also: Iterable[int] = ()) -> None:
    """Keep the change and announce it, after the commit, to the members and to `also`."""
    emails = [user.email for user in subjects]
    GroupChange.objects.create(group=group, epoch=group.epoch, kind=kind, actor=actor, subjects="\n".join(emails))
    event = events.group_changed_event(
        group=str(group.uid), epoch=group.epoch, kind=kind, actor=actor.email if actor else None, subjects=emails
    )
    bus.publish_on_commit({*selectors.member_ids(group_id=group.pk), *also}, event)


def _next_epoch(group: Group) -> None:
    Group.objects.filter(pk=group.pk).update(epoch=F("epoch") + 1)
    group.refresh_from_db(fields=["epoch"])


def _locked_group(user: User, uid) -> Group:
    group = selectors.group_for_member(user_id=user.pk, uid=uid, for_update=True)
    if group is None:
        raise GroupNotFound()
    return group


def _member(group: Group, email: str) -> Membership:
    other = user_by_email(email=email, active_only=False)
    found = selectors.membership(group_id=group.pk, user_id=other.pk) if other else None
    if found is not None:
        found.user = other
    if found is None:
        raise MemberNotFound()
    return found


def _require_admin(group: Group, user: User) -> None:
    mine = selectors.membership(group_id=group.pk, user_id=user.pk)
    if mine is None or mine.role != Role.ADMIN:
        raise AdminRequired()


def group_create(*, creator: User, emails: list[str]) -> Group:
    """A new group of `creator` (its admin) and these contacts of theirs."""
    rate_limit_hit("group_change", str(creator.pk))
    normalized = list(dict.fromkeys(normalize_email(email) for email in emails))
    if len(normalized) != len(emails):
        raise InvalidInput("An email appears twice in members.", code="invalid_members")
    if len(normalized) > settings.GROUP_MEMBERS_MAX - 1:
        raise GroupFull()
    members = [_contact_of(creator, email) for email in normalized]
    with transaction.atomic():
        _lock_users([creator.pk, *(member.pk for member in members)])
        _check_room([creator, *members])
        group = Group.objects.create(created_by=creator)
        Membership.objects.create(group=group, user=creator, role=Role.ADMIN, added_by=creator)
        Membership.objects.bulk_create([Membership(group=group, user=member, added_by=creator) for member in members])
        _record(group, Kind.CREATED, creator, members)
    logger.info("group id=%s created by user id=%s with %s members", group.pk, creator.pk, len(members) + 1)
    return group


def member_add(*, actor: User, uid, email: str) -> Group:
    """Add a contact of `actor` (any member) to the group."""
    rate_limit_hit("group_change", str(actor.pk))
    other = _contact_of(actor, email)
    with transaction.atomic():
        group = _locked_group(actor, uid)
        if selectors.membership(group_id=group.pk, user_id=other.pk):
            raise AlreadyMember()
        if len(selectors.member_ids(group_id=group.pk)) >= settings.GROUP_MEMBERS_MAX:
            raise GroupFull()
        _lock_users([other.pk])
        _check_room([other])
        Membership.objects.create(group=group, user=other, added_by=actor)
        _next_epoch(group)
        _record(group, Kind.ADDED, actor, [other])
    logger.info("group id=%s: user id=%s added user id=%s", group.pk, actor.pk, other.pk)
    return group


def member_remove(*, actor: User | None, uid, email: str) -> Group:
    """Remove a member (an admin's action; `actor` None: an operator's, in the Django admin).
    Removing oneself is leaving."""
    with transaction.atomic():
        if actor is None:
            group = Group.objects.select_for_update().filter(uid=uid).first()
            if group is None:
                raise GroupNotFound()
        else:
            group = _locked_group(actor, uid)
        gone = _member(group, email)
        if actor is not None and gone.user_id == actor.pk:
            return _leave(group, actor)
        if actor is not None:
            _require_admin(group, actor)
        _depart(group, gone, Kind.REMOVED, actor)
    logger.info("group id=%s: user id=%s removed by %s", group.pk, gone.user_id, actor.pk if actor else "an operator")
    return group


def group_leave(*, user: User, uid) -> None:
    with transaction.atomic():
        _leave(_locked_group(user, uid), user)
    logger.info("user id=%s left a group", user.pk)


def _leave(group: Group, user: User) -> Group:
    _depart(group, selectors.membership(group_id=group.pk, user_id=user.pk), Kind.LEFT, user)
    return group


def _depart(group: Group, gone: Membership, kind: str, actor: User | None) -> None:
    """Delete the membership; hand the admin role on when the last admin went; delete the
    group when nobody is left."""
    gone.delete()
    rest = Membership.objects.filter(group=group)
    if not rest.exists():
        event = events.group_changed_event(
            group=str(group.uid), epoch=group.epoch + 1, kind=kind, actor=None, subjects=[gone.user.email]
        )
        group.delete()
        bus.publish_on_commit([gone.user_id], event)
        return
    _next_epoch(group)
    _record(group, kind, actor, [gone.user], also=[gone.user_id])
    if not rest.filter(role=Role.ADMIN).exists():
        heir = rest.order_by("joined_at", "id").select_related("user").first()
        heir.role = Role.ADMIN
        heir.save(update_fields=["role"])
        _record(group, Kind.ADMIN, None, [heir.user])


def admin_grant(*, actor: User, uid, email: str) -> Group:
    """Make a member an admin (an admin's action)."""
    with transaction.atomic():
        group = _locked_group(actor, uid)
        _require_admin(group, actor)
        member = _member(group, email)
        if member.role != Role.ADMIN:
            member.role = Role.ADMIN
            member.save(update_fields=["role"])
            _record(group, Kind.ADMIN, actor, [member.user])
    return group


def group_delete(*, group: Group) -> None:
    """Delete a group (an operator's action, in the Django admin): its members are told."""
    logger.info("group id=%s deleted by an operator", group.pk)
    with transaction.atomic():
        members = selectors.member_ids(group_id=group.pk)
        event = events.group_changed_event(
            group=str(group.uid), epoch=group.epoch + 1, kind="deleted", actor=None, subjects=[]
        )
        group.delete()
        bus.publish_on_commit(members, event)


def account_deleted(*, user: User) -> None:
    """An operator deletes `user`'s account (the Django admin): it leaves each of its groups the
    way a member leaves, before its memberships go with it, so the others are told, the epoch
    moves on (every sender's next message uses a new sender key, docs/PROTOCOL.md section 22),
    an admin is named if it was the last one, and a group it was alone in is deleted. Without
    this the membership would vanish silently: no line, no event, no heir."""
    with transaction.atomic():
        groups = list(Group.objects.select_for_update().filter(memberships__user_id=user.pk).order_by("pk"))
        for group in groups:
            _depart(group, selectors.membership(group_id=group.pk, user_id=user.pk), Kind.LEFT, None)
    if groups:
        logger.info("user id=%s left %s groups as the account is deleted", user.pk, len(groups))


def member_devices_changed(*, user_id: int) -> None:
    """A device of `user_id` was linked or unlinked: every group of theirs gets a new epoch, and
    its members are told (within the caller's transaction, announced after its commit)."""
    with transaction.atomic():
        groups = list(Group.objects.select_for_update().filter(memberships__user_id=user_id).order_by("pk"))
        if not groups:
            return
        Group.objects.filter(pk__in=[group.pk for group in groups]).update(epoch=F("epoch") + 1)
        for group in groups:
            event = events.group_epoch_event(group=str(group.uid), epoch=group.epoch + 1)
            bus.publish_on_commit(selectors.member_ids(group_id=group.pk), event)
