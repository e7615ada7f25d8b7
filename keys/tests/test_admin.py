"""The keys admin shows counts, ages, key ids and fingerprints; never key material, and
nothing in it can be added, edited or deleted."""

import pytest

from accounts.models import User
from contacts.tests.helpers import add_device, make_user
from keys.models import IdentityKey, OneTimePreKey, SignedPreKey
from keys.selectors import fingerprint
from keys.services import device_unlink

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("operator@example.test", "an operator password 123"))
    return client


@pytest.fixture
def alice():
    return make_user("alice@example.test", one_time_count=7)


def test_identity_keys_list_shows_counts_signed_prekey_and_fingerprint(admin_client, alice):
    page = admin_client.get("/admin/keys/identitykey/").content.decode()
    assert "alice@example.test" in page
    assert fingerprint(alice.device.identity_key) in page
    assert alice.device.identity_key not in page
    assert ">7<" in page
    assert "0.0 days" in page


@pytest.mark.parametrize("model", [IdentityKey, SignedPreKey, OneTimePreKey])
def test_key_pages_are_view_only_and_show_no_key_material(admin_client, alice, model):
    row = model.objects.filter(user=alice).first()
    base = f"/admin/keys/{model._meta.model_name}/"
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.get(f"{base}{row.pk}/delete/").status_code == 403
    page = admin_client.get(f"{base}{row.pk}/change/")
    assert page.status_code == 200
    assert row.public_key not in page.content.decode()
    assert 'name="public_key"' not in page.content.decode()
    admin_client.post(f"{base}{row.pk}/change/", {"public_key": "AAAA"})
    assert model.objects.get(pk=row.pk).public_key == row.public_key


def test_one_time_prekeys_filter_by_claimed(admin_client, alice):
    OneTimePreKey.objects.filter(user=alice, key_id=1).update(claimed_at="2026-01-01T00:00:00Z")
    response = admin_client.get("/admin/keys/onetimeprekey/?claimed_at__isempty=0")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_the_user_page_lists_the_devices_with_removed_ones_and_no_key_material(admin_client, alice):
    laptop = add_device(alice, one_time_count=4, name="Laptop <b>")
    add_device(alice, name="Old phone")
    device_unlink(user=alice, device_id=3)
    page = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert "Laptop &lt;b&gt;" in page  # names are escaped
    assert "Old phone" in page
    assert ">4<" in page  # the laptop's unused one-time prekeys
    assert laptop.keys.signed_prekey_payload()["public_key"] not in page
    assert 'name="devices' not in page  # nothing to edit
