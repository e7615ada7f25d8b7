"""Key services: each one-time prekey handed out once (oldest first, also under concurrency),
bundles only for accepted contacts, ids never reused, signatures verified, device reset."""

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from accounts.sessions import GENERATION_CLAIM, session_generation
from contacts.tests.helpers import add_device, ask, befriend, make_user, reject, run_concurrently
from keys import services
from keys.errors import ContactNotFound, InvalidKeyMaterial, KeyIdReused, NoDeviceKeys, TooManyPreKeys, WrongPassword
from keys.models import ONE_TIME_PREKEYS_LOW, ONE_TIME_PREKEYS_MAX_UNUSED, IdentityKey, OneTimePreKey, SignedPreKey
from messenger.errors import RateLimited
from tests.helpers import DEFAULT_PASSWORD, DeviceKeys, b64, raw_public

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return make_user()


@pytest.fixture
def bob():
    return make_user()


@pytest.fixture
def friends(alice, bob):
    befriend(alice, bob)
    return alice, bob


def fresh_key() -> str:
    return b64(raw_public(X25519PrivateKey.generate()))


def unused(user) -> int:
    return OneTimePreKey.objects.filter(user=user, claimed_at__isnull=True).count()


# --- claiming one-time prekeys ----------------------------------------------------------------


def test_claim_hands_out_each_one_time_prekey_once_oldest_first(alice):
    services.one_time_prekeys_add(user=alice, device_id=1, one_time_prekeys=alice.device.new_one_time_prekeys(3))
    claimed = []
    while True:
        key, remaining = services.one_time_prekey_claim(device_pk=alice.devices.get(device_id=1).pk)
        if key is None:
            break
        claimed.append(key.key_id)
        assert remaining == unused(alice)
    assert claimed == list(range(1, 14))
    assert services.one_time_prekey_claim(device_pk=alice.devices.get(device_id=1).pk) == (None, 0)


def test_claim_only_touches_the_owners_keys(alice, bob):
    """The prototype marked a prekey id used for every user (no user filter)."""
    key, _ = services.one_time_prekey_claim(device_pk=alice.devices.get(device_id=1).pk)
    assert OneTimePreKey.objects.get(user=bob, key_id=key.key_id).claimed_at is None
    assert unused(bob) == 10


def test_bundle_of_a_contact_has_identity_signed_prekey_and_one_time_prekey(friends):
    alice, bob = friends
    bundle = services.prekey_bundle_claim(requester=alice, email=bob.email.upper())
    assert bundle.identity_key == bob.device.identity_key
    assert bundle.signed_prekey == bob.device.signed_prekey_payload()
    assert bundle.one_time_prekey == {"key_id": 1, "public_key": b64(raw_public(bob.device.one_time[1]))}
    assert unused(bob) == 9


@pytest.mark.parametrize("relation", ["stranger", "pending_out", "pending_in", "rejected", "unknown", "self", "banned"])
def test_bundle_is_the_same_not_found_for_anyone_but_an_accepted_contact(alice, bob, relation):
    email = bob.email
    if relation == "pending_out":
        ask(alice, bob)
    elif relation == "pending_in":
        ask(bob, alice)
    elif relation == "rejected":
        reject(alice, bob)
    elif relation == "unknown":
        email = "nobody@example.test"
    elif relation == "self":
        email = alice.email
    elif relation == "banned":
        befriend(alice, bob)
        bob.is_active = False
        bob.save()
    with pytest.raises(ContactNotFound) as error:
        services.prekey_bundle_claim(requester=alice, email=email)
    assert (error.value.status_code, error.value.code, error.value.detail) == (
        404,
        "not_found",
        "No contact with this email.",
    )
    assert unused(bob) == 10


def test_exhausted_bundle_has_no_one_time_prekey_and_tells_the_owner(
    friends, published, django_capture_on_commit_callbacks
):
    alice, bob = friends
    OneTimePreKey.objects.filter(user=bob).update(claimed_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        bundle = services.prekey_bundle_claim(requester=alice, email=bob.email)
    assert bundle.one_time_prekey is None
    assert bundle.signed_prekey["key_id"] == bob.device.signed_prekey_id
    assert published == [([bob.id], {"type": "prekeys_low", "device_id": 1, "remaining": 0})]


def test_owner_is_told_when_a_claim_leaves_fewer_than_the_low_threshold(
    published, django_capture_on_commit_callbacks, settings
):
    settings.RATE_LIMITS_ENABLED = False
    alice, bob = make_user(), make_user(one_time_count=ONE_TIME_PREKEYS_LOW + 1)
    befriend(alice, bob)
    with django_capture_on_commit_callbacks(execute=True):
        services.prekey_bundle_claim(requester=alice, email=bob.email)  # leaves LOW: fine
    assert published == []
    with django_capture_on_commit_callbacks(execute=True):
        services.prekey_bundle_claim(requester=alice, email=bob.email)  # leaves LOW - 1
    assert published == [([bob.id], {"type": "prekeys_low", "device_id": 1, "remaining": ONE_TIME_PREKEYS_LOW - 1})]


def test_bundles_are_rate_limited_per_requester_and_owner_pair(friends, settings):
    alice, bob = friends
    carol = make_user()
    befriend(carol, bob)
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "prekey_bundle": "6/3600"}
    for _ in range(6):
        services.prekey_bundle_claim(requester=alice, email=bob.email)
    with pytest.raises(RateLimited):
        services.prekey_bundle_claim(requester=alice, email=bob.email)
    assert unused(bob) == 4  # the refused fetch claimed nothing
    services.prekey_bundle_claim(requester=carol, email=bob.email)  # another pair, another bucket
    services.prekey_bundle_claim(requester=bob, email=alice.email)


def test_bundle_fetches_by_strangers_do_not_count_against_the_limit(alice, bob, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "prekey_bundle": "1/3600"}
    for _ in range(3):
        with pytest.raises(ContactNotFound):
            services.prekey_bundle_claim(requester=alice, email=bob.email)
    befriend(alice, bob)
    services.prekey_bundle_claim(requester=alice, email=bob.email)


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_bundle_fetches_get_fifty_distinct_one_time_prekeys(settings):
    """The prototype handed 20 concurrent claims 11 distinct keys. Each thread has its own
    connection and transaction; SELECT ... FOR UPDATE SKIP LOCKED gives each a different row."""
    settings.RATE_LIMITS_ENABLED = False
    alice, bob = make_user(), make_user(one_time_count=0)
    befriend(alice, bob)
    for _ in range(2):
        services.one_time_prekeys_add(user=bob, device_id=1, one_time_prekeys=bob.device.new_one_time_prekeys(40))
    before = unused(bob)
    bundles = run_concurrently([lambda: services.prekey_bundle_claim(requester=alice, email=bob.email)] * 50)
    assert not [b for b in bundles if isinstance(b, Exception)], bundles
    key_ids = [b.one_time_prekey["key_id"] for b in bundles]
    assert len(set(key_ids)) == 50
    assert before - unused(bob) == 50
    assert OneTimePreKey.objects.filter(user=bob, claimed_at__isnull=False).count() == 50
    assert sorted(key_ids) == list(range(1, 51))  # oldest first: the first 50 uploaded


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_concurrent_fetches_beyond_the_supply_get_null_never_a_key_twice(settings):
    settings.RATE_LIMITS_ENABLED = False
    alice, bob = make_user(), make_user(one_time_count=5)
    befriend(alice, bob)
    bundles = run_concurrently([lambda: services.prekey_bundle_claim(requester=alice, email=bob.email)] * 12)
    handed_out = [b.one_time_prekey["key_id"] for b in bundles if b.one_time_prekey]
    assert sorted(handed_out) == [1, 2, 3, 4, 5]
    assert sum(b.one_time_prekey is None for b in bundles) == 7


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_concurrent_fetches_of_every_device_claim_each_key_once_and_unlink_waits_for_them(settings):
    """Bundles per device (docs/PROTOCOL.md section 16) under concurrency: 3 devices with 6
    keys each, 12 concurrent fetches and an unlink of device 2 among them. No key is handed
    out twice, each device hands out at most its 6, and a fetch that ran after the unlink
    has no bundle of device 2."""
    settings.RATE_LIMITS_ENABLED = False
    alice, bob = make_user(), make_user(one_time_count=6)
    befriend(alice, bob)
    add_device(bob, one_time_count=6)
    add_device(bob, one_time_count=6)
    calls = [lambda: services.prekey_bundles_claim(requester=alice, requester_device_id=1, email=bob.email)] * 12
    calls.insert(6, lambda: services.device_unlink(user=bob, device_id=2))
    outcomes = run_concurrently(calls)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    handed_out = [
        (device.device_id, device.one_time_prekey["key_id"])
        for bundles in outcomes
        if bundles is not None
        for device in bundles.devices
        if device.one_time_prekey
    ]
    assert len(handed_out) == len(set(handed_out))
    for device_id in (1, 3):
        assert sorted(k for d, k in handed_out if d == device_id) == [1, 2, 3, 4, 5, 6]
    assert len([k for d, k in handed_out if d == 2]) <= 6
    assert not OneTimePreKey.objects.filter(device__user=bob, device__device_id=2).exists()


# --- uploading one-time prekeys ------------------------------------------------------------


def test_upload_stores_keys_and_returns_the_unused_count(alice):
    assert (
        services.one_time_prekeys_add(user=alice, device_id=1, one_time_prekeys=alice.device.new_one_time_prekeys(5))
        == 15
    )
    assert unused(alice) == 15


@pytest.mark.parametrize("state", ["unused", "claimed"])
def test_upload_refuses_a_reused_key_id_as_a_whole(alice, state):
    if state == "claimed":
        services.one_time_prekey_claim(device_pk=alice.devices.get(device_id=1).pk)
    original = OneTimePreKey.objects.get(user=alice, key_id=1).public_key
    batch = [*alice.device.new_one_time_prekeys(2), {"key_id": 1, "public_key": fresh_key()}]
    with pytest.raises(KeyIdReused):
        services.one_time_prekeys_add(user=alice, device_id=1, one_time_prekeys=batch)
    assert OneTimePreKey.objects.get(user=alice, key_id=1).public_key == original
    assert OneTimePreKey.objects.filter(user=alice).count() == 10


def test_the_same_key_id_may_be_used_by_two_users(alice, bob):
    assert OneTimePreKey.objects.filter(user=bob, key_id=1).exists()
    services.one_time_prekeys_add(user=bob, device_id=1, one_time_prekeys=[{"key_id": 11, "public_key": fresh_key()}])
    services.one_time_prekeys_add(user=alice, device_id=1, one_time_prekeys=[{"key_id": 11, "public_key": fresh_key()}])
    assert OneTimePreKey.objects.filter(key_id=11).count() == 2


def test_upload_refuses_to_go_above_the_cap_on_unused_keys(alice):
    device = alice.device
    while unused(alice) + 100 <= ONE_TIME_PREKEYS_MAX_UNUSED:
        services.one_time_prekeys_add(user=alice, device_id=1, one_time_prekeys=device.new_one_time_prekeys(100))
    room = ONE_TIME_PREKEYS_MAX_UNUSED - unused(alice)
    with pytest.raises(TooManyPreKeys, match=f"at most {room} more"):
        services.one_time_prekeys_add(user=alice, device_id=1, one_time_prekeys=device.new_one_time_prekeys(room + 1))
    assert (
        services.one_time_prekeys_add(user=alice, device_id=1, one_time_prekeys=device.new_one_time_prekeys(room))
        == 500
    )
    # Claimed keys no longer count against the cap.
    services.one_time_prekey_claim(device_pk=alice.devices.get(device_id=1).pk)
    assert (
        services.one_time_prekeys_add(user=alice, device_id=1, one_time_prekeys=device.new_one_time_prekeys(1)) == 500
    )


def test_upload_without_device_keys_is_refused():
    operator = User.objects.create_user("operator@example.test", "a long operator password")
    with pytest.raises(NoDeviceKeys):
        services.one_time_prekeys_add(user=operator, device_id=1, one_time_prekeys=DeviceKeys().new_one_time_prekeys(1))


# --- rotating the signed prekey ------------------------------------------------------------


def rotate(user, key_id: int, *, signer=None, private=None):
    private = private or X25519PrivateKey.generate()
    payload = user.device.signed_prekey_payload(key_id=key_id, private=private)
    if signer is not None:
        payload["signature"] = b64(signer.sign(raw_public(private)))
    return services.signed_prekey_rotate(user=user, device_id=1, **payload)


def test_rotation_makes_the_new_key_current_and_retires_the_old_one(friends):
    alice, bob = friends
    new = rotate(bob, 2)
    old = SignedPreKey.objects.get(user=bob, key_id=1)
    assert old.retired_at is not None
    assert old.is_current is None
    assert (new.key_id, new.is_current, new.retired_at) == (2, True, None)
    assert services.prekey_bundle_claim(requester=alice, email=bob.email).signed_prekey["key_id"] == 2


def test_rotation_refuses_a_signature_by_another_identity(alice):
    with pytest.raises(InvalidKeyMaterial, match="does not verify"):
        rotate(alice, 2, signer=DeviceKeys().identity)
    assert list(SignedPreKey.objects.filter(user=alice).values_list("key_id", "is_current")) == [(1, True)]


def test_rotation_refuses_a_signature_over_another_key(alice):
    payload = alice.device.signed_prekey_payload(key_id=2, private=X25519PrivateKey.generate())
    payload["public_key"] = fresh_key()
    with pytest.raises(InvalidKeyMaterial):
        services.signed_prekey_rotate(user=alice, device_id=1, **payload)


@pytest.mark.parametrize("reused", ["current", "retired"])
def test_rotation_refuses_a_key_id_still_on_record(alice, reused):
    rotate(alice, 2)
    with pytest.raises(KeyIdReused):
        rotate(alice, 2 if reused == "current" else 1)
    assert SignedPreKey.objects.get(user=alice, is_current=True).key_id == 2


def test_rotation_deletes_retired_keys_past_the_grace_period(alice, settings):
    settings.SIGNED_PREKEY_GRACE_DAYS = 30
    rotate(alice, 2)
    rotate(alice, 3)
    SignedPreKey.objects.filter(user=alice, key_id=1).update(retired_at=timezone.now() - timedelta(days=31))
    rotate(alice, 4)
    assert sorted(SignedPreKey.objects.filter(user=alice).values_list("key_id", flat=True)) == [2, 3, 4]


def test_database_admits_one_current_signed_prekey_per_user(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        SignedPreKey.objects.create(user=alice, key_id=9, public_key="x", signature="y")
    with pytest.raises(IntegrityError), transaction.atomic():
        SignedPreKey.objects.filter(user=alice).update(is_current=None)  # neither current nor retired


# --- a new device (identity reset) ---------------------------------------------------------


def reset_payload(device: DeviceKeys | None = None) -> dict:
    device = device or DeviceKeys()
    return {
        "identity_key": device.identity_key,
        "signed_prekey": device.signed_prekey_payload(),
        "one_time_prekeys": device.new_one_time_prekeys(3),
    }


def test_identity_reset_replaces_every_key_of_the_old_device(alice):
    rotate(alice, 2)
    new = DeviceKeys()
    count = services.identity_reset(user=alice, password=DEFAULT_PASSWORD, **reset_payload(new)).count
    assert count == 3
    assert IdentityKey.objects.get(user=alice).public_key == new.identity_key
    assert list(SignedPreKey.objects.filter(user=alice).values_list("public_key", flat=True)) == [
        new.signed_prekey_payload()["public_key"]
    ]
    assert sorted(OneTimePreKey.objects.filter(user=alice).values_list("public_key", flat=True)) == sorted(
        b64(raw_public(k)) for k in new.one_time.values()
    )


def test_identity_reset_tells_contacts_and_pending_counterparties_only(
    alice, published, django_capture_on_commit_callbacks
):
    contact, asked_me, i_asked, rejected_me, stranger = (make_user() for _ in range(5))
    befriend(alice, contact)
    ask(asked_me, alice)
    ask(alice, i_asked)
    reject(rejected_me, alice)
    payload = reset_payload()
    with django_capture_on_commit_callbacks(execute=True):
        services.identity_reset(user=alice, password=DEFAULT_PASSWORD, **payload)
    [(user_ids, event)] = published
    assert sorted(user_ids) == sorted([contact.id, asked_me.id, i_asked.id])
    assert event == {"type": "identity_changed", "email": alice.email, "identity_key": payload["identity_key"]}
    assert stranger.id not in user_ids
    assert rejected_me.id not in user_ids


def test_identity_reset_with_a_wrong_password_changes_nothing(alice, published, django_capture_on_commit_callbacks):
    befriend(alice, make_user())
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(WrongPassword):
        services.identity_reset(user=alice, password="not the password", **reset_payload())
    assert IdentityKey.objects.get(user=alice).public_key == alice.device.identity_key
    assert unused(alice) == 10
    assert published == []


def test_identity_reset_signs_the_new_device_in_with_a_token_of_the_new_generation(alice):
    before = session_generation(user_id=alice.id)
    reset = services.identity_reset(user=alice, password=DEFAULT_PASSWORD, **reset_payload())
    assert session_generation(user_id=alice.id) == before + 1
    assert AccessToken(reset.tokens.access)[GENERATION_CLAIM] == before + 1
    assert RefreshToken(reset.tokens.refresh)[GENERATION_CLAIM] == before + 1


def test_identity_reset_that_fails_to_sign_the_new_device_in_changes_nothing(
    alice, published, django_capture_on_commit_callbacks, monkeypatch
):
    """Keys, session end and the new device's tokens are one transaction: the old browser is
    never signed out by a reset that leaves the new one without a session."""
    befriend(alice, make_user())
    before = session_generation(user_id=alice.id)

    def fail(**kwargs):
        raise RuntimeError("token store failed")

    monkeypatch.setattr(services, "tokens_issue", fail)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        services.identity_reset(user=alice, password=DEFAULT_PASSWORD, **reset_payload())
    assert IdentityKey.objects.get(user=alice).public_key == alice.device.identity_key
    assert session_generation(user_id=alice.id) == before
    assert published == []


def test_identity_reset_is_rate_limited_and_wrong_passwords_count(alice, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identity_reset": "2/3600"}
    for _ in range(2):
        with pytest.raises(WrongPassword):
            services.identity_reset(user=alice, password="guess", **reset_payload())
    with pytest.raises(RateLimited):
        services.identity_reset(user=alice, password=DEFAULT_PASSWORD, **reset_payload())


# --- purging -------------------------------------------------------------------------------


def test_purge_deletes_only_claimed_and_retired_keys_older_than_the_cutoff(alice):
    rotate(alice, 2)
    long_ago = timezone.now() - timedelta(days=40)
    OneTimePreKey.objects.filter(user=alice, key_id__in=[1, 2]).update(claimed_at=long_ago)
    OneTimePreKey.objects.filter(user=alice, key_id=3).update(claimed_at=timezone.now())
    SignedPreKey.objects.filter(user=alice, key_id=1).update(retired_at=long_ago)

    assert services.prekeys_purge(older_than_days=30, dry_run=True) == services.PurgeResult(2, 1)
    assert OneTimePreKey.objects.filter(user=alice).count() == 10
    assert services.prekeys_purge(older_than_days=30) == services.PurgeResult(2, 1)
    assert sorted(OneTimePreKey.objects.filter(user=alice).values_list("key_id", flat=True)) == list(range(3, 11))
    assert list(SignedPreKey.objects.filter(user=alice).values_list("key_id", flat=True)) == [2]
    assert services.prekeys_purge(older_than_days=30) == services.PurgeResult(0, 0)
