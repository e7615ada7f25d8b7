"""The users admin shows key metadata and never key material as an editable field."""

import pytest

from accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = User.objects.create_superuser("admin@example.test", "admin password 123")
    client.force_login(admin)
    return client


def test_user_list_shows_fingerprint_and_prekey_count(admin_client, make_account):
    account = make_account(login=False, one_time_count=7)
    response = admin_client.get("/admin/accounts/user/")
    assert response.status_code == 200
    page = response.content.decode()
    assert account.email in page
    assert "Identity key fingerprint" in page
    assert ">7<" in page


def test_user_change_page_has_no_key_inputs(admin_client, make_account):
    account = make_account(login=False)
    response = admin_client.get(f"/admin/accounts/user/{account.id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert account.keys.identity_key not in page
    assert 'name="identity_fingerprint"' not in page


def test_operators_cannot_set_a_users_password(admin_client, make_account):
    account = make_account(login=False)
    before = User.objects.get(pk=account.id).password
    page = admin_client.get(f"/admin/accounts/user/{account.id}/change/").content.decode()
    assert 'name="password"' not in page
    assert "password/" not in page
    form = {"password1": "operator chosen 12345", "password2": "operator chosen 12345", "usable_password": "true"}
    response = admin_client.post(f"/admin/accounts/user/{account.id}/password/", form)
    assert response.status_code in (302, 404)
    # A change-form post carrying a password field does not set it either.
    form = {"email": account.email, "is_active": "on", "password": "operator chosen 12345"}
    assert admin_client.post(f"/admin/accounts/user/{account.id}/change/", form).status_code == 302
    assert User.objects.get(pk=account.id).password == before


def test_operators_can_still_edit_and_create_users(admin_client):
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"email": "new@example.test", "password1": "a fine passphrase 42", "password2": "a fine passphrase 42"},
    )
    assert response.status_code == 302
    assert User.objects.get(email="new@example.test").check_password("a fine passphrase 42")


def test_operators_cannot_create_or_rename_an_account_to_a_look_alike_email(admin_client, make_account):
    account = make_account(login=False)
    form = {"email": "alice@ex\u0430mple.org", "password1": "a fine passphrase 42", "password2": "a fine passphrase 42"}
    response = admin_client.post("/admin/accounts/user/add/", form)
    assert response.status_code == 200
    assert "plain ASCII" in response.content.decode()
    assert not User.objects.filter(email__startswith="alice@").exists()
    change = {"email": "bob@ex\u0430mple.org", "is_active": "on"}
    response = admin_client.post(f"/admin/accounts/user/{account.id}/change/", change)
    assert response.status_code == 200
    assert "plain ASCII" in response.content.decode()
    assert User.objects.get(pk=account.id).email == account.email
