"""Operators see envelope metadata, never a body, and cannot edit envelopes."""

import uuid

import pytest

from accounts.models import User
from chat.models import Envelope

pytestmark = pytest.mark.django_db

BODY = "c2VjcmV0LWNpcGhlcnRleHQ="


@pytest.fixture
def admin_client(client):
    admin = User.objects.create_superuser("admin@example.test", "admin password 123")
    client.force_login(admin)
    return client


@pytest.fixture
def envelope(alice, bob):
    return Envelope.objects.create(
        sender_id=alice.id, recipient_id=bob.id, client_id=uuid.uuid4(), kind="prekey", body=BODY, size=len(BODY)
    )


def test_envelope_list_shows_metadata_and_no_body(admin_client, envelope, alice):
    response = admin_client.get("/admin/chat/envelope/")
    assert response.status_code == 200
    page = response.content.decode()
    assert alice.email in page
    assert "prekey" in page
    assert BODY not in page


def test_envelope_page_shows_no_body_and_cannot_be_edited(admin_client, envelope):
    response = admin_client.get(f"/admin/chat/envelope/{envelope.id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert BODY not in page
    assert 'name="body"' not in page
    assert admin_client.post(f"/admin/chat/envelope/{envelope.id}/change/", {"body": "x"}).status_code == 403
    assert admin_client.get("/admin/chat/envelope/add/").status_code == 403
    assert Envelope.objects.get().body == BODY
