"""The membership rules of groups.services, each tried the way an abuser would."""

import pytest
from django.db import transaction

from accounts.models import User
from contacts.tests.helpers import add_device, befriend, make_user, run_concurrently
from groups import selectors, services
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
from keys.services import device_unlink

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    """alice, bob, carol: alice is a contact of both; bob and carol are not contacts."""
    alice, bob, carol = make_user(), make_user(), make_user()
    befriend(alice, bob)
    befriend(alice, carol)
    return alice, bob, carol


def roles(group: Group) -> dict[str, str]:
    return dict(Membership.objects.filter(group=group).values_list("user__email", "role"))


def test_the_creator_is_admin_and_contacts_are_members(people, published, django_capture_on_commit_callbacks):
    alice, bob, carol = people
    with django_capture_on_commit_callbacks(execute=True):
        group = services.group_create(creator=alice, emails=[bob.email, carol.email.upper()])
    assert roles(group) == {alice.email: "admin", bob.email: "member", carol.email: "member"}
    assert group.epoch == 1
    [(user_ids, event)] = published
    assert set(user_ids) == {alice.pk, bob.pk, carol.pk}
    assert event == {
        "type": "group_changed",
        "group": str(group.uid),
        "epoch": 1,
        "change": "created",
        "actor": alice.email,
        "members": [bob.email, carol.email],
    }


@pytest.mark.parametrize("who", ["stranger", "unknown", "pending", "self"])
def test_only_accepted_contacts_can_be_put_in_a_group(people, who):
    alice, bob, _ = people
    stranger = make_user()
    email = {"stranger": stranger.email, "unknown": "nobody@example.test", "self": alice.email}.get(who)
    if who == "pending":
        from contacts.tests.helpers import ask

        other = make_user()
        ask(alice, other)
        email = other.email
    with pytest.raises(NotAContact):
        services.group_create(creator=alice, emails=[bob.email, email])
    group = services.group_create(creator=alice, emails=[bob.email])
    with pytest.raises(NotAContact):
        services.member_add(actor=alice, uid=group.uid, email=email)
    assert set(roles(group)) == {alice.email, bob.email}
    assert Group.objects.count() == 1


def test_a_member_adds_only_their_own_contacts(people):
    alice, bob, carol = people
    group = services.group_create(creator=alice, emails=[bob.email])
    with pytest.raises(NotAContact):  # carol is alice's contact, not bob's
        services.member_add(actor=bob, uid=group.uid, email=carol.email)
    befriend(bob, carol)
    services.member_add(actor=bob, uid=group.uid, email=carol.email)
    assert roles(group)[carol.email] == "member"
    assert Group.objects.get(pk=group.pk).epoch == 2
    with pytest.raises(AlreadyMember):
        services.member_add(actor=alice, uid=group.uid, email=carol.email)


def test_a_non_member_cannot_see_or_change_a_group(people):
    alice, bob, carol = people
    group = services.group_create(creator=alice, emails=[bob.email])
    outsider = make_user()
    befriend(outsider, carol)
    for call in (
        lambda: services.member_add(actor=outsider, uid=group.uid, email=carol.email),
        lambda: services.member_remove(actor=outsider, uid=group.uid, email=bob.email),
        lambda: services.admin_grant(actor=outsider, uid=group.uid, email=outsider.email),
        lambda: services.group_leave(user=outsider, uid=group.uid),
    ):
        with pytest.raises(GroupNotFound):
            call()
    assert selectors.group_for_member(user_id=outsider.pk, uid=group.uid) is None
    assert selectors.groups_of(user_id=outsider.pk) == []


def test_only_admins_remove_others_and_anyone_may_leave(people, published, django_capture_on_commit_callbacks):
    alice, bob, carol = people
    group = services.group_create(creator=alice, emails=[bob.email, carol.email])
    with pytest.raises(AdminRequired):
        services.member_remove(actor=bob, uid=group.uid, email=carol.email)
    with pytest.raises(AdminRequired):
        services.admin_grant(actor=bob, uid=group.uid, email=bob.email)
    with pytest.raises(MemberNotFound):
        services.member_remove(actor=alice, uid=group.uid, email="nobody@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        services.member_remove(actor=alice, uid=group.uid, email=carol.email)
    assert set(roles(group)) == {alice.email, bob.email}
    [(user_ids, event)] = published
    assert set(user_ids) == {alice.pk, bob.pk, carol.pk}  # carol hears she was removed
    assert (event["change"], event["epoch"], event["members"]) == ("removed", 2, [carol.email])
    services.member_remove(actor=bob, uid=group.uid, email=bob.email)  # naming oneself is leaving
    assert set(roles(group)) == {alice.email}
    assert [c.kind for c in GroupChange.objects.filter(group=group)] == ["created", "removed", "left"]


def test_the_last_admin_leaving_hands_the_role_on_and_the_last_member_deletes_the_group(people):
    alice, bob, carol = people
    group = services.group_create(creator=alice, emails=[bob.email, carol.email])
    services.group_leave(user=alice, uid=group.uid)
    assert roles(group) == {bob.email: "admin", carol.email: "member"}  # bob joined first
    services.admin_grant(actor=bob, uid=group.uid, email=carol.email)
    assert roles(group) == {bob.email: "admin", carol.email: "admin"}
    assert Group.objects.get(pk=group.pk).epoch == 2  # a new admin receives what they did before
    services.group_leave(user=bob, uid=group.uid)
    services.group_leave(user=carol, uid=group.uid)
    assert not Group.objects.filter(pk=group.pk).exists()


def test_the_caps_on_members_and_groups(people, settings):
    alice, bob, carol = people
    settings.GROUP_MEMBERS_MAX = 2
    with pytest.raises(GroupFull):
        services.group_create(creator=alice, emails=[bob.email, carol.email])
    group = services.group_create(creator=alice, emails=[bob.email])
    with pytest.raises(GroupFull):
        services.member_add(actor=alice, uid=group.uid, email=carol.email)
    settings.GROUP_MEMBERS_MAX = 10
    settings.GROUPS_PER_USER_MAX = 1
    with pytest.raises(TooManyGroups):  # alice is in one already
        services.group_create(creator=carol, emails=[alice.email])
    with pytest.raises(TooManyGroups):
        services.group_create(creator=alice, emails=[])


def test_a_device_linked_or_unlinked_gives_the_members_groups_a_new_epoch(
    people, published, django_capture_on_commit_callbacks
):
    alice, bob, _ = people
    group = services.group_create(creator=alice, emails=[bob.email])
    laptop = add_device(bob)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        services.member_devices_changed(user_id=bob.pk)
    assert Group.objects.get(pk=group.pk).epoch == 2
    with django_capture_on_commit_callbacks(execute=True):
        device_unlink(user=User.objects.get(pk=bob.pk), device_id=laptop.device_id)
    assert Group.objects.get(pk=group.pk).epoch == 3
    assert [event for _, event in published if event["type"] == "group_epoch"] == [
        {"type": "group_epoch", "group": str(group.uid), "epoch": 2},
        {"type": "group_epoch", "group": str(group.uid), "epoch": 3},
    ]
    [view] = selectors.groups_of(user_id=alice.pk)
    assert {m.email: m.devices for m in view.members} == {alice.email: [1], bob.email: [1]}


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_concurrent_adds_respect_the_member_cap_and_each_get_an_epoch(settings):
    alice = make_user()
    friends = [make_user() for _ in range(4)]
    for friend in friends:
        befriend(alice, friend)
    group = services.group_create(creator=alice, emails=[])
    settings.GROUP_MEMBERS_MAX = 3
    results = run_concurrently(
        [lambda f=f: services.member_add(actor=alice, uid=group.uid, email=f.email) for f in friends]
    )
    assert sum(isinstance(r, GroupFull) for r in results) == 2
    assert Membership.objects.filter(group=group).count() == 3
    assert Group.objects.get(pk=group.pk).epoch == 3
    assert sorted(GroupChange.objects.filter(group=group).values_list("epoch", flat=True)) == [1, 2, 3]


def test_an_account_deleted_leaves_its_groups_as_a_member_leaves(people, published, django_capture_on_commit_callbacks):
    """An operator deleting an account (the Django admin) must not make it vanish silently from
    its groups: the others are told and the epoch moves on (their next messages use new sender
    keys), an heir is named, and a group it was alone in goes."""
    alice, bob, carol = people
    shared = services.group_create(creator=alice, emails=[bob.email, carol.email])
    alone = services.group_create(creator=alice, emails=[bob.email])
    services.group_leave(user=bob, uid=alone.uid)
    with django_capture_on_commit_callbacks(execute=True):
        User.objects.get(pk=alice.pk).delete()
    assert roles(shared) == {bob.email: "admin", carol.email: "member"}  # bob joined first
    assert Group.objects.get(pk=shared.pk).epoch == 2
    assert [c.kind for c in GroupChange.objects.filter(group=shared)] == ["created", "left", "admin"]
    left = [event for _, event in published if event["change"] == "left" and event["group"] == str(shared.uid)]
    assert left == [
        {
            "type": "group_changed",
            "group": str(shared.uid),
            "epoch": 2,
            "change": "left",
            "actor": None,
            "members": [alice.email],
        }
    ]
    assert not Group.objects.filter(pk=alone.pk).exists()
