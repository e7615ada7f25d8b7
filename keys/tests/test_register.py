"""POST /api/v1/auth/register: account and public keys in one transaction, every key checked."""

import base64

import pytest
from django.db import connection

from accounts.models import User
from keys.models import IdentityKey, OneTimePreKey, SignedPreKey
from tests.helpers import DeviceKeys, FastPepperedPBKDF2PasswordHasher, b64, registration_payload

URL = "/api/v1/auth/register"
pytestmark = pytest.mark.django_db

# Curve25519 points of small order (all-zero, u=1, and an order-8 point): DH with them
# yields a predictable shared secret.
LOW_ORDER_X25519 = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


def test_register_creates_user_and_keys(client_csrf):
    payload = registration_payload(one_time_count=100)
    response = client_csrf.post_json(URL, payload)
    assert response.status_code == 201, response.json()
    user = User.objects.get(email=payload["email"])
    assert response.json() == {
        "id": user.id,
        "email": payload["email"],
        "date_joined": response.json()["date_joined"],
        "device": {"id": 1, "name": "Device"},
    }
    assert IdentityKey.objects.get(user=user).public_key == payload["identity_key"]
    assert SignedPreKey.objects.get(user=user).key_id == payload["signed_prekey"]["key_id"]
    assert OneTimePreKey.objects.filter(user=user).count() == 100


def test_email_is_unique_regardless_of_case(client_csrf):
    payload = registration_payload("Alice@Example.test")
    assert client_csrf.post_json(URL, payload).status_code == 201
    again = client_csrf.post_json(URL, registration_payload("alice@example.TEST"))
    assert again.status_code == 400
    assert again.json()["code"] == "email_taken"
    assert User.objects.get().email == "alice@example.test"


def test_bad_signature_is_rejected(client_csrf):
    payload = registration_payload()
    payload["signed_prekey"]["signature"] = b64(DeviceKeys().identity.sign(b"something else"))
    response = client_csrf.post_json(URL, payload)
    assert response.status_code == 400
    assert "signed_prekey" in response.json()["errors"]
    assert not User.objects.exists()


def test_signature_by_another_identity_is_rejected(client_csrf):
    payload = registration_payload()
    payload["signed_prekey"] = DeviceKeys().signed_prekey_payload()
    assert client_csrf.post_json(URL, payload).status_code == 400


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("identity_key", "not base64!"),
        ("identity_key", b64(bytes(31))),
        ("identity_key", b64(bytes(33))),
        ("identity_key", base64.b64encode(bytes(32)).decode().rstrip("=")),
        ("identity_key", 12345),
        ("identity_key", b64((1).to_bytes(32, "little"))),  # Ed25519 neutral element
        ("identity_key", b64(bytes(31) + b"\x80")),  # maps to u=1 (y=0, small order)
    ],
)
def test_malformed_identity_key_is_rejected(client_csrf, field, value):
    payload = registration_payload()
    payload[field] = value
    response = client_csrf.post_json(URL, payload)
    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.parametrize("point", LOW_ORDER_X25519)
def test_low_order_prekeys_are_rejected(client_csrf, point):
    payload = registration_payload()
    payload["one_time_prekeys"][0]["public_key"] = b64(point)
    response = client_csrf.post_json(URL, payload)
    assert response.status_code == 400
    assert "one_time_prekeys" in response.json()["errors"]


def test_low_order_signed_prekey_is_rejected_even_if_signed(client_csrf):
    keys = DeviceKeys()
    payload = registration_payload(keys=keys)
    payload["signed_prekey"] = {
        "key_id": 1,
        "public_key": b64(bytes(32)),
        "signature": b64(keys.identity.sign(bytes(32))),
    }
    response = client_csrf.post_json(URL, payload)
    assert response.status_code == 400
    assert "signed_prekey" in response.json()["errors"]


def test_signature_of_wrong_length_is_rejected(client_csrf):
    payload = registration_payload()
    payload["signed_prekey"]["signature"] = b64(bytes(63))
    assert client_csrf.post_json(URL, payload).status_code == 400


def test_more_than_100_one_time_prekeys_are_rejected(client_csrf):
    response = client_csrf.post_json(URL, registration_payload(one_time_count=101))
    assert response.status_code == 400
    assert "one_time_prekeys" in response.json()["errors"]


def test_duplicate_one_time_prekey_ids_are_rejected(client_csrf):
    payload = registration_payload()
    payload["one_time_prekeys"][1]["key_id"] = payload["one_time_prekeys"][0]["key_id"]
    assert client_csrf.post_json(URL, payload).status_code == 400


@pytest.mark.parametrize("key_id", [-1, 0, 2**31, "one", None])
def test_out_of_range_key_ids_are_rejected(client_csrf, key_id):
    payload = registration_payload()
    payload["one_time_prekeys"][0]["key_id"] = key_id
    assert client_csrf.post_json(URL, payload).status_code == 400


def test_weak_password_is_rejected_with_a_reason(client_csrf):
    response = client_csrf.post_json(URL, registration_payload(password="12345"))
    assert response.status_code == 400
    assert response.json()["errors"]["password"]


@pytest.mark.parametrize("missing", ["email", "password", "identity_key", "signed_prekey", "one_time_prekeys"])
def test_missing_fields_are_reported(client_csrf, missing):
    payload = registration_payload()
    del payload[missing]
    response = client_csrf.post_json(URL, payload)
    assert response.status_code == 400
    assert missing in response.json()["errors"]


def test_non_json_body_is_a_clear_400(client_csrf):
    response = client_csrf.post(URL, "not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_user_and_keys_are_created_atomically(client_csrf, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("key storage failed")

    monkeypatch.setattr("keys.services.device_keys_set", explode)
    with pytest.raises(RuntimeError):
        client_csrf.post_json(URL, registration_payload())
    assert not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_password_is_hashed_before_the_write_transaction_starts(client_csrf, monkeypatch):
    """On SQLite a transaction holds the database's one write lock: hashing the password
    (the slow step of a registration) inside it made concurrent sign-ups queue behind each
    other until one passed the busy timeout and answered 500 "database is locked"."""
    in_transaction = []
    encode = FastPepperedPBKDF2PasswordHasher.encode

    def recording_encode(self, *args, **kwargs):
        in_transaction.append(connection.in_atomic_block)
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(FastPepperedPBKDF2PasswordHasher, "encode", recording_encode)
    assert client_csrf.post_json(URL, registration_payload()).status_code == 201
    assert in_transaction == [False]
