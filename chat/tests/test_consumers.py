"""The chat socket, frame by frame. Every test disconnects its sockets; database checks run
through database_sync_to_async like the consumer's own."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.db import OperationalError
from rest_framework_simplejwt.tokens import AccessToken

from chat import selectors, services
from chat.consumers import max_frame_size
from chat.models import Envelope
from chat.tests.helpers import (
    communicator,
    make_contacts,
    open_socket,
    receive,
    request_contact,
    second_device,
    send_frame,
    send_payload,
)
from keys import events as keys_events
from realtime import bus, layers
from tests.helpers import Account, CsrfClient

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def envelope_rows(**filters) -> list[Envelope]:
    return list(Envelope.objects.filter(**filters).order_by("id"))


async def send_and_confirm(socket, to, **kwargs) -> dict:
    payload = send_payload(to, **kwargs)
    await send_frame(socket, payload)
    sent = await receive(socket)
    assert sent == {"type": "sent", "client_id": payload["client_id"], "id": sent["id"]}
    return {**payload, "id": sent["id"]}


# --- handshake -------------------------------------------------------------------------------


async def test_socket_without_access_cookie_is_closed_with_4401():
    socket = communicator()
    connected, _ = await socket.connect()
    assert connected
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4401}
    await socket.disconnect()


async def test_socket_with_invalid_token_is_closed_with_4401():
    socket = communicator(token="not.a.jwt")
    await socket.connect()
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4401}
    await socket.disconnect()


async def test_socket_from_a_foreign_origin_is_refused(alice):
    socket = communicator(alice, origin="https://evil.example")
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()


async def test_socket_from_another_port_of_the_same_host_is_refused(alice):
    """Same site (so SameSite cookies are sent) but another origin: another app on the host."""
    socket = communicator(alice, origin="http://localhost:9999")
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()


async def test_socket_without_origin_is_refused(alice):
    socket = communicator(alice, origin=None)
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()


async def test_allowed_hosts_wildcard_does_not_admit_any_origin(alice, settings):
    settings.ALLOWED_HOSTS = ["*"]
    socket = communicator(alice, origin="https://evil.example")
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()


async def test_socket_from_a_trusted_origin_is_admitted(alice, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["http://chat.example.org"]  # https ones: chat/tests/test_origin.py
    socket = communicator(alice, origin="http://chat.example.org")
    connected, _ = await socket.connect()
    assert connected
    assert await receive(socket) == {"type": "queue_empty"}
    await socket.disconnect()


async def test_socket_of_deactivated_user_is_closed_with_4401(alice):
    await sync_to_async(_deactivate)(alice.id)
    socket = communicator(alice)
    await socket.connect()
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4401}
    await socket.disconnect()


def _deactivate(user_id: int) -> None:
    from accounts.models import User

    user = User.objects.get(pk=user_id)
    user.is_active = False
    user.save()


# --- delivery ----------------------------------------------------------------------------------


async def test_send_stores_pushes_to_recipient_and_confirms_to_sender(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)

    sent = await send_and_confirm(alice_socket, bob, kind="prekey")

    message = await receive(bob_socket)
    assert message == {
        "type": "message",
        "id": sent["id"],
        "message_id": sent["id"],
        "client_id": sent["client_id"],
        "from": alice.email,
        "from_device": 1,
        "to": bob.email,
        "kind": "prekey",
        "body": sent["body"],
        "sent_at": message["sent_at"],
    }
    [row] = await envelope_rows(id=sent["id"])
    assert (row.sender_id, row.recipient_id, row.body, row.delivered_at) == (alice.id, bob.id, sent["body"], None)
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_offline_recipient_gets_backlog_in_order_then_queue_empty(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    sent = [await send_and_confirm(alice_socket, bob, body=f"body-{i}") for i in range(5)]

    bob_socket, backlog = await open_socket(bob, expect_backlog=5)

    assert [m["id"] for m in backlog] == [s["id"] for s in sent]
    assert [m["body"] for m in backlog] == [f"body-{i}" for i in range(5)]
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_backlog_larger_than_a_page_arrives_whole_and_in_order(contacts, settings):
    from chat import selectors

    alice, bob = contacts
    settings.RATE_LIMITS_ENABLED = False
    original, selectors.PAGE_SIZE = selectors.PAGE_SIZE, 3
    try:
        alice_socket, _ = await open_socket(alice)
        sent = [await send_and_confirm(alice_socket, bob) for _ in range(8)]
        bob_socket, backlog = await open_socket(bob, expect_backlog=8)
        assert [m["id"] for m in backlog] == [s["id"] for s in sent]
    finally:
        selectors.PAGE_SIZE = original
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_unacknowledged_envelopes_come_back_on_reconnect_acknowledged_ones_do_not(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    first = await send_and_confirm(alice_socket, bob)
    second = await send_and_confirm(alice_socket, bob)
    assert (await receive(bob_socket))["id"] == first["id"]
    assert (await receive(bob_socket))["id"] == second["id"]
    await send_frame(bob_socket, {"type": "ack", "ids": [first["id"]]})
    assert await receive(alice_socket) == {"type": "delivered", "ids": [first["id"]]}
    # bob's socket dies before acking the second one
    await bob_socket.disconnect()

    bob_socket, backlog = await open_socket(bob, expect_backlog=1)
    assert backlog[0]["id"] == second["id"]
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_every_socket_of_the_recipient_receives(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    tab1, _ = await open_socket(bob)
    tab2, _ = await open_socket(bob)
    sent = await send_and_confirm(alice_socket, bob)
    assert (await receive(tab1))["id"] == sent["id"]
    assert (await receive(tab2))["id"] == sent["id"]
    for socket in (alice_socket, tab1, tab2):
        await socket.disconnect()


async def test_nothing_is_broadcast_to_other_users(contacts, make_account):
    alice, bob = contacts
    carol = await sync_to_async(make_account)()
    await sync_to_async(make_contacts)(carol, alice)
    alice_socket, _ = await open_socket(alice)
    carol_socket, _ = await open_socket(carol)
    await send_and_confirm(alice_socket, bob)  # bob is offline
    assert await carol_socket.receive_nothing(timeout=0.2)
    await alice_socket.disconnect()
    await carol_socket.disconnect()


async def test_resend_with_same_client_id_returns_same_id_and_stores_nothing(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    client_id = uuid.uuid4()
    first = await send_and_confirm(alice_socket, bob, client_id=client_id)
    again = await send_and_confirm(alice_socket, bob, client_id=client_id)
    assert again["id"] == first["id"]
    assert len(await envelope_rows(sender_id=alice.id)) == 1
    await alice_socket.disconnect()


async def test_push_racing_the_backlog_is_not_shown_twice(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    sent = await send_and_confirm(alice_socket, bob)
    bob_socket, backlog = await open_socket(bob, expect_backlog=1)
    # The same envelope pushed again (as if its push had raced the backlog read).
    layer = get_channel_layer()
    await layer.group_send(bus.user_group(bob.id), {"type": "push.event", "event": backlog[0]})
    assert await bob_socket.receive_nothing(timeout=0.2)
    assert backlog[0]["id"] == sent["id"]
    await alice_socket.disconnect()
    await bob_socket.disconnect()


# --- who may write to whom -------------------------------------------------------------------


async def test_envelope_to_a_stranger_is_refused(alice, bob):
    alice_socket, _ = await open_socket(alice)
    payload = send_payload(bob)
    await send_frame(alice_socket, payload)
    assert await receive(alice_socket) == {
        "type": "error",
        "code": "not_a_contact",
        "detail": "You can only write to accepted contacts.",
        "client_id": payload["client_id"],
    }
    assert await envelope_rows() == []
    await alice_socket.disconnect()


async def test_envelope_to_a_pending_contact_is_refused(alice, bob):
    await sync_to_async(request_contact)(alice, bob)
    alice_socket, _ = await open_socket(alice)
    await send_frame(alice_socket, send_payload(bob))
    assert (await receive(alice_socket))["code"] == "not_a_contact"
    assert await envelope_rows() == []
    await alice_socket.disconnect()


async def test_envelope_to_an_unknown_email_gets_the_same_answer_as_a_stranger(alice):
    alice_socket, _ = await open_socket(alice)
    await send_frame(alice_socket, {**send_payload(alice), "to": "nobody@example.test"})
    assert (await receive(alice_socket))["code"] == "not_a_contact"
    await alice_socket.disconnect()


async def test_envelope_to_oneself_is_refused(alice):
    alice_socket, _ = await open_socket(alice)
    await send_frame(alice_socket, send_payload(alice))
    assert (await receive(alice_socket))["code"] == "self_recipient"
    await alice_socket.disconnect()


# --- receipts --------------------------------------------------------------------------------


async def test_ack_marks_delivered_erases_body_and_tells_every_sender_socket(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    alice_tab2, _ = await open_socket(alice)
    sent = await send_and_confirm(alice_socket, bob)
    bob_socket, _ = await open_socket(bob, expect_backlog=1)

    await send_frame(bob_socket, {"type": "ack", "ids": [sent["id"]]})

    assert await receive(alice_socket) == {"type": "delivered", "ids": [sent["id"]]}
    assert await receive(alice_tab2) == {"type": "delivered", "ids": [sent["id"]]}
    [row] = await envelope_rows(id=sent["id"])
    assert row.delivered_at is not None
    assert row.body == ""
    assert row.size == len(sent["body"])
    for socket in (alice_socket, alice_tab2, bob_socket):
        await socket.disconnect()


async def test_ack_of_someone_elses_envelope_changes_nothing(contacts, make_account):
    alice, bob = contacts
    mallory = await sync_to_async(make_account)()
    alice_socket, _ = await open_socket(alice)
    sent = await send_and_confirm(alice_socket, bob)
    mallory_socket, _ = await open_socket(mallory)

    await send_frame(mallory_socket, {"type": "ack", "ids": [sent["id"]]})
    await send_frame(mallory_socket, {"type": "read", "ids": [sent["id"]]})
    # the sender acking its own envelope is no better
    await send_frame(alice_socket, {"type": "ack", "ids": [sent["id"]]})

    assert await alice_socket.receive_nothing(timeout=0.2)
    assert await mallory_socket.receive_nothing(timeout=0.1)
    [row] = await envelope_rows(id=sent["id"])
    assert (row.delivered_at, row.read_at, row.body) == (None, None, sent["body"])
    bob_socket, _ = await open_socket(bob, expect_backlog=1)
    for socket in (alice_socket, mallory_socket, bob_socket):
        await socket.disconnect()


async def test_read_marks_read_and_tells_the_sender(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    sent = await send_and_confirm(alice_socket, bob)
    bob_socket, _ = await open_socket(bob, expect_backlog=1)
    await send_frame(bob_socket, {"type": "ack", "ids": [sent["id"]]})
    assert await receive(alice_socket) == {"type": "delivered", "ids": [sent["id"]]}

    await send_frame(bob_socket, {"type": "read", "ids": [sent["id"]]})

    assert await receive(alice_socket) == {"type": "read", "ids": [sent["id"]]}
    [row] = await envelope_rows(id=sent["id"])
    assert row.read_at is not None
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_a_sender_offline_when_its_envelopes_were_read_learns_it_on_reconnect(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    first = await send_and_confirm(alice_socket, bob)
    second = await send_and_confirm(alice_socket, bob)
    third = await send_and_confirm(alice_socket, bob)
    await alice_socket.disconnect()  # the receipts pushed now reach nobody
    bob_socket, _ = await open_socket(bob, expect_backlog=3)
    await send_frame(bob_socket, {"type": "ack", "ids": [first["id"], second["id"]]})
    await send_frame(bob_socket, {"type": "read", "ids": [first["id"]]})
    await send_frame(bob_socket, {"type": "sync"})  # frames are handled in order: both receipts are stored
    assert await receive(bob_socket) == {"type": "queue_empty"}

    alice_socket, _ = await open_socket(alice)
    await send_frame(alice_socket, {"type": "receipts", "ids": [third["id"], second["id"], first["id"]]})

    assert await receive(alice_socket) == {
        "type": "receipts",
        "delivered": [second["id"]],
        "read": [first["id"]],
        "unknown": [],
    }
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_receipts_answer_only_about_the_askers_own_messages(contacts, make_account):
    alice, bob = contacts
    mallory = await sync_to_async(make_account)()
    alice_socket, _ = await open_socket(alice)
    sent = await send_and_confirm(alice_socket, bob)
    bob_socket, _ = await open_socket(bob, expect_backlog=1)
    await send_frame(bob_socket, {"type": "read", "ids": [sent["id"]]})
    assert (await receive(alice_socket))["type"] == "delivered"
    assert (await receive(alice_socket))["type"] == "read"
    mallory_socket, _ = await open_socket(mallory)

    # A stranger learns nothing about it; the recipient learns that it read it (the read state
    # of its own devices, docs/PROTOCOL.md section 17.3).
    await send_frame(mallory_socket, {"type": "receipts", "ids": [sent["id"], sent["id"] + 1000]})
    assert await receive(mallory_socket) == {
        "type": "receipts",
        "delivered": [],
        "read": [],
        "unknown": [sent["id"], sent["id"] + 1000],
    }
    await send_frame(bob_socket, {"type": "receipts", "ids": [sent["id"], sent["id"] + 1000]})
    assert await receive(bob_socket) == {
        "type": "receipts",
        "delivered": [],
        "read": [sent["id"]],
        "unknown": [sent["id"] + 1000],
    }
    for socket in (alice_socket, bob_socket, mallory_socket):
        await socket.disconnect()


async def test_receipts_questions_are_validated_and_rate_limited(contacts, settings):
    alice, _ = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "receipts": "1/60"}
    socket, _ = await open_socket(alice)
    await send_frame(socket, {"type": "receipts", "ids": ["1"]})
    assert (await receive(socket))["code"] == "invalid_ids"
    await send_frame(socket, {"type": "receipts", "ids": [1]})
    assert (await receive(socket))["type"] == "receipts"
    await send_frame(socket, {"type": "receipts", "ids": [1]})
    answer = await receive(socket)
    assert (answer["type"], answer["code"]) == ("error", "rate_limited")
    await socket.disconnect()


async def test_reacking_sends_no_second_receipt(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    sent = await send_and_confirm(alice_socket, bob)
    bob_socket, _ = await open_socket(bob, expect_backlog=1)
    await send_frame(bob_socket, {"type": "ack", "ids": [sent["id"]]})
    assert (await receive(alice_socket))["type"] == "delivered"
    await send_frame(bob_socket, {"type": "ack", "ids": [sent["id"]]})
    assert await alice_socket.receive_nothing(timeout=0.2)
    await alice_socket.disconnect()
    await bob_socket.disconnect()


# --- invalid frames --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_frame"),
        ("[1, 2]", "invalid_frame"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": ["send"]}', "unknown_type"),
        ('{"no": "type"}', "unknown_type"),
        ('{"type": "ack", "ids": []}', "invalid_ids"),
        ('{"type": "ack", "ids": ["1"]}', "invalid_ids"),
        ('{"type": "ack", "ids": [true]}', "invalid_ids"),
        ('{"type": "ack", "ids": [100000000000000000000]}', "invalid_ids"),
        ('{"type": "ack", "ids": [9223372036854775808]}', "invalid_ids"),
        ('{"type": "ack", "ids": [1], "x": "\\ud800"}', "invalid_string"),
        ('{"type": "typing", "to": "a\\u0000@b.c", "state": "start"}', "invalid_string"),
        ("[" * 30_000 + "]" * 30_000, "nesting_too_deep"),
        ('{"type": "send", "client_id": "nope", "to": "a@b.c", "kind": "message", "body": "x"}', "invalid_client_id"),
        (
            '{"type": "send", "client_id": "6f1c1d52-4a3e-4a4b-9a70-1d0f5c1b2a3e", "to": "a@b.c", '
            '"kind": "html", "body": "x"}',
            "invalid_kind",
        ),
        (
            '{"type": "send", "client_id": "6f1c1d52-4a3e-4a4b-9a70-1d0f5c1b2a3e", "to": "a@b.c", '
            '"kind": "message", "body": ""}',
            "invalid_frame",
        ),
        ('{"type": "typing", "to": "a@b.c", "state": "dancing"}', "invalid_frame"),
    ],
)
async def test_invalid_frame_gets_an_error_and_the_socket_stays_usable(contacts, frame, code):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    await alice_socket.send_to(text_data=frame)
    error = await receive(alice_socket)
    assert (error["type"], error["code"]) == ("error", code)
    assert "ids" not in error  # invalid ids are not named: sending them again cannot succeed
    await send_and_confirm(alice_socket, bob)
    await alice_socket.disconnect()


async def test_binary_frame_gets_an_error(alice):
    alice_socket, _ = await open_socket(alice)
    await alice_socket.send_to(bytes_data=b"\x00\x01")
    assert (await receive(alice_socket))["code"] == "invalid_frame"
    await alice_socket.disconnect()


async def test_body_over_the_limit_is_refused(contacts, settings):
    alice, bob = contacts
    settings.MESSAGE_MAX_BODY_BYTES = 1024
    alice_socket, _ = await open_socket(alice)
    await send_frame(alice_socket, send_payload(bob, body="x" * 1025))
    assert (await receive(alice_socket))["code"] == "body_too_large"
    await send_frame(alice_socket, send_payload(bob, body="x" * max_frame_size()))
    assert (await receive(alice_socket))["code"] == "frame_too_large"
    await send_and_confirm(alice_socket, bob, body="x" * 1024)
    assert len(await envelope_rows()) == 1
    await alice_socket.disconnect()


async def test_sending_is_rate_limited(contacts, settings):
    alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message_send": "3/60"}
    alice_socket, _ = await open_socket(alice)
    for _ in range(3):
        await send_and_confirm(alice_socket, bob)
    await send_frame(alice_socket, send_payload(bob))
    error = await receive(alice_socket)
    assert (error["code"], error["retry_after"] > 0) == ("rate_limited", True)
    assert len(await envelope_rows()) == 3
    # a second socket of the same user shares the bucket
    tab2, _ = await open_socket(alice)
    await send_frame(tab2, send_payload(bob))
    assert (await receive(tab2))["code"] == "rate_limited"
    await alice_socket.disconnect()
    await tab2.disconnect()


async def test_rate_limits_can_be_switched_off(contacts, settings):
    alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message_send": "1/60"}
    settings.RATE_LIMITS_ENABLED = False
    alice_socket, _ = await open_socket(alice)
    for _ in range(3):
        await send_and_confirm(alice_socket, bob)
    await alice_socket.disconnect()


# --- typing ------------------------------------------------------------------------------------


async def test_typing_is_relayed_to_the_contact_and_never_stored(contacts):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    await send_frame(alice_socket, {"type": "typing", "to": bob.email, "state": "start"})
    assert await receive(bob_socket) == {"type": "typing", "from": alice.email, "state": "start"}
    assert await alice_socket.receive_nothing(timeout=0.1)
    assert await envelope_rows() == []
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_typing_to_a_stranger_is_refused(alice, bob):
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    await send_frame(alice_socket, {"type": "typing", "to": bob.email, "state": "start"})
    assert (await receive(alice_socket))["code"] == "not_a_contact"
    assert await bob_socket.receive_nothing(timeout=0.1)
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_typing_is_rate_limited(contacts, settings):
    alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "typing": "2/60"}
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    for state in ("start", "stop"):
        await send_frame(alice_socket, {"type": "typing", "to": bob.email, "state": state})
        assert (await receive(bob_socket))["state"] == state
    await send_frame(alice_socket, {"type": "typing", "to": bob.email, "state": "start"})
    assert (await receive(alice_socket))["code"] == "rate_limited"
    assert await bob_socket.receive_nothing(timeout=0.1)
    await alice_socket.disconnect()
    await bob_socket.disconnect()


# --- events of other apps, closing ---------------------------------------------------------------


async def test_events_published_by_other_apps_are_forwarded(alice, bob):
    alice_socket, _ = await open_socket(alice)
    await sync_to_async(bus.publish_on_commit)([alice.id], keys_events.prekeys_low_event(device_id=1, remaining=3))
    assert await receive(alice_socket) == {"type": "prekeys_low", "device_id": 1, "remaining": 3}
    # a contact request from bob, through the contacts API
    await sync_to_async(request_contact)(bob, alice)
    event = await receive(alice_socket)
    assert (event["type"], event["from"]) == ("contact_request", bob.email)
    await alice_socket.disconnect()


async def test_logout_closes_every_socket_of_the_user_with_4403(alice):
    tab1, _ = await open_socket(alice)
    tab2, _ = await open_socket(alice)
    response = await sync_to_async(alice.client.post_json)("/api/v1/auth/logout")
    assert response.status_code == 204
    assert await tab1.receive_output() == {"type": "websocket.close", "code": 4403}
    assert await tab2.receive_output() == {"type": "websocket.close", "code": 4403}
    await tab1.disconnect()
    await tab2.disconnect()


async def test_unlinking_a_device_closes_its_sockets_and_no_other(alice):
    laptop = await database_sync_to_async(second_device)(alice)
    phone_socket, _ = await open_socket(alice)
    laptop_socket, _ = await open_socket(laptop)
    response = await sync_to_async(alice.client.delete)("/api/v1/devices/2")
    assert response.status_code == 204
    closed = await laptop_socket.receive_output()
    assert closed == {"type": "websocket.close", "code": 4403, "reason": "device_removed"}
    assert await receive(phone_socket) == {"type": "devices_changed", "email": alice.email}
    assert await phone_socket.receive_nothing(timeout=0.1)
    # The removed device's token opens no socket again.
    again = communicator(laptop)
    assert (await again.connect())[0]
    assert await again.receive_output() == {"type": "websocket.close", "code": 4401}
    await phone_socket.disconnect()
    await laptop_socket.disconnect()


async def test_a_device_signing_out_closes_its_own_sockets_only(alice):
    laptop = await database_sync_to_async(second_device)(alice)
    phone_socket, _ = await open_socket(alice)
    laptop_socket, _ = await open_socket(laptop)
    assert (await sync_to_async(laptop.client.post_json)("/api/v1/auth/logout")).status_code == 204
    assert await laptop_socket.receive_output() == {"type": "websocket.close", "code": 4403}
    assert await phone_socket.receive_nothing(timeout=0.2)
    await phone_socket.disconnect()
    await laptop_socket.disconnect()


async def test_a_pending_session_gets_no_socket(alice):
    def pending() -> Account:
        client = CsrfClient()
        body = {"email": alice.email, "password": alice.password, "device_id": None}
        assert client.post_json("/api/v1/auth/login", body).json()["device"] is None
        return Account(alice.email, alice.password, alice.keys, client, alice.id)

    socket = communicator(await database_sync_to_async(pending)())
    assert (await socket.connect())[0]
    closed = await socket.receive_output()
    assert closed == {"type": "websocket.close", "code": 4403, "reason": "device_required"}


async def test_deactivating_a_user_closes_their_sockets(alice):
    socket, _ = await open_socket(alice)
    await sync_to_async(_deactivate)(alice.id)
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4403}
    await socket.disconnect()


async def test_socket_is_closed_when_its_access_token_expires(alice):
    from accounts.models import User

    user = await User.objects.aget(pk=alice.id)
    token = AccessToken.for_user(user)
    # JWT expiry is in whole seconds: this one expires between 1 and 2 s from now.
    token.set_exp(lifetime=timedelta(seconds=2))
    socket = communicator(token=str(token))
    connected, _ = await socket.connect()
    assert connected
    assert await receive(socket) == {"type": "queue_empty"}
    assert await socket.receive_nothing(timeout=0.5)
    assert await socket.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
    await socket.disconnect()


async def test_a_push_that_fails_after_commit_still_confirms_and_redelivers(contacts, monkeypatch):
    alice, bob = contacts

    async def layer_down(*args, **kwargs):
        raise ConnectionError("channel layer unavailable")

    alice_socket, _ = await open_socket(alice)
    monkeypatch.setattr(bus, "send_collected", layer_down)
    sent = await send_and_confirm(alice_socket, bob)  # stored and confirmed despite the lost push
    monkeypatch.undo()
    bob_socket, backlog = await open_socket(bob, expect_backlog=1)
    assert backlog[0]["id"] == sent["id"]
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_sync_delivers_what_a_dropped_push_missed_and_nothing_twice(contacts, monkeypatch):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)

    async def dropped(*args, **kwargs):
        return None

    monkeypatch.setattr(bus, "send_collected", dropped)
    sent = await send_and_confirm(alice_socket, bob)
    monkeypatch.undo()
    assert await bob_socket.receive_nothing(timeout=0.2)

    await send_frame(bob_socket, {"type": "sync"})
    assert (await receive(bob_socket))["id"] == sent["id"]
    assert await receive(bob_socket) == {"type": "queue_empty"}
    await send_frame(bob_socket, {"type": "sync"})
    assert await receive(bob_socket) == {"type": "queue_empty"}  # already on this socket, not acked
    await alice_socket.disconnect()
    await bob_socket.disconnect()


# --- faults: recovery without the client's help --------------------------------------------------


def receipts_fail(monkeypatch, times: int = 1) -> None:
    """The next `times` batches holding receipts fail in the database, as when the database
    thread's connection was killed, and so does the redo of their receipts one by one
    (realtime.batching redoes a failed batch request by request)."""
    apply = services.envelopes_apply
    left = [2 * times]  # each batch, then its receipt alone

    def envelopes_apply(requests):
        if left[0] > 0 and any(isinstance(request, services.ReceiptRequest) for request in requests):
            left[0] -= 1
            raise OperationalError(2013, "Lost connection to server during query")
        return apply(requests)

    monkeypatch.setattr(services, "envelopes_apply", envelopes_apply)


@pytest.mark.parametrize("kind", ["ack", "read"])
async def test_a_failed_receipt_is_answered_with_its_ids_and_can_be_sent_again(contacts, monkeypatch, kind):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    sent = await send_and_confirm(alice_socket, bob)
    bob_socket, _ = await open_socket(bob, expect_backlog=1)
    receipts_fail(monkeypatch)

    await send_frame(bob_socket, {"type": kind, "ids": [sent["id"]]})
    error = await receive(bob_socket)
    assert error == {
        "type": "error",
        "code": "server_error",
        "detail": error["detail"],
        "frame": kind,
        "ids": [sent["id"]],
    }
    assert (await envelope_rows())[0].delivered_at is None
    assert await alice_socket.receive_nothing(timeout=0.2)

    await send_frame(bob_socket, {"type": kind, "ids": [sent["id"]]})  # the client's retry
    receipts = ["delivered"] if kind == "ack" else ["delivered", "read"]  # a read delivers too
    assert [await receive(alice_socket) for _ in receipts] == [{"type": r, "ids": [sent["id"]]} for r in receipts]
    assert (await envelope_rows())[0].delivered_at is not None
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_a_failed_ack_does_not_hide_the_envelope_from_sync(contacts, monkeypatch):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    sent = await send_and_confirm(alice_socket, bob)
    bob_socket, _ = await open_socket(bob, expect_backlog=1)
    receipts_fail(monkeypatch)
    await send_frame(bob_socket, {"type": "ack", "ids": [sent["id"]]})
    assert (await receive(bob_socket))["ids"] == [sent["id"]]

    await send_frame(bob_socket, {"type": "sync"})
    assert (await receive(bob_socket))["id"] == sent["id"]
    assert await receive(bob_socket) == {"type": "queue_empty"}
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_a_push_that_fails_is_published_again_in_order_without_holding_up_answers(contacts, monkeypatch):
    """The publish of the first batch fails, and so does its first retry, which hangs until
    the second batch was answered (a cut Redis connection): the second batch is answered
    meanwhile, and both pushes reach the open socket in commit order, without a sync or a
    reconnect."""
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    send_collected = bus.send_collected
    calls = []
    second_answered = asyncio.Event()

    async def flaky(layer, collected):
        calls.append([message["event"]["id"] for _, message in collected])
        if len(calls) == 2:
            await second_answered.wait()
        if len(calls) <= 2:
            raise ConnectionError("Connection closed by server.")
        await send_collected(layer, collected)

    monkeypatch.setattr(bus, "send_collected", flaky)
    first = await send_and_confirm(alice_socket, bob)
    second = await send_and_confirm(alice_socket, bob)
    second_answered.set()
    assert [(await receive(bob_socket))["id"] for _ in range(2)] == [first["id"], second["id"]]
    assert calls[0] == [first["id"]]  # the second batch was held behind the first, never sent alone
    assert calls[-1] == [first["id"], second["id"]]
    assert await bob_socket.receive_nothing(timeout=0.2)
    await alice_socket.disconnect()
    await bob_socket.disconnect()


@pytest.mark.parametrize("notice", [layers.RESUBSCRIBED, bus.BACKLOG_REREAD])
async def test_a_lost_push_notice_makes_each_socket_read_its_backlog_again(contacts, monkeypatch, notice):
    """realtime.redis_layer sends `layer.resubscribed` once a cut subscription is back, and
    realtime.batching a `backlog.reread` to the recipients of pushes it gave up: the socket
    re-reads the backlog, without what it sent already."""
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    pushed = await send_and_confirm(alice_socket, bob)
    assert (await receive(bob_socket))["id"] == pushed["id"]  # received, not acknowledged yet

    async def lost(*args, **kwargs):
        return None

    monkeypatch.setattr(bus, "send_collected", lost)
    missed = await send_and_confirm(alice_socket, bob)
    monkeypatch.undo()
    assert await bob_socket.receive_nothing(timeout=0.2)

    await get_channel_layer().group_send(bus.user_group(bob.id), {"type": notice})
    assert (await receive(bob_socket))["id"] == missed["id"]
    assert await receive(bob_socket) == {"type": "queue_empty"}
    assert await alice_socket.receive_nothing(timeout=0.2)
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_a_backlog_reread_that_fails_in_the_database_is_tried_again(contacts, monkeypatch):
    alice, bob = contacts
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)

    async def lost(*args, **kwargs):
        return None

    monkeypatch.setattr(bus, "send_collected", lost)
    missed = await send_and_confirm(alice_socket, bob)
    monkeypatch.undo()
    pending = selectors.envelopes_pending
    failures = [1]

    def flaky(**kwargs):
        if failures[0] > 0:
            failures[0] -= 1
            raise OperationalError(2013, "Lost connection to server during query")
        return pending(**kwargs)

    monkeypatch.setattr(selectors, "envelopes_pending", flaky)
    await get_channel_layer().group_send(bus.user_group(bob.id), {"type": layers.RESUBSCRIBED})
    assert (await receive(bob_socket))["id"] == missed["id"]
    assert await receive(bob_socket) == {"type": "queue_empty"}
    await alice_socket.disconnect()
    await bob_socket.disconnect()


def store_envelope(sender: Account, recipient: Account, body: str) -> None:
    request = services.SendRequest(sender.id, sender.email, recipient.email, uuid.uuid4(), "message", body)
    services.envelope_send(request)


async def test_pushes_lost_to_a_full_channel_are_read_again_once_it_has_room(contacts, settings, monkeypatch):
    """A socket that falls behind (its channel holds one message here) loses the pushes that do
    not fit; the layer tells it once it has room, and it reads them from the database: every
    message arrives, none twice."""
    alice, bob = contacts
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "realtime.layers.IndexedInMemoryChannelLayer", "CONFIG": {"capacity": 1}}
    }
    channel_layers.backends = {}
    bob_socket, _ = await open_socket(bob)
    with monkeypatch.context() as quiet:  # stored without their pushes, which come below
        quiet.setattr(bus, "publish_on_commit", lambda user_ids, event: None)
        for n in range(5):
            await database_sync_to_async(store_envelope)(alice, bob, f"Ym9keSA{n}")
    pushes = await database_sync_to_async(selectors.envelopes_pending)(user_id=bob.id)
    layer = get_channel_layer()
    for event in pushes:  # all at once, before the socket reads any: four do not fit
        await layer.group_send(bus.user_group(bob.id), {"type": bus.PUSH_EVENT, "event": event})
    received = []
    while len(received) < len(pushes):
        frame = await receive(bob_socket)
        if frame["type"] == "message":
            received.append(frame["id"])
            await send_frame(bob_socket, {"type": "ack", "ids": [frame["id"]]})
    assert received == [event["id"] for event in pushes]
    later = []
    while not await bob_socket.receive_nothing(timeout=0.3):
        later.append((await receive(bob_socket))["type"])
    assert "message" not in later  # nothing twice (a `queue_empty` ends the re-read)
    await bob_socket.disconnect()
