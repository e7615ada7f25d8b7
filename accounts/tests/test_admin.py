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
