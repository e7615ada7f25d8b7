"""Operators: contact requests are listed and filtered, never created or rewritten; the users
admin's ban action signs the user out everywhere."""

import pytest
from django.db import transaction

from accounts import sessions as accounts_sessions
from accounts.models import User
from contacts.models import ContactRequest
from contacts.tests.helpers import ask, befriend, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return User.objects.create_superuser("operator@example.test", "an operator password 123")


@pytest.fixture
def admin_client(client, operator):
    client.force_login(operator)
    return client


def test_contact_requests_are_listed_and_filtered_by_status(admin_client):
    alice, bob, carol = make_user("alice@example.test"), make_user("bob@example.test"), make_user("carol@example.test")
    befriend(alice, bob)
    ask(carol, alice)
    page = admin_client.get("/admin/contacts/contactrequest/?status__exact=pending").content.decode()
    assert "carol@example.test" in page
    assert "bob@example.test" not in page
    assert "bob@example.test" in admin_client.get("/admin/contacts/contactrequest/").content.decode()


def test_contact_requests_cannot_be_added_or_edited(admin_client):
    alice, bob = make_user(), make_user()
    request_id = ask(alice, bob)
    assert admin_client.get("/admin/contacts/contactrequest/add/").status_code == 403
    response = admin_client.post(f"/admin/contacts/contactrequest/{request_id}/change/", {"status": "accepted"})
    assert response.status_code == 403
    assert ContactRequest.objects.get().status == "pending"
    page = admin_client.get(f"/admin/contacts/contactrequest/{request_id}/change/").content.decode()
    assert 'name="status"' not in page


def test_ban_deactivates_revokes_sessions_and_closes_sockets(
    admin_client, make_account, monkeypatch, django_capture_on_commit_callbacks
):
    victim, bystander = make_account(), make_account()
    closed = []
    monkeypatch.setattr(
        accounts_sessions,
        "session_revoked_publish",
        lambda *, user_id, generation: transaction.on_commit(lambda: closed.append(user_id)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/accounts/user/", {"action": "deactivate_ban", "_selected_action": [victim.id]}
        )
    assert response.status_code == 302
    assert closed == [victim.id]
    assert not User.objects.get(id=victim.id).is_active
    assert victim.client.get("/api/v1/auth/me").status_code == 401
    assert victim.client.post_json("/api/v1/auth/refresh").status_code == 401
    assert User.objects.get(id=bystander.id).is_active
    assert bystander.client.get("/api/v1/auth/me").status_code == 200


def test_ban_never_bans_the_acting_operator(admin_client, operator):
    admin_client.post("/admin/accounts/user/", {"action": "deactivate_ban", "_selected_action": [operator.id]})
    assert User.objects.get(id=operator.id).is_active
