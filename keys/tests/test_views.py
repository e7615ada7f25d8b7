"""/api/v1/keys/: happy paths, the same 404 for everyone but contacts, key checks at the
boundary, authentication and CSRF."""

from http.cookies import SimpleCookie

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rest_framework.test import APIClient

from keys.models import IdentityKey, OneTimePreKey, SignedPreKey
from keys.tests.test_validation import SMALL_ORDER, with_torsion
from tests.helpers import CsrfClient, DeviceKeys, b64, raw_public

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/keys"
# Curve25519 points of small order (all-zero, u=1, an order-8 point): a DH with them yields a
# predictable shared secret.
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]
LOW_ORDER_IDS = ["all-zero", "u=1", "order-8"]


def befriend(a, b):
    response = a.client.post_json("/api/v1/contacts/requests", {"email": b.email})
    assert response.status_code == 201, response.content
    response = b.client.put_json(f"/api/v1/contacts/requests/{response.json()['id']}", {"action": "accept"})
    assert response.status_code == 200, response.content


def fetch_bundle(account, email: str):
    return account.client.post_json(f"{KEYS}/bundle", {"email": email})


def lookup_identity(account, email: str):
    return account.client.post_json(f"{KEYS}/identity/lookup", {"email": email})


def fresh_key() -> str:
    return b64(raw_public(X25519PrivateKey.generate()))


@pytest.fixture
def alice(make_account):
    return make_account()


@pytest.fixture
def bob(make_account):
    return make_account()


@pytest.fixture
def friends(alice, bob):
    befriend(alice, bob)
    return alice, bob


# --- bundle --------------------------------------------------------------------------------


def test_bundle_of_a_contact(friends):
    alice, bob = friends
    response = fetch_bundle(alice, bob.email)
    assert response.status_code == 200
    assert response.json() == {
        "identity_key": bob.keys.identity_key,
        "signed_prekey": bob.keys.signed_prekey_payload(),
        "one_time_prekey": {"key_id": 1, "public_key": b64(raw_public(bob.keys.one_time[1]))},
    }
    assert fetch_bundle(alice, bob.email).json()["one_time_prekey"]["key_id"] == 2


def test_exhausted_bundle_has_a_null_one_time_prekey(make_account):
    alice, bob = make_account(), make_account(one_time_count=1)
    befriend(alice, bob)
    assert fetch_bundle(alice, bob.email).json()["one_time_prekey"]["key_id"] == 1
    response = fetch_bundle(alice, bob.email)
    assert response.status_code == 200
    assert response.json()["one_time_prekey"] is None


@pytest.mark.parametrize("relation", ["stranger", "pending", "unknown"])
def test_bundle_is_404_alike_for_strangers_pending_requests_and_unknown_emails(alice, bob, relation):
    email = "nobody@example.test" if relation == "unknown" else bob.email
    if relation == "pending":
        alice.client.post_json("/api/v1/contacts/requests", {"email": bob.email})
    response = fetch_bundle(alice, email)
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "No contact with this email."}
    assert OneTimePreKey.objects.filter(claimed_at__isnull=False).count() == 0


def test_bundle_is_rate_limited_per_pair(friends, settings):
    alice, bob = friends
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "prekey_bundle": "6/3600"}
    for _ in range(6):
        assert fetch_bundle(alice, bob.email).status_code == 200
    response = fetch_bundle(alice, bob.email)
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")
    assert int(response["Retry-After"]) > 0


# --- identity lookup -----------------------------------------------------------------------


def test_identity_of_a_contact_and_of_a_pending_counterparty(alice, bob, make_account):
    carol = make_account()
    befriend(alice, bob)
    carol.client.post_json("/api/v1/contacts/requests", {"email": alice.email})
    assert lookup_identity(alice, bob.email).json() == {"identity_key": bob.keys.identity_key}
    assert lookup_identity(alice, carol.email).json() == {"identity_key": carol.keys.identity_key}
    assert lookup_identity(carol, alice.email).json() == {"identity_key": alice.keys.identity_key}


def test_identity_of_a_stranger_is_404_like_an_unknown_email(alice, bob):
    stranger = lookup_identity(alice, bob.email)
    unknown = lookup_identity(alice, "nobody@example.test")
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json() == unknown.json()


# --- prekeys -------------------------------------------------------------------------------


def test_prekey_count(alice):
    body = alice.client.get(f"{KEYS}/prekeys/count").json()
    assert (body["count"], body["low_threshold"], body["max_unused"], body["signed_prekey_id"]) == (10, 10, 500, 1)
    assert body["signed_prekey_age_seconds"] >= 0
    assert body["signed_prekey_max_age_seconds"] == 30 * 86400
    assert body["identity_key"] == alice.keys.identity_key


def test_upload_one_time_prekeys(alice):
    response = alice.client.post_json(f"{KEYS}/prekeys", {"one_time_prekeys": alice.keys.new_one_time_prekeys(20)})
    assert (response.status_code, response.json()) == (201, {"count": 30})
    assert alice.client.get(f"{KEYS}/prekeys/count").json()["count"] == 30


def test_upload_refuses_a_reused_key_id_with_409(alice):
    keys = [{"key_id": 3, "public_key": fresh_key()}]
    response = alice.client.post_json(f"{KEYS}/prekeys", {"one_time_prekeys": keys})
    assert (response.status_code, response.json()["code"]) == (409, "key_id_reused")
    assert OneTimePreKey.objects.get(user_id=alice.id, key_id=3).public_key == b64(raw_public(alice.keys.one_time[3]))


def test_upload_above_the_cap_is_409_with_the_reason(alice):
    for _ in range(4):
        alice.client.post_json(f"{KEYS}/prekeys", {"one_time_prekeys": alice.keys.new_one_time_prekeys(100)})
    response = alice.client.post_json(f"{KEYS}/prekeys", {"one_time_prekeys": alice.keys.new_one_time_prekeys(91)})
    assert (response.status_code, response.json()["code"]) == (409, "too_many_prekeys")
    assert "at most 90 more" in response.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"one_time_prekeys": []}, "one_time_prekeys"),
        ({}, "one_time_prekeys"),
        ({"one_time_prekeys": "nope"}, "one_time_prekeys"),
        ({"one_time_prekeys": [{"key_id": -1, "public_key": "AA=="}]}, "one_time_prekeys"),
        ({"one_time_prekeys": [{"key_id": 2**31, "public_key": "AA=="}]}, "one_time_prekeys"),
    ],
)
def test_upload_refuses_malformed_input(alice, payload, field):
    response = alice.client.post_json(f"{KEYS}/prekeys", payload)
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert field in response.json()["errors"]


def test_upload_of_more_than_100_keys_at_once_is_400(alice):
    response = alice.client.post_json(f"{KEYS}/prekeys", {"one_time_prekeys": alice.keys.new_one_time_prekeys(101)})
    assert response.status_code == 400
    assert OneTimePreKey.objects.filter(user_id=alice.id).count() == 10


def test_upload_with_a_duplicate_id_inside_the_batch_is_400(alice):
    keys = [{"key_id": 50, "public_key": fresh_key()}, {"key_id": 50, "public_key": fresh_key()}]
    assert alice.client.post_json(f"{KEYS}/prekeys", {"one_time_prekeys": keys}).status_code == 400


@pytest.mark.parametrize("point", LOW_ORDER, ids=LOW_ORDER_IDS)
def test_upload_refuses_low_order_keys(alice, point):
    keys = [{"key_id": 50, "public_key": b64(point)}]
    response = alice.client.post_json(f"{KEYS}/prekeys", {"one_time_prekeys": keys})
    assert response.status_code == 400
    assert not OneTimePreKey.objects.filter(key_id=50).exists()


@pytest.mark.parametrize(
    "public_key",
    [b64(b"\x09" * 31), b64(b"\x09" * 33), "not base64!", b64(b"\x09" * 32).rstrip("=")],
    ids=["31-bytes", "33-bytes", "not-base64", "unpadded"],
)
def test_upload_refuses_keys_that_are_not_canonical_32_byte_base64(alice, public_key):
    response = alice.client.post_json(
        f"{KEYS}/prekeys", {"one_time_prekeys": [{"key_id": 50, "public_key": public_key}]}
    )
    assert response.status_code == 400


# --- signed prekey -------------------------------------------------------------------------


def test_rotate_signed_prekey(alice):
    payload = alice.keys.signed_prekey_payload(key_id=2, private=X25519PrivateKey.generate())
    response = alice.client.put_json(f"{KEYS}/signed-prekey", payload)
    assert response.status_code == 200
    assert response.json()["key_id"] == 2
    assert SignedPreKey.objects.get(user_id=alice.id, is_current=True).public_key == payload["public_key"]
    assert SignedPreKey.objects.get(user_id=alice.id, key_id=1).retired_at is not None


def test_rotate_with_a_signature_by_another_identity_is_400(alice):
    payload = DeviceKeys().signed_prekey_payload(key_id=2)
    response = alice.client.put_json(f"{KEYS}/signed-prekey", payload)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_key")
    assert SignedPreKey.objects.filter(user_id=alice.id).count() == 1


def test_rotate_with_a_reused_key_id_is_409(alice):
    payload = alice.keys.signed_prekey_payload(key_id=1, private=X25519PrivateKey.generate())
    response = alice.client.put_json(f"{KEYS}/signed-prekey", payload)
    assert (response.status_code, response.json()["code"]) == (409, "key_id_reused")


@pytest.mark.parametrize("point", LOW_ORDER, ids=LOW_ORDER_IDS)
def test_rotate_refuses_a_low_order_signed_prekey_even_when_signed(alice, point):
    payload = {"key_id": 2, "public_key": b64(point), "signature": b64(alice.keys.identity.sign(point))}
    response = alice.client.put_json(f"{KEYS}/signed-prekey", payload)
    assert response.status_code == 400
    assert "public_key" in response.json()["errors"]


# --- new device ----------------------------------------------------------------------------


def new_device_payload(account, device: DeviceKeys | None = None, password: str | None = None) -> dict:
    device = device or DeviceKeys()
    return {"password": password or account.password, **device.registration_keys(5)}


def test_new_device_replaces_the_keys_and_contacts_see_the_new_identity(friends):
    alice, bob = friends
    device = DeviceKeys()
    response = alice.client.put_json(f"{KEYS}/identity", new_device_payload(alice, device))
    assert response.status_code == 200
    assert response.json() == {"identity_key": device.identity_key, "count": 5, "device": {"id": 2, "name": "Device"}}
    assert lookup_identity(bob, alice.email).json()["identity_key"] == device.identity_key
    assert fetch_bundle(bob, alice.email).json()["signed_prekey"] == device.signed_prekey_payload()


def test_new_device_signs_out_the_old_browser_and_keeps_the_new_one_signed_in(alice, monkeypatch):
    closed = []
    monkeypatch.setattr(
        "accounts.sessions.session_revoked_publish", lambda *, user_id, generation: closed.append(user_id)
    )
    old_browser = CsrfClient()
    old_browser.cookies = SimpleCookie({k: v.value for k, v in alice.client.cookies.items()})
    response = alice.client.put_json(f"{KEYS}/identity", new_device_payload(alice))
    assert response.status_code == 200
    assert closed == [alice.id]
    assert "access_token" in response.cookies
    assert "refresh_token" in response.cookies
    assert alice.client.post_json("/api/v1/auth/refresh").status_code == 200
    assert old_browser.post_json("/api/v1/auth/refresh").status_code == 401
    # Its access token is refused at once too, not when it expires.
    assert old_browser.get("/api/v1/auth/me").status_code == 401
    assert alice.client.get("/api/v1/auth/me").status_code == 200


def test_new_device_with_a_wrong_password_is_403(alice):
    response = alice.client.put_json(f"{KEYS}/identity", new_device_payload(alice, password="wrong password"))
    assert (response.status_code, response.json()["code"]) == (403, "wrong_password")
    assert IdentityKey.objects.get(user_id=alice.id).public_key == alice.keys.identity_key


def test_new_device_with_a_bad_signature_is_400(alice):
    payload = new_device_payload(alice)
    payload["signed_prekey"] = DeviceKeys().signed_prekey_payload()
    response = alice.client.put_json(f"{KEYS}/identity", payload)
    assert response.status_code == 400
    assert "signed_prekey" in response.json()["errors"]


@pytest.mark.parametrize("raw", [bytes(32), (1).to_bytes(32, "little")], ids=["all-zero", "neutral"])
def test_new_device_refuses_a_degenerate_identity_key(alice, raw):
    payload = new_device_payload(alice)
    payload["identity_key"] = b64(raw)
    response = alice.client.put_json(f"{KEYS}/identity", payload)
    assert response.status_code == 400
    assert "identity_key" in response.json()["errors"]


def test_new_device_is_rate_limited(alice, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identity_reset": "1/3600"}
    alice.client.put_json(f"{KEYS}/identity", new_device_payload(alice, password="wrong password"))
    response = alice.client.put_json(f"{KEYS}/identity", new_device_payload(alice))
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")


# --- authentication and CSRF ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "bundle"),
        ("post", "identity/lookup"),
        ("get", "prekeys/count"),
        ("post", "prekeys"),
        ("put", "signed-prekey"),
        ("put", "identity"),
    ],
)
def test_every_route_needs_a_signed_in_user(client_csrf, method, path):
    assert getattr(client_csrf, method)(f"{KEYS}/{path}", {}, format="json").status_code == 401


@pytest.mark.parametrize("route", ["prekeys", "signed-prekey", "identity"])
def test_unsafe_routes_refuse_a_signed_in_request_without_the_csrf_header(alice, route):
    forger = APIClient(enforce_csrf_checks=True)
    forger.cookies = alice.client.cookies
    payloads = {
        "prekeys": ("post", {"one_time_prekeys": alice.keys.new_one_time_prekeys(1)}),
        "signed-prekey": ("put", alice.keys.signed_prekey_payload(key_id=2, private=X25519PrivateKey.generate())),
        "identity": ("put", new_device_payload(alice)),
    }
    method, payload = payloads[route]
    response = getattr(forger, method)(f"{KEYS}/{route}", payload, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert IdentityKey.objects.get(user_id=alice.id).public_key == alice.keys.identity_key
    assert OneTimePreKey.objects.filter(user_id=alice.id).count() == 10
    assert SignedPreKey.objects.filter(user_id=alice.id).count() == 1


def test_new_device_refuses_an_identity_key_with_a_torsion_component(alice):
    device = DeviceKeys()
    payload = new_device_payload(alice, device)
    payload["identity_key"] = b64(with_torsion(raw_public(device.identity), SMALL_ORDER[6]))
    response = alice.client.put_json(f"{KEYS}/identity", payload)
    assert response.status_code == 400
    assert "prime order" in response.json()["errors"]["identity_key"][0]


@pytest.mark.parametrize("route", ["bundle", "identity/lookup"])
def test_lookups_by_email_refuse_a_signed_in_request_without_the_csrf_header(friends, route):
    """They are POSTs now (the email is in the body), so a forged cross-site request must not
    claim a contact's one-time prekey."""
    alice, bob = friends
    forger = APIClient(enforce_csrf_checks=True)
    forger.cookies = alice.client.cookies
    response = forger.post(f"{KEYS}/{route}", {"email": bob.email}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not OneTimePreKey.objects.filter(claimed_at__isnull=False).exists()


def test_lookups_by_email_normalise_it_and_refuse_a_malformed_one(friends):
    alice, bob = friends
    assert fetch_bundle(alice, f"  {bob.email.upper()} ").status_code == 200
    assert lookup_identity(alice, bob.email.upper()).status_code == 200
    for route in ("bundle", "identity/lookup"):
        response = alice.client.post_json(f"{KEYS}/{route}", {"email": "not an email"})
        assert (response.status_code, response.json()["code"]) == (400, "invalid")
        assert alice.client.post_json(f"{KEYS}/{route}", {}).status_code == 400


@pytest.mark.parametrize("path", ["bundle/{email}", "identity/{email}"])
def test_the_old_email_in_path_routes_are_gone(friends, path):
    alice, bob = friends
    response = alice.client.get(f"{KEYS}/{path.format(email=bob.email)}")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert not OneTimePreKey.objects.filter(claimed_at__isnull=False).exists()
