"""Key reads: identity lookups scoped to related users, the prekey status, the audit."""

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from django.utils import timezone

from contacts.tests.helpers import ask, befriend, make_user, reject
from keys import selectors
from keys.models import ONE_TIME_PREKEYS_LOW, ONE_TIME_PREKEYS_MAX_UNUSED, IdentityKey, OneTimePreKey, SignedPreKey
from keys.services import one_time_prekey_claim, signed_prekey_rotate
from tests.helpers import DeviceKeys, b64

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return make_user()


@pytest.fixture
def bob():
    return make_user()


def test_identity_key_for_contacts_and_pending_counterparties_both_ways(alice, bob):
    carol = make_user()
    befriend(alice, bob)
    ask(carol, alice)
    assert selectors.identity_key_for(viewer_id=alice.id, email=bob.email) == bob.device.identity_key
    assert selectors.identity_key_for(viewer_id=bob.id, email=alice.email) == alice.device.identity_key
    assert selectors.identity_key_for(viewer_id=alice.id, email=carol.email) == carol.device.identity_key
    assert selectors.identity_key_for(viewer_id=carol.id, email=alice.email) == alice.device.identity_key


def test_identity_key_for_strangers_and_unknown_emails_is_none(alice, bob):
    assert selectors.identity_key_for(viewer_id=alice.id, email=bob.email) is None
    assert selectors.identity_key_for(viewer_id=alice.id, email="nobody@example.test") is None


def test_identity_key_after_a_rejection_only_for_the_unaware_requester(alice, bob):
    reject(alice, bob)
    assert selectors.identity_key_for(viewer_id=alice.id, email=bob.email) == bob.device.identity_key
    assert selectors.identity_key_for(viewer_id=bob.id, email=alice.email) is None


def test_prekey_status_reports_unused_count_and_signed_prekey_age(alice, settings):
    settings.SIGNED_PREKEY_MAX_AGE_DAYS = 7
    one_time_prekey_claim(device_pk=alice.devices.get(device_id=1).pk)
    created = SignedPreKey.objects.get(user=alice).created_at
    status = selectors.prekey_status(user_id=alice.id, device_id=1, now=created + timedelta(hours=2))
    assert status == selectors.PreKeyStatus(
        identity_key=IdentityKey.objects.get(user=alice).public_key,
        count=9,
        low_threshold=ONE_TIME_PREKEYS_LOW,
        max_unused=ONE_TIME_PREKEYS_MAX_UNUSED,
        signed_prekey_id=1,
        signed_prekey_created_at=created,
        signed_prekey_age_seconds=7200,
        signed_prekey_max_age_seconds=7 * 86400,
    )


def test_prekey_status_follows_the_current_signed_prekey(alice):
    private = X25519PrivateKey.generate()
    signed_prekey_rotate(user=alice, device_id=1, **alice.device.signed_prekey_payload(key_id=7, private=private))
    assert selectors.prekey_status(user_id=alice.id, device_id=1).signed_prekey_id == 7


def test_fingerprint_is_five_groups_of_hex():
    assert selectors.fingerprint(DeviceKeys().identity_key).count(" ") == 4
    assert len(selectors.fingerprint(DeviceKeys().identity_key)) == 24
    assert selectors.fingerprint("%%%") == "(not base64)"


# --- audit ------------------------------------------------------------------------------------


def audit_of(user) -> selectors.PreKeyAudit:
    [audit] = selectors.prekeys_audit(email=user.email)
    return audit


def test_audit_of_a_healthy_account_finds_nothing(alice):
    audit = audit_of(alice)
    assert (audit.email, audit.unused_one_time_prekeys, audit.signed_prekey_id, audit.problems) == (
        alice.email,
        10,
        1,
        [],
    )
    assert audit.signed_prekey_age_days == 0.0


def test_audit_flags_low_and_exhausted_one_time_prekeys():
    low, empty = make_user(one_time_count=ONE_TIME_PREKEYS_LOW - 1), make_user(one_time_count=0)
    assert audit_of(low).problems == [selectors.ONE_TIME_PREKEYS_LOW_PROBLEM]
    assert audit_of(empty).problems == [selectors.NO_ONE_TIME_PREKEYS]


def test_audit_flags_a_signed_prekey_older_than_the_maximum(alice, settings):
    settings.SIGNED_PREKEY_MAX_AGE_DAYS = 30
    SignedPreKey.objects.filter(user=alice).update(created_at=timezone.now() - timedelta(days=31))
    audit = audit_of(alice)
    assert audit.problems == [selectors.SIGNED_PREKEY_STALE]
    assert audit.signed_prekey_age_days == 31.0


def test_audit_reverifies_every_stored_signature(alice):
    forged = b64(DeviceKeys().identity.sign(b"\0" * 32))
    signed_prekey_rotate(
        user=alice, device_id=1, **alice.device.signed_prekey_payload(key_id=2, private=X25519PrivateKey.generate())
    )
    SignedPreKey.objects.filter(user=alice, key_id=1).update(signature=forged)  # the retired one
    assert audit_of(alice).problems == [selectors.BAD_SIGNATURE]


def test_audit_flags_an_identity_key_that_no_longer_validates(alice):
    IdentityKey.objects.filter(user=alice).update(public_key=b64(bytes(32)))  # a low-order point
    assert audit_of(alice).problems == [selectors.BAD_SIGNATURE, selectors.INVALID_IDENTITY_KEY]


def test_audit_flags_one_time_prekeys_uploaded_twice_under_two_ids(alice):
    duplicate = OneTimePreKey.objects.get(user=alice, key_id=1).public_key
    OneTimePreKey.objects.filter(user=alice, key_id=2).update(public_key=duplicate)
    assert audit_of(alice).problems == [selectors.DUPLICATE_PUBLIC_KEYS]


def test_audit_skips_deactivated_accounts_and_accounts_without_keys(alice, bob, django_user_model):
    bob.is_active = False
    bob.save()
    django_user_model.objects.create_user("operator@example.test", "an operator password")
    assert [a.email for a in selectors.prekeys_audit()] == [alice.email]


def test_audit_runs_a_fixed_number_of_queries(django_assert_max_num_queries):
    for _ in range(5):
        make_user()
    with django_assert_max_num_queries(7):
        assert len(selectors.prekeys_audit()) == 5
