"""The mailbox of device linking (docs/PROTOCOL.md section 18): opened by the new device,
answered once by a device of the same account, read and cancelled only by that account."""

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from django.utils import timezone

from contacts.tests.helpers import make_user, run_concurrently
from keys.errors import LinkAlreadyOffered
from keys.links import link_of, link_offer, link_open
from keys.models import LINKS_OPEN_MAX, DeviceLink
from tests.helpers import DeviceKeys, b64, sign_in

LINKS = "/api/v1/devices/links"
EPHEMERAL = "0/vBNAlYQfc9Llxh23raBz6WptzTWkwiIHFRwJI65CE="  # an X25519 public key (link_vectors.json)
BOX = b64(bytes(range(80)))


@pytest.fixture
def alice(make_account):
    return make_account()


@pytest.fixture
def mallory(make_account):
    return make_account()


def open_link(client) -> dict:
    response = client.post_json(LINKS)
    assert response.status_code == 201, response.content
    return response.json()


def offer(client, link_id: str, **changes):
    return client.post_json(
        f"{LINKS}/offer", {"link_id": link_id, "ephemeral_key": EPHEMERAL, "ciphertext": BOX, **changes}
    )


def test_a_new_device_opens_a_link_an_existing_device_answers_and_the_new_one_reads_it(alice):
    new_device = sign_in(alice, device_id=None)  # pending
    link = open_link(new_device)
    assert len(base64.b64decode(link["link_id"], validate=True)) == 16
    assert new_device.post_json(f"{LINKS}/poll", {"link_id": link["link_id"]}).json()["offer"] is None
    assert offer(alice.client, link["link_id"]).status_code == 204
    polled = new_device.post_json(f"{LINKS}/poll", {"link_id": link["link_id"]}).json()
    assert polled["offer"] == {"ephemeral_key": EPHEMERAL, "ciphertext": BOX}
    assert new_device.post_json(f"{LINKS}/cancel", {"link_id": link["link_id"]}).status_code == 204
    assert new_device.post_json(f"{LINKS}/poll", {"link_id": link["link_id"]}).status_code == 404


def test_the_first_answer_wins(alice):
    link = open_link(alice.client)
    assert offer(alice.client, link["link_id"]).status_code == 204
    second = offer(alice.client, link["link_id"], ephemeral_key=b64(bytes([9]) + bytes(31)))
    assert (second.status_code, second.json()["code"]) == (409, "link_already_offered")
    polled = alice.client.post_json(f"{LINKS}/poll", {"link_id": link["link_id"]}).json()
    assert polled["offer"]["ephemeral_key"] == EPHEMERAL


def test_a_pending_session_cannot_answer_a_link(alice):
    pending = sign_in(alice, device_id=None)
    link = open_link(pending)
    response = offer(pending, link["link_id"])
    assert (response.status_code, response.json()["code"]) == (403, "device_required")


def test_another_account_can_neither_read_nor_answer_nor_cancel_a_link(alice, mallory):
    link = open_link(alice.client)["link_id"]
    for path, body in (("poll", {}), ("cancel", {}), ("offer", {"ephemeral_key": EPHEMERAL, "ciphertext": BOX})):
        response = mallory.client.post_json(f"{LINKS}/{path}", {"link_id": link, **body})
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
    assert alice.client.post_json(f"{LINKS}/poll", {"link_id": link}).json()["offer"] is None


def test_an_expired_link_is_gone(alice):
    link = open_link(alice.client)["link_id"]
    DeviceLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert alice.client.post_json(f"{LINKS}/poll", {"link_id": link}).status_code == 404
    assert offer(alice.client, link).status_code == 404
    open_link(alice.client)
    assert DeviceLink.objects.count() == 1  # the expired one was deleted


def test_an_account_has_at_most_three_open_links(alice):
    for _ in range(LINKS_OPEN_MAX):
        open_link(alice.client)
    response = alice.client.post_json(LINKS)
    assert (response.status_code, response.json()["code"]) == (409, "too_many_links")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"link_id": "not base64!"},
        {"link_id": b64(bytes(15))},
        {"link_id": b64(bytes(16)), "ephemeral_key": b64(bytes(32))},  # a low-order point
        {"link_id": b64(bytes(16)), "ciphertext": b64(bytes(47))},
        {"link_id": b64(bytes(16)), "ciphertext": b64(bytes(513))},
        {"link_id": b64(bytes(16)), "ciphertext": 7},
    ],
)
def test_malformed_answers_are_400(alice, body):
    full = {"link_id": b64(bytes(16)), "ephemeral_key": EPHEMERAL, "ciphertext": BOX, **body} if body else {}
    response = alice.client.post_json(f"{LINKS}/offer", full)
    assert response.status_code == 400, response.content


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_of_concurrent_answers_exactly_one_is_kept():
    user = make_user()
    link = link_open(user=user)
    keys = [b64(X25519PrivateKey.generate().public_key().public_bytes_raw()) for _ in range(8)]
    calls = [
        lambda key=key: link_offer(user_id=user.id, link_id=link.link_id, ephemeral_key=key, ciphertext=BOX)
        for key in keys
    ]
    outcomes = run_concurrently(calls)
    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(o, LinkAlreadyOffered) for o in outcomes if o is not None)
    assert link_of(user_id=user.id, link_id=link.link_id).offer_ephemeral_key in keys


# --- completing a link: POST /api/v1/devices ---------------------------------------------------


def new_device_body(account, link_id: str, keys: DeviceKeys | None = None) -> dict:
    keys = keys or DeviceKeys(identity=account.keys.identity)
    return {"link_id": link_id, "device_name": "Work laptop", **keys.registration_keys(5)}


def test_a_linked_device_joins_the_account_with_its_own_keys_and_session(
    alice, published, django_capture_on_commit_callbacks
):
    new_device = sign_in(alice, device_id=None)
    link = open_link(new_device)["link_id"]
    assert offer(alice.client, link).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        response = new_device.post_json("/api/v1/devices", new_device_body(alice, link))
    assert response.status_code == 201, response.content
    assert response.json()["device"] == {"id": 2, "name": "Work laptop"}
    assert new_device.get("/api/v1/auth/me").json()["device"] == {"id": 2, "name": "Work laptop"}
    assert new_device.get("/api/v1/keys/prekeys/count").json()["count"] == 5
    assert published.to(alice.id) == [{"type": "devices_changed", "email": alice.email}]
    assert new_device.post_json(f"{LINKS}/poll", {"link_id": link}).status_code == 404  # used up
    assert alice.client.get("/api/v1/auth/me").status_code == 200  # the other device stays


def test_a_link_nobody_answered_adds_no_device(alice):
    new_device = sign_in(alice, device_id=None)
    link = open_link(new_device)["link_id"]
    response = new_device.post_json("/api/v1/devices", new_device_body(alice, link))
    assert (response.status_code, response.json()["code"]) == (409, "link_not_offered")
    assert new_device.get("/api/v1/auth/me").json()["device"] is None


def test_a_device_with_another_identity_key_is_refused(alice):
    new_device = sign_in(alice, device_id=None)
    link = open_link(new_device)["link_id"]
    offer(alice.client, link)
    response = new_device.post_json("/api/v1/devices", new_device_body(alice, link, DeviceKeys()))
    assert (response.status_code, response.json()["code"]) == (409, "identity_key_mismatch")


def test_linking_respects_the_cap_and_another_accounts_link_is_404(alice, mallory, settings):
    settings.DEVICES_PER_ACCOUNT_MAX = 1
    new_device = sign_in(alice, device_id=None)
    link = open_link(new_device)["link_id"]
    offer(alice.client, link)
    response = new_device.post_json("/api/v1/devices", new_device_body(alice, link))
    assert (response.status_code, response.json()["code"]) == (409, "too_many_devices")
    response = mallory.client.post_json("/api/v1/devices", new_device_body(mallory, link))
    assert response.status_code == 404


def test_a_device_linked_without_a_name_gets_the_default_name(alice):
    new_device = sign_in(alice, device_id=None)
    link = open_link(new_device)["link_id"]
    assert offer(alice.client, link).status_code == 204
    body = new_device_body(alice, link)
    del body["device_name"]
    response = new_device.post_json("/api/v1/devices", body)
    assert response.status_code == 201, response.content
    assert response.json()["device"] == {"id": 2, "name": "Device"}
