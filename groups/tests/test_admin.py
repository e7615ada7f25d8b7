"""Operators see groups as metadata (member counts, who is in which) and may remove a member or
delete a group; both go through the services, so the members are told."""

import pytest

from accounts.models import User
from contacts.tests.helpers import befriend, make_user
from groups import services
from groups.models import Group, Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("operator@example.test", "an operator password 123"))
    return client


@pytest.fixture
def group():
    alice, bob, carol = make_user("alice@example.test"), make_user("bob@example.test"), make_user("carol@example.test")
    befriend(alice, bob)
    befriend(alice, carol)
    return services.group_create(creator=alice, emails=[bob.email, carol.email])


def test_groups_are_listed_with_their_member_counts_and_cannot_be_edited(admin_client, group):
    page = admin_client.get("/admin/groups/group/").content.decode()
    assert str(group.uid) in page
    assert '<td class="field-member_count">3</td>' in page
    detail = admin_client.get(f"/admin/groups/group/{group.pk}/change/").content.decode()
    assert "bob@example.test" in detail
    assert admin_client.get("/admin/groups/group/add/").status_code == 403
    assert admin_client.get("/admin/groups/membership/add/").status_code == 403


def test_an_operator_removes_a_member_and_the_epoch_moves_on(
    admin_client, group, published, django_capture_on_commit_callbacks
):
    membership = Membership.objects.get(group=group, user__email="carol@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/groups/membership/{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert Group.objects.get(pk=group.pk).epoch == 2
    [(_, event)] = published
    assert (event["change"], event["actor"], event["members"]) == ("removed", None, ["carol@example.test"])


def test_an_operator_deletes_a_group_and_its_members_are_told(
    admin_client, group, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/groups/group/{group.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Group.objects.exists()
    [(user_ids, event)] = published
    assert len(user_ids) == 3
    assert (event["type"], event["change"]) == ("group_changed", "deleted")
