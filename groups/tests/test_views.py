"""The groups API: shapes, input checks, and every route tried by someone who may not use it."""

import uuid

import pytest

from accounts.models import User
from contacts.tests.helpers import befriend
from tests.helpers import CsrfClient, sign_in

pytestmark = pytest.mark.django_db

GROUPS = "/api/v1/groups/"


@pytest.fixture
def people(make_account):
    """alice, bob, carol (Accounts with signed-in clients): alice is a contact of both."""
    alice, bob, carol = make_account(), make_account(), make_account()
    users = {account.email: User.objects.get(pk=account.id) for account in (alice, bob, carol)}
    befriend(users[alice.email], users[bob.email])
    befriend(users[alice.email], users[carol.email])
    return alice, bob, carol


def create(account, *members) -> dict:
    response = account.client.post_json(GROUPS, {"members": [member.email for member in members]})
    assert response.status_code == 201, response.content
    return response.json()


def test_create_answers_the_group_as_its_creator_sees_it(people):
    alice, bob, _ = people
    group = create(alice, bob)
    assert uuid.UUID(group["id"])
    assert (group["epoch"], group["role"]) == (1, "admin")
    assert [(m["email"], m["role"], m["devices"]) for m in group["members"]] == [
        (alice.email, "admin", [1]),
        (bob.email, "member", [1]),
    ]
    listed = bob.client.get(GROUPS).json()
    assert listed["members_max"] == 256
    assert [(g["id"], g["role"]) for g in listed["groups"]] == [(group["id"], "member")]


def test_members_are_added_removed_and_made_admin_and_changes_can_be_read_back(people):
    alice, bob, carol = people
    group = create(alice, bob)
    added = alice.client.post_json(f"{GROUPS}members", {"group": group["id"], "email": carol.email})
    assert added.status_code == 200, added.content
    assert added.json()["epoch"] == 2
    promoted = alice.client.post_json(f"{GROUPS}admins", {"group": group["id"], "email": bob.email})
    assert {m["email"]: m["role"] for m in promoted.json()["members"]}[bob.email] == "admin"
    removed = bob.client.post_json(f"{GROUPS}remove", {"group": group["id"], "email": carol.email})
    assert removed.status_code == 204
    assert carol.client.get(GROUPS).json()["groups"] == []
    changes = bob.client.post_json(f"{GROUPS}changes", {"group": group["id"]}).json()["changes"]
    assert [(c["change"], c["epoch"], c["actor"], c["members"]) for c in changes] == [
        ("created", 1, alice.email, [bob.email]),
        ("added", 2, alice.email, [carol.email]),
        ("admin", 2, alice.email, [bob.email]),
        ("removed", 3, bob.email, [carol.email]),
    ]
    later = bob.client.post_json(f"{GROUPS}changes", {"group": group["id"], "after": changes[1]["id"]}).json()
    assert [c["change"] for c in later["changes"]] == ["admin", "removed"]
    assert bob.client.post_json(f"{GROUPS}leave", {"group": group["id"]}).status_code == 204
    assert [g["role"] for g in alice.client.get(GROUPS).json()["groups"]] == ["admin"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"members": "bob@example.test"},
        {"members": ["not an email"]},
        {"members": [None]},
        {"members": ["a@example.test", "A@example.test"]},
    ],
)
def test_create_validates_its_input(people, body):
    alice, _, _ = people
    response = alice.client.post_json(GROUPS, body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] in {"invalid", "invalid_members"}


@pytest.mark.parametrize("route", ["members", "remove", "admins", "leave", "changes"])
@pytest.mark.parametrize("group", ["not-a-uuid", None, 7, ""])
def test_every_route_validates_the_group_id(people, route, group):
    alice, bob, _ = people
    response = alice.client.post_json(f"{GROUPS}{route}", {"group": group, "email": bob.email})
    assert response.status_code == 400, response.content


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("members", {"email": "{carol}"}),
        ("remove", {"email": "{bob}"}),
        ("admins", {"email": "{bob}"}),
        ("leave", {}),
        ("changes", {}),
    ],
)
def test_a_non_member_gets_404_for_every_route(people, make_account, route, body):
    alice, bob, carol = people
    group = create(alice, bob)
    outsider = make_account()
    befriend(User.objects.get(pk=outsider.id), User.objects.get(pk=carol.id))
    filled = {key: value.format(carol=carol.email, bob=bob.email) for key, value in body.items()}
    response = outsider.client.post_json(f"{GROUPS}{route}", {"group": group["id"], **filled})
    assert (response.status_code, response.json()["code"]) == (404, "group_not_found")
    unknown = alice.client.post_json(f"{GROUPS}{route}", {"group": str(uuid.uuid4()), **filled})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "group_not_found")


def test_a_member_who_is_not_admin_cannot_remove_or_promote(people):
    alice, bob, carol = people
    group = create(alice, bob, carol)
    for route in ("remove", "admins"):
        response = bob.client.post_json(f"{GROUPS}{route}", {"group": group["id"], "email": carol.email})
        assert (response.status_code, response.json()["code"]) == (403, "admin_required")


def test_adding_a_stranger_is_refused_like_an_unknown_email(people, make_account):
    alice, bob, _ = people
    group = create(alice, bob)
    stranger = make_account()
    for email in (stranger.email, "nobody@example.test"):
        response = alice.client.post_json(f"{GROUPS}members", {"group": group["id"], "email": email})
        assert (response.status_code, response.json()["code"]) == (403, "not_a_contact")


def test_groups_need_a_device_bound_session_and_csrf(people):
    alice, bob, _ = people
    assert CsrfClient().get(GROUPS).status_code == 401
    pending = sign_in(alice, device_id=None)
    response = pending.post_json(GROUPS, {"members": [bob.email]})
    assert (response.status_code, response.json()["code"]) == (403, "device_required")
    assert pending.get(GROUPS).status_code == 403
    no_csrf = alice.client.post(GROUPS, {"members": []}, format="json", HTTP_X_CSRFTOKEN="")
    assert no_csrf.status_code == 403


def test_creating_groups_is_rate_limited(people, settings):
    alice, bob, _ = people
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "group_change": "2/3600"}
    create(alice, bob)
    create(alice, bob)
    response = alice.client.post_json(GROUPS, {"members": [bob.email]})
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")


def test_members_who_are_not_contacts_may_fetch_each_others_bundles_and_no_one_else(people, make_account):
    alice, bob, carol = people  # bob and carol are not contacts
    ask = {"email": carol.email}
    assert bob.client.post_json("/api/v1/keys/bundles", ask).status_code == 404
    create(alice, bob, carol)
    bundles = bob.client.post_json("/api/v1/keys/bundles", ask)
    assert bundles.status_code == 200, bundles.content
    assert [d["device_id"] for d in bundles.json()["devices"]] == [1]
    assert bob.client.post_json("/api/v1/keys/devices", ask).json()["device_ids"] == [1]
    outsider = make_account()
    assert outsider.client.post_json("/api/v1/keys/bundles", ask).status_code == 404
    assert bob.client.post_json("/api/v1/keys/bundle", ask).status_code == 404  # version 1: contacts only
