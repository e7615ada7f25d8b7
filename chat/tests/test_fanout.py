"""Messages between accounts with several devices (docs/PROTOCOL.md section 17): one copy per
device of the recipient and per other device of the sender, stored all together or not at all;
each device receives and acknowledges only its own copies; receipts name messages."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db.models import Q
from django.utils import timezone

from accounts.models import Device, User
from chat import selectors, services
from chat.errors import DeviceMismatch
from chat.models import Envelope, MailboxUsage
from chat.tests.helpers import open_socket, receive, second_device, send_frame
from contacts.tests.helpers import run_concurrently
from keys.services import device_unlink

pytestmark = pytest.mark.django_db(transaction=True)


def fanout(to, copies: dict[int, str], own: dict[int, str] | None = None, client_id=None) -> dict:
    return {
        "type": "send",
        "client_id": str(client_id or uuid.uuid4()),
        "to": to.email,
        "copies": [{"device": device, "kind": "message", "body": body} for device, body in copies.items()],
        "own": [{"device": device, "kind": "message", "body": body} for device, body in (own or {}).items()],
    }


@database_sync_to_async
def rows(**filters) -> list[Envelope]:
    return list(Envelope.objects.filter(**filters).order_by("id"))


async def test_a_message_reaches_every_device_of_the_recipient_and_the_senders_other_devices(contacts):
    alice, bob = contacts
    laptop = await database_sync_to_async(second_device)(alice)  # alice: 1 (phone) and 2 (laptop)
    bob_laptop = await database_sync_to_async(second_device)(bob)
    phone_socket, _ = await open_socket(alice)
    laptop_socket, _ = await open_socket(laptop)
    bob_phone_socket, _ = await open_socket(bob)
    bob_laptop_socket, _ = await open_socket(bob_laptop)

    frame = fanout(bob, {1: "Zm9yIGJvYiAx", 2: "Zm9yIGJvYiAy"}, own={1: "Zm9yIHBob25l"})
    await send_frame(laptop_socket, frame)
    sent = await receive(laptop_socket)
    assert sent == {"type": "sent", "client_id": frame["client_id"], "id": sent["id"]}

    for socket, body in ((bob_phone_socket, "Zm9yIGJvYiAx"), (bob_laptop_socket, "Zm9yIGJvYiAy")):
        message = await receive(socket)
        assert (message["body"], message["message_id"], message["from"], message["from_device"], message["to"]) == (
            body,
            sent["id"],
            alice.email,
            2,
            bob.email,
        )
    own = await receive(phone_socket)
    assert (own["body"], own["message_id"], own["from"], own["to"]) == (
        "Zm9yIHBob25l",
        sent["id"],
        alice.email,
        bob.email,
    )
    assert await laptop_socket.receive_nothing(timeout=0.2)  # nothing for the sending device
    assert len(await rows(client_id=frame["client_id"])) == 3
    for socket in (phone_socket, laptop_socket, bob_phone_socket, bob_laptop_socket):
        await socket.disconnect()


async def test_a_send_for_the_wrong_devices_stores_nothing_and_names_them(contacts):
    alice, bob = contacts
    laptop = await database_sync_to_async(second_device)(alice)
    socket, _ = await open_socket(laptop)
    frame = fanout(bob, {1: "YQ==", 7: "Yg=="})  # bob has device 1; alice's own device 1 is left out
    await send_frame(socket, frame)
    error = await receive(socket)
    assert error == {
        "type": "error",
        "code": "device_mismatch",
        "detail": error["detail"],
        "client_id": frame["client_id"],
        "missing": {"to": [], "own": [1]},
        "extra": {"to": [7], "own": []},
    }
    assert await rows() == []
    # Corrected, with the same client_id: stored.
    await send_frame(socket, fanout(bob, {1: "YQ=="}, own={1: "Yw=="}, client_id=frame["client_id"]))
    assert (await receive(socket))["type"] == "sent"
    await socket.disconnect()


async def test_a_version_1_send_needs_one_device_on_each_side(contacts):
    alice, bob = contacts
    await database_sync_to_async(second_device)(bob)
    socket, _ = await open_socket(alice)
    payload = {"type": "send", "client_id": str(uuid.uuid4()), "to": bob.email, "kind": "message", "body": "YQ=="}
    await send_frame(socket, payload)
    error = await receive(socket)
    assert (error["code"], error["missing"], error["extra"]) == (
        "device_mismatch",
        {"to": [1, 2], "own": []},
        {"to": [], "own": []},
    )
    assert await rows() == []
    await socket.disconnect()


async def test_a_resend_is_answered_with_the_message_id_whatever_its_copies(contacts):
    alice, bob = contacts
    socket, _ = await open_socket(alice)
    frame = fanout(bob, {1: "YQ=="})
    await send_frame(socket, frame)
    first = await receive(socket)
    await send_frame(socket, fanout(bob, {1: "Yg==", 9: "Yw=="}, client_id=frame["client_id"]))
    assert await receive(socket) == first
    assert len(await rows()) == 1
    await socket.disconnect()


async def test_only_the_addressed_device_acknowledges_a_copy_and_receipts_name_the_message(contacts):
    alice, bob = contacts
    bob_laptop = await database_sync_to_async(second_device)(bob)
    alice_socket, _ = await open_socket(alice)
    await send_frame(alice_socket, fanout(bob, {1: "YQ==", 2: "Yg=="}))
    message_id = (await receive(alice_socket))["id"]
    phone_socket, [phone_copy] = await open_socket(bob, expect_backlog=1)
    laptop_socket, [laptop_copy] = await open_socket(bob_laptop, expect_backlog=1)
    assert phone_copy["message_id"] == laptop_copy["message_id"] == message_id

    # The laptop cannot acknowledge the phone's copy.
    await send_frame(laptop_socket, {"type": "ack", "ids": [phone_copy["id"]]})
    assert await alice_socket.receive_nothing(timeout=0.2)
    assert (await rows(id=phone_copy["id"]))[0].delivered_at is None

    await send_frame(laptop_socket, {"type": "read", "ids": [laptop_copy["id"]]})
    assert await receive(alice_socket) == {"type": "delivered", "ids": [message_id]}
    assert await receive(alice_socket) == {"type": "read", "ids": [message_id]}
    # Read on the laptop: the phone hears it, by message id.
    assert await receive(phone_socket) == {"type": "read_elsewhere", "ids": [message_id]}
    assert await laptop_socket.receive_nothing(timeout=0.1)
    # The phone reads its copy later: the message was delivered and read already, no new receipt.
    await send_frame(phone_socket, {"type": "read", "ids": [phone_copy["id"]]})
    assert await alice_socket.receive_nothing(timeout=0.2)
    assert (await rows(id=phone_copy["id"]))[0].read_at is not None

    answer = await sync_to_async(selectors.envelope_receipts)(user_id=alice.id, ids=[message_id])
    assert (answer["read"], answer["unknown"]) == ([message_id], [])
    for socket in (alice_socket, phone_socket, laptop_socket):
        await socket.disconnect()


async def test_acknowledging_an_own_copy_sends_no_receipt(contacts):
    alice, bob = contacts
    laptop = await database_sync_to_async(second_device)(alice)
    laptop_socket, _ = await open_socket(laptop)
    await send_frame(laptop_socket, fanout(bob, {1: "YQ=="}, own={1: "Yg=="}))
    await receive(laptop_socket)
    phone_socket, [own] = await open_socket(alice, expect_backlog=1)
    await send_frame(phone_socket, {"type": "read", "ids": [own["id"]]})
    assert await laptop_socket.receive_nothing(timeout=0.2)
    assert (await rows(id=own["id"]))[0].read_at is not None
    await laptop_socket.disconnect()
    await phone_socket.disconnect()


async def test_unlinking_a_device_drops_its_undelivered_copies_and_their_quota(contacts):
    alice, bob = contacts
    await database_sync_to_async(second_device)(bob)
    socket, _ = await open_socket(alice)
    await send_frame(socket, fanout(bob, {1: "YWFhYQ==", 2: "YmJiYg=="}))
    await receive(socket)

    @database_sync_to_async
    def unlink_laptop():
        device_unlink(user=User.objects.get(pk=bob.id), device_id=2)
        return MailboxUsage.objects.get(user_id=bob.id).waiting_bytes

    assert await unlink_laptop() == len("YWFhYQ==")
    assert [row.recipient_device for row in await rows()] == [1]
    await socket.disconnect()


async def test_a_contact_without_any_device_cannot_be_sent_to(contacts):
    alice, bob = contacts
    await database_sync_to_async(device_unlink)(user=await User.objects.aget(pk=bob.id), device_id=1)
    socket, _ = await open_socket(alice)
    await send_frame(socket, fanout(bob, {1: "YQ=="}))
    assert (await receive(socket))["code"] == "no_devices"
    await socket.disconnect()


async def test_malformed_copies_are_refused(contacts):
    alice, bob = contacts
    socket, _ = await open_socket(alice)
    for copies in (
        [],
        [{"device": 1}],
        [{"device": 1, "kind": "message", "body": "YQ=="}] * 2,
        "x",
        [{"device": 0, "kind": "message", "body": "a"}],
    ):
        frame = {"type": "send", "client_id": str(uuid.uuid4()), "to": bob.email, "copies": copies}
        await send_frame(socket, frame)
        assert (await receive(socket))["code"] == "invalid_copies", copies
    assert await rows() == []
    await socket.disconnect()


# --- the same send over REST (POST /api/v1/messages/) ---------------------------------------


def test_rest_stores_a_fan_out_and_a_resend_returns_the_same_id(contacts):
    alice, bob = contacts
    laptop = second_device(alice)
    frame = fanout(bob, {1: "Zm9yIGJvYg=="}, own={1: "Zm9yIHBob25l"})
    del frame["type"]
    first = laptop.client.post_json("/api/v1/messages/", frame)
    assert first.status_code == 201, first.content
    again = laptop.client.post_json("/api/v1/messages/", {**frame, "own": []})
    assert (again.status_code, again.json()) == (200, first.json())
    copies = Envelope.objects.filter(client_id=frame["client_id"])
    assert sorted((row.recipient_id, row.recipient_device) for row in copies) == [(alice.id, 1), (bob.id, 1)]


def test_rest_answers_a_device_mismatch_with_the_devices_and_stores_nothing(contacts):
    alice, bob = contacts
    laptop = second_device(alice)
    frame = fanout(bob, {1: "YQ==", 7: "Yg=="})
    del frame["type"]
    response = laptop.client.post_json("/api/v1/messages/", frame)
    assert response.status_code == 409
    assert response.json() == {
        "code": "device_mismatch",
        "detail": "The recipient's or your own devices changed.",
        "missing": {"to": [], "own": [1]},
        "extra": {"to": [7], "own": []},
    }
    assert not Envelope.objects.exists()


def test_rest_refuses_malformed_copies_and_a_contact_without_devices(contacts):
    alice, bob = contacts
    body = {"client_id": str(uuid.uuid4()), "to": bob.email, "copies": [{"device": 1}]}
    response = alice.client.post_json("/api/v1/messages/", body)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_copies")
    device_unlink(user=User.objects.get(pk=bob.id), device_id=1)
    body["copies"] = [{"device": 1, "kind": "message", "body": "YQ=="}]
    response = alice.client.post_json("/api/v1/messages/", body)
    assert (response.status_code, response.json()["code"]) == (409, "no_devices")
    assert not Envelope.objects.exists()


# --- unlinking while messages are being sent --------------------------------------------------


def _send_to_two_devices(alice, bob) -> services.SendResult | Exception:
    copies = (services.Copy(1, "message", "YQ=="), services.Copy(2, "message", "Yg=="))
    request = services.SendRequest(alice.id, alice.email, bob.email, uuid.uuid4(), copies=copies)
    return services.envelopes_send([request])[0]


def test_the_purge_deletes_copies_stored_for_a_device_removed_meanwhile(contacts):
    """A send that read the device list just before an unlink committed stores its copy just
    after (sends lock no device rows): the purge deletes it, and its bytes leave the counters."""
    alice, bob = contacts
    second_device(bob)
    _send_to_two_devices(alice, bob)
    # The unlink as it looks when it committed first (its own deletion found nothing yet).
    Device.objects.filter(user_id=bob.id, device_id=2).update(removed_at=timezone.now())
    assert services.envelopes_purge().expired_deleted == 1
    assert [row.recipient_device for row in Envelope.objects.all()] == [1]
    assert MailboxUsage.objects.get(user_id=bob.id).waiting_bytes == len("YQ==")


@pytest.mark.mariadb
def test_unlink_under_load_leaves_no_partial_message_and_nothing_for_the_removed_device(contacts, settings):
    settings.RATE_LIMITS_ENABLED = False
    alice, bob = contacts
    second_device(bob)
    users = {account.id: User.objects.get(pk=account.id) for account in (alice, bob)}
    calls = [lambda: _send_to_two_devices(users[alice.id], users[bob.id])] * 12
    calls.insert(6, lambda: device_unlink(user=users[bob.id], device_id=2))
    outcomes = run_concurrently(calls)
    sends = [o for i, o in enumerate(outcomes) if i != 6]
    assert all(isinstance(o, services.SendResult | DeviceMismatch) for o in sends), sends
    stored = {o.id for o in sends if isinstance(o, services.SendResult)}
    # Every stored message has its copy for device 1: never a partial fan-out.
    for message_id in stored:
        devices = Envelope.objects.filter(Q(id=message_id) | Q(message_id=message_id)).values_list(
            "recipient_device", flat=True
        )
        assert 1 in devices
    services.envelopes_purge()
    assert not Envelope.objects.filter(recipient_device=2, delivered_at__isnull=True).exists()
    waiting = sum(
        Envelope.objects.filter(recipient_id=bob.id, delivered_at__isnull=True).values_list("size", flat=True)
    )
    assert MailboxUsage.objects.get(user_id=bob.id).waiting_bytes == waiting
