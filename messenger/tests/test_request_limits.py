"""Sizes are checked before contents: list lengths before their items are validated, and the
body's length (DATA_UPLOAD_MAX_MEMORY_SIZE) before it is parsed."""

import json
import uuid

import pytest
from django.conf import settings

from keys import validation
from tests.helpers import DeviceKeys, registration_payload

pytestmark = pytest.mark.django_db

TOO_MANY = 1000  # 10 times the most one upload may carry


@pytest.fixture
def key_checks(monkeypatch) -> list:
    """Every one-time or signed prekey the serializers validate (a scalar multiplication each)."""
    checked = []
    check = validation.validate_x25519_public_key

    def counting(value, **kwargs):
        checked.append(value)
        return check(value, **kwargs)

    monkeypatch.setattr(validation, "validate_x25519_public_key", counting)
    return checked


def test_registration_with_too_many_one_time_prekeys_is_refused_before_any_is_checked(client_csrf, key_checks):
    payload = registration_payload(one_time_count=TOO_MANY)
    key_checks.clear()
    response = client_csrf.post_json("/api/v1/auth/register", payload)
    assert response.status_code == 400
    assert response.json()["errors"]["one_time_prekeys"] == ["Ensure this field has no more than 100 elements."]
    assert len(key_checks) <= 1  # the signed prekey, not one of the one-time prekeys


def test_upload_of_too_many_one_time_prekeys_is_refused_before_any_is_checked(account, key_checks):
    batch = account.keys.new_one_time_prekeys(TOO_MANY)
    response = account.client.post_json("/api/v1/keys/prekeys", {"one_time_prekeys": batch})
    assert response.status_code == 400
    assert response.json()["errors"]["one_time_prekeys"] == ["Ensure this field has no more than 100 elements."]
    assert key_checks == []


def test_new_device_with_too_many_one_time_prekeys_is_refused_before_any_is_checked(account, key_checks):
    payload = {"password": account.password, **DeviceKeys().registration_keys(TOO_MANY)}
    key_checks.clear()
    response = account.client.put_json("/api/v1/keys/identity", payload)
    assert response.status_code == 400
    assert "one_time_prekeys" in response.json()["errors"]
    assert len(key_checks) <= 1


def test_a_full_upload_is_still_checked_key_by_key(account, key_checks):
    batch = account.keys.new_one_time_prekeys(100)
    assert account.client.post_json("/api/v1/keys/prekeys", {"one_time_prekeys": batch}).status_code == 201
    assert len(key_checks) == 100


# --- body size -----------------------------------------------------------------------------


def test_the_body_limit_is_derived_from_the_largest_message():
    """A group message with a sender key entry for every device of 256 members is the largest
    request with the default settings (a version-2 send carries at most 2 x 5 - 1 bodies)."""
    assert 9 * settings.MESSAGE_MAX_BODY_BYTES < settings.GROUP_SEND_MAX_BYTES
    assert settings.GROUP_SEND_MAX_BYTES == settings.MESSAGE_MAX_BODY_BYTES + 256 * 5 * 1536
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.GROUP_SEND_MAX_BYTES + 64 * 1024


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/keys/prekeys"),
        ("put", "/api/v1/keys/identity"),
        ("post", "/api/v1/messages/"),
    ],
)
def test_an_oversized_json_body_is_a_413_before_it_is_parsed(account, method, path):
    body = json.dumps({"padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    response = getattr(account.client, method)(path, body, content_type="application/json")
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "request_too_large",
        "detail": f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
    }


def test_an_oversized_form_body_is_a_4xx_not_a_500(account):
    body = "a=" + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = account.client.post("/api/v1/keys/prekeys", body, content_type="application/x-www-form-urlencoded")
    assert 400 <= response.status_code < 500


def test_the_largest_message_fits_even_with_every_byte_escaped(make_account):
    """A body of MESSAGE_MAX_BODY_BYTES control characters: JSON escapes each as \\u00XX, the
    worst case the limit is sized for. It must reach the server's own checks (201)."""
    alice, bob = make_account(), make_account()
    request = alice.client.post_json("/api/v1/contacts/requests", {"email": bob.email})
    bob.client.put_json(f"/api/v1/contacts/requests/{request.json()['id']}", {"action": "accept"})
    message = {"client_id": str(uuid.uuid4()), "to": bob.email, "kind": "message"}
    message["body"] = "\x01" * settings.MESSAGE_MAX_BODY_BYTES
    raw = json.dumps(message)
    assert len(raw) > 6 * settings.MESSAGE_MAX_BODY_BYTES
    response = alice.client.post("/api/v1/messages/", raw, content_type="application/json")
    assert response.status_code == 201, response.content[:300]
