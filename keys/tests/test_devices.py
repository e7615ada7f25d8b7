"""Devices of an account (docs/PROTOCOL.md sections 14 to 16 and 19): which device a sign-in
binds to, what a pending session may do, the device list, renaming and unlinking, bundles per
device and keys per device. Every rule is tried from the side that should be refused too."""

import pytest
from django.conf import settings as django_settings
from django.db import IntegrityError

from accounts.devices import device_create
from accounts.errors import TooManyDevices
from accounts.models import Device, User
from contacts.tests.helpers import add_device, befriend
from keys.models import OneTimePreKey, SignedPreKey
from keys.services import device_unlink
from tests.helpers import CsrfClient, DeviceKeys, sign_in

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
DEVICES = "/api/v1/devices"
KEYS = "/api/v1/keys"


def user_of(account) -> User:
    user = User.objects.get(pk=account.id)
    user.device = account.keys
    return user


def device_of(client) -> dict | None:
    return client.get(ME).json()["device"]


@pytest.fixture
def alice(make_account):
    return make_account()


@pytest.fixture
def bob(make_account):
    return make_account()


@pytest.fixture
def friends(alice, bob):
    befriend(user_of(alice), user_of(bob))
    return alice, bob


@pytest.fixture
def alice_laptop(alice):
    """A second device of alice's, and a session bound to it."""
    device = add_device(user_of(alice), name="Laptop")
    return device, sign_in(alice, device_id=device.device_id)


# --- sign-in binds a device -------------------------------------------------------------------


def test_a_login_without_device_id_binds_the_only_device_as_version_1_clients_expect(alice):
    client = CsrfClient()
    response = client.post_json(LOGIN, {"email": alice.email, "password": alice.password})
    assert response.json()["device"] == {"id": 1, "name": "Device"}
    assert device_of(client) == {"id": 1, "name": "Device"}


def test_a_login_names_its_device_and_null_or_unknown_or_removed_ids_give_a_pending_session(alice, alice_laptop):
    laptop, _ = alice_laptop
    assert device_of(sign_in(alice, device_id=laptop.device_id)) == {"id": 2, "name": "Laptop"}
    assert device_of(sign_in(alice, device_id=1)) == {"id": 1, "name": "Device"}
    assert device_of(sign_in(alice, device_id=None)) is None
    assert device_of(sign_in(alice, device_id=77)) is None
    # Two active devices: a version-1 client cannot say which it is.
    assert device_of(sign_in(alice)) is None
    device_unlink(user=user_of(alice), device_id=laptop.device_id)
    response = CsrfClient().post_json(LOGIN, {"email": alice.email, "password": alice.password, "device_id": 2})
    assert response.json()["device"] is None  # the client learns it was unlinked


@pytest.mark.parametrize("device_id", [0, -1, 2**31, "one", True])
def test_a_login_with_a_malformed_device_id_is_400(alice, device_id):
    response = CsrfClient().post_json(LOGIN, {"email": alice.email, "password": alice.password, "device_id": device_id})
    assert response.status_code == 400
    assert "device_id" in response.json()["errors"]


def test_refresh_keeps_the_device_and_records_when_it_was_last_seen(alice):
    assert device_of(sign_in(alice)) == {"id": 1, "name": "Device"}
    assert Device.objects.get(user_id=alice.id, device_id=1).last_seen_at is not None  # the login
    Device.objects.filter(user_id=alice.id).update(last_seen_at=None)
    response = alice.client.post_json(REFRESH)
    assert response.json()["device"] == {"id": 1, "name": "Device"}
    assert Device.objects.get(user_id=alice.id, device_id=1).last_seen_at is not None


# --- a pending session ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/contacts/"),
        ("post", "/api/v1/contacts/requests"),
        ("post", f"{KEYS}/bundle"),
        ("post", f"{KEYS}/bundles"),
        ("post", f"{KEYS}/devices"),
        ("post", f"{KEYS}/identity/lookup"),
        ("post", f"{KEYS}/prekeys"),
        ("get", f"{KEYS}/prekeys/count"),
        ("put", f"{KEYS}/signed-prekey"),
        ("patch", f"{DEVICES}/1"),
        ("delete", f"{DEVICES}/1"),
        ("get", "/api/v1/messages/"),
        ("post", "/api/v1/messages/ack"),
    ],
)
def test_a_pending_session_may_not_use_the_account(alice, method, path):
    pending = sign_in(alice, device_id=None)
    response = getattr(pending, method)(path, {}, format="json")
    assert response.status_code == 403, (path, response.content)
    assert response.json()["code"] == "device_required"


def test_a_pending_session_may_look_at_the_account_and_sign_out(alice):
    pending = sign_in(alice, device_id=None)
    assert pending.get(ME).status_code == 200
    listed = pending.get(DEVICES).json()
    assert [(d["id"], d["current"]) for d in listed["devices"]] == [(1, False)]
    refresh = pending.post_json(REFRESH)
    assert refresh.status_code == 200
    assert refresh.json()["device"] is None
    assert pending.post_json(LOGOUT).status_code == 204
    assert device_of(alice.client) == {"id": 1, "name": "Device"}  # the real device is untouched


def test_a_pending_session_can_start_over_and_becomes_the_next_device(alice, friends):
    _, bob = friends
    pending = sign_in(alice, device_id=None)
    keys = DeviceKeys()
    body = {"password": alice.password, "device_name": "New phone", **keys.registration_keys(3)}
    response = pending.put_json(f"{KEYS}/identity", body)
    assert response.status_code == 200, response.content
    assert response.json()["device"] == {"id": 2, "name": "New phone"}
    assert device_of(pending) == {"id": 2, "name": "New phone"}
    assert alice.client.get(ME).status_code == 401  # every old session ended
    assert [d.device_id for d in Device.objects.filter(user_id=alice.id, removed_at__isnull=True)] == [2]
    assert not SignedPreKey.objects.filter(device__device_id=1, user_id=alice.id).exists()
    assert bob.client.post_json(f"{KEYS}/bundle", {"email": alice.email}).json()["identity_key"] == keys.identity_key


# --- the device list, renaming, unlinking -----------------------------------------------------


def test_the_device_list_marks_the_current_device_and_says_the_cap(alice, alice_laptop):
    _, laptop = alice_laptop
    listed = laptop.get(DEVICES).json()
    assert listed["max"] == django_settings.DEVICES_PER_ACCOUNT_MAX
    assert [(d["id"], d["name"], d["current"]) for d in listed["devices"]] == [
        (1, "Device", False),
        (2, "Laptop", True),
    ]
    assert set(listed["devices"][0]) == {"id", "name", "created_at", "last_seen_at", "current"}


def test_renaming_a_device(alice, alice_laptop):
    response = alice.client.patch(f"{DEVICES}/2", {"name": "  Work laptop "}, format="json")
    assert response.status_code == 200
    assert response.json() == {"id": 2, "name": "Work laptop"}


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "evil\u202ename", "tab\there", None, ["a"]])
def test_a_device_name_must_be_1_to_64_visible_characters(alice, name):
    response = alice.client.patch(f"{DEVICES}/1", {"name": name}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]


def test_unlinking_signs_the_device_out_deletes_its_keys_and_tells_the_account_and_contacts(
    friends, published, django_capture_on_commit_callbacks
):
    alice, bob = friends
    laptop = add_device(user_of(alice), name="Laptop")
    laptop_session = sign_in(alice, device_id=laptop.device_id)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.client.delete(f"{DEVICES}/{laptop.device_id}")
    assert response.status_code == 204
    me = laptop_session.get(ME)
    assert (me.status_code, me.json()["code"]) == (401, "device_removed")
    assert laptop_session.post_json(REFRESH).status_code == 401
    assert not OneTimePreKey.objects.filter(device=laptop).exists()
    assert not SignedPreKey.objects.filter(device=laptop).exists()
    assert device_of(alice.client) == {"id": 1, "name": "Device"}
    changed = {"type": "devices_changed", "email": alice.email}
    assert sorted(published.to(alice.id) + published.to(bob.id), key=str) == [changed, changed]
    # The number is never given again.
    assert add_device(user_of(alice)).device_id == laptop.device_id + 1
    assert alice.client.delete(f"{DEVICES}/{laptop.device_id}").status_code == 404


def test_a_device_may_unlink_itself(alice, alice_laptop):
    _, laptop = alice_laptop
    assert laptop.delete(f"{DEVICES}/2").status_code == 204
    assert laptop.get(ME).json()["code"] == "device_removed"
    assert alice.client.get(ME).status_code == 200


@pytest.mark.parametrize("device_id", [2, 3, 99, 2**31, 10**30])
def test_another_accounts_device_a_removed_one_and_an_unknown_number_are_all_404(friends, device_id):
    alice, bob = friends
    add_device(user_of(bob))  # bob's device 2
    device_unlink(user=user_of(bob), device_id=2)
    add_device(user_of(bob))  # bob's device 3
    for method in ("delete", "patch"):
        response = getattr(alice.client, method)(f"{DEVICES}/{device_id}", {"name": "mine now"}, format="json")
        assert response.status_code == 404, (method, device_id)
        assert response.json()["code"] == "not_found"
    assert [d.device_id for d in Device.objects.filter(user_id=bob.id, removed_at__isnull=True)] == [1, 3]


def test_logout_signs_out_this_device_only(alice, alice_laptop):
    _, laptop = alice_laptop
    stolen = CsrfClient()
    stolen.cookies["access_token"] = laptop.cookies["access_token"].value
    assert laptop.post_json(LOGOUT).status_code == 204
    assert stolen.get(ME).json()["code"] == "session_revoked"
    assert alice.client.get(ME).status_code == 200
    assert alice.client.post_json(REFRESH).status_code == 200
    again = sign_in(alice, device_id=2)  # the device is still the account's
    assert device_of(again) == {"id": 2, "name": "Laptop"}


def test_the_cap_on_devices(settings, alice):
    settings.DEVICES_PER_ACCOUNT_MAX = 3
    user = user_of(alice)
    add_device(user)
    add_device(user)
    with pytest.raises(TooManyDevices):
        device_create(user=user, name=None)
    device_unlink(user=user, device_id=3)
    assert add_device(user).device_id == 4  # room again, and a new number


def test_the_database_refuses_two_devices_with_one_number(alice):
    with pytest.raises(IntegrityError):
        Device.objects.create(user_id=alice.id, device_id=1, name="copy")


# --- keys per device --------------------------------------------------------------------------


def test_bundles_hand_out_one_one_time_prekey_of_every_device(friends):
    alice, bob = friends
    laptop = add_device(user_of(alice), one_time_count=1)
    response = bob.client.post_json(f"{KEYS}/bundles", {"email": alice.email})
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["identity_key"] == alice.keys.identity_key
    assert [d["device_id"] for d in answer["devices"]] == [1, laptop.device_id]
    assert answer["devices"][0]["signed_prekey"] == alice.keys.signed_prekey_payload()
    assert answer["devices"][1]["signed_prekey"] == laptop.keys.signed_prekey_payload()
    assert answer["devices"][1]["one_time_prekey"]["key_id"] == 1
    again = bob.client.post_json(f"{KEYS}/bundles", {"email": alice.email, "device_ids": [laptop.device_id, 9]}).json()
    assert [d["device_id"] for d in again["devices"]] == [laptop.device_id]
    assert again["devices"][0]["one_time_prekey"] is None  # its only one was claimed
    assert OneTimePreKey.objects.filter(device__user_id=alice.id, claimed_at__isnull=False).count() == 2


def test_bundles_of_your_own_account_leave_your_device_out(alice, alice_laptop):
    _, laptop = alice_laptop
    answer = laptop.post_json(f"{KEYS}/bundles", {"email": alice.email}).json()
    assert [d["device_id"] for d in answer["devices"]] == [1]
    ids = laptop.post_json(f"{KEYS}/devices", {"email": alice.email.upper()}).json()
    assert ids == {"identity_key": alice.keys.identity_key, "device_ids": [1, 2]}


@pytest.mark.parametrize("path", ["bundles", "devices"])
def test_strangers_and_pending_requests_get_the_same_404_as_an_unknown_email(alice, bob, path):
    for email in (bob.email, "nobody@example.test"):
        response = alice.client.post_json(f"{KEYS}/{path}", {"email": email})
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    alice.client.post_json("/api/v1/contacts/requests", {"email": bob.email})
    assert alice.client.post_json(f"{KEYS}/{path}", {"email": bob.email}).status_code == 404


@pytest.mark.parametrize("device_ids", [[], [0], list(range(1, 8)), ["a"], 3])
def test_a_malformed_device_list_is_400(friends, device_ids):
    alice, bob = friends
    response = bob.client.post_json(f"{KEYS}/bundles", {"email": alice.email, "device_ids": device_ids})
    assert response.status_code == 400


def test_the_version_1_bundle_is_the_lowest_active_device(friends):
    alice, bob = friends
    laptop = add_device(user_of(alice))
    device_unlink(user=user_of(alice), device_id=1)
    bundle = bob.client.post_json(f"{KEYS}/bundle", {"email": alice.email}).json()
    assert bundle["signed_prekey"] == laptop.keys.signed_prekey_payload()
    ids = bob.client.post_json(f"{KEYS}/devices", {"email": alice.email}).json()["device_ids"]
    assert ids == [laptop.device_id]


def test_each_device_uploads_counts_and_rotates_its_own_keys(alice, alice_laptop):
    laptop_device, laptop = alice_laptop
    keys = laptop_device.keys
    # Key ids are per device: the laptop may use ids the first device used.
    upload = laptop.post_json(f"{KEYS}/prekeys", {"one_time_prekeys": keys.new_one_time_prekeys(5)})
    assert upload.status_code == 201, upload.content
    assert upload.json() == {"count": 15}
    assert laptop.get(f"{KEYS}/prekeys/count").json()["count"] == 15
    assert alice.client.get(f"{KEYS}/prekeys/count").json()["count"] == 10
    rotated = laptop.put_json(f"{KEYS}/signed-prekey", keys.signed_prekey_payload(key_id=2))
    assert rotated.status_code == 200, rotated.content
    assert laptop.get(f"{KEYS}/prekeys/count").json()["signed_prekey_id"] == 2
    assert alice.client.get(f"{KEYS}/prekeys/count").json()["signed_prekey_id"] == 1
