"""Storage quotas on undelivered mail (MESSAGE_QUOTA_SENDER_BYTES, MESSAGE_QUOTA_RECIPIENT_BYTES)
and the one send budget shared by the socket and REST paths."""

import importlib
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from chat import services, sql
from chat.errors import QuotaExceeded
from chat.models import Envelope, MailboxUsage
from chat.tests.helpers import make_contacts, open_socket, receive, send_frame, send_payload

BODY = "x" * 1000


def request(sender, to, *, body=BODY, client_id=None) -> services.SendRequest:
    return services.SendRequest(sender.id, sender.email, to.email, client_id or uuid.uuid4(), "message", body)


def send_all(requests):
    return services.envelopes_send(requests)


@pytest.fixture
def quotas(settings):
    settings.MESSAGE_QUOTA_SENDER_BYTES = 3000
    settings.MESSAGE_QUOTA_RECIPIENT_BYTES = 5000
    return settings


@pytest.mark.django_db
def test_a_sender_over_its_quota_of_undelivered_bytes_is_refused(contacts, quotas):
    alice, bob = contacts
    results = send_all([request(alice, bob) for _ in range(3)])
    assert all(isinstance(result, services.SendResult) for result in results)
    [refused] = send_all([request(alice, bob)])
    assert isinstance(refused, QuotaExceeded)
    assert (refused.code, refused.status_code) == ("quota_exceeded", 403)
    assert "3000 bytes" in refused.detail
    assert Envelope.objects.count() == 3


@pytest.mark.django_db
def test_delivery_frees_the_senders_quota(contacts, quotas):
    alice, bob = contacts
    first, *_ = send_all([request(alice, bob) for _ in range(3)])
    services.envelopes_mark_delivered(user_id=bob.id, ids=[first.id])
    [result] = send_all([request(alice, bob)])
    assert isinstance(result, services.SendResult)


@pytest.mark.django_db
def test_a_recipient_over_its_quota_refuses_every_sender(contacts, make_account, quotas):
    alice, bob = contacts
    carol, dave = make_account(), make_account()
    make_contacts(carol, bob)
    make_contacts(dave, bob)
    assert all(isinstance(r, services.SendResult) for r in send_all([request(alice, bob) for _ in range(3)]))
    assert all(isinstance(r, services.SendResult) for r in send_all([request(carol, bob) for _ in range(2)]))
    [refused] = send_all([request(dave, bob)])
    assert isinstance(refused, QuotaExceeded)
    assert "contact" in refused.detail
    # dave's own quota is untouched: another recipient still gets his mail
    make_contacts(dave, alice)
    [result] = send_all([request(dave, alice)])
    assert isinstance(result, services.SendResult)


@pytest.mark.django_db
def test_one_request_over_quota_does_not_affect_the_others_of_the_batch(contacts, make_account, quotas):
    alice, bob = contacts
    carol = make_account()
    make_contacts(carol, bob)
    batch = [request(alice, bob), request(alice, bob), request(carol, bob), request(alice, bob), request(alice, bob)]
    results = send_all(batch)
    assert [type(result).__name__ for result in results] == [
        "SendResult",
        "SendResult",
        "SendResult",
        "SendResult",
        "QuotaExceeded",  # alice's fourth 1000 bytes: over her 3000 together with the batch's
    ]
    assert Envelope.objects.count() == 4


@pytest.mark.django_db
def test_a_resend_of_a_stored_envelope_is_not_counted_again(contacts, quotas):
    alice, bob = contacts
    client_ids = [uuid.uuid4() for _ in range(3)]
    first = send_all([request(alice, bob, client_id=c) for c in client_ids])
    again = send_all([request(alice, bob, client_id=c) for c in client_ids])
    assert [r.id for r in again] == [r.id for r in first]
    assert not any(r.created for r in again)


@pytest.mark.django_db
def test_quotas_count_bytes_not_characters(contacts, quotas):
    alice, bob = contacts
    [result] = send_all([request(alice, bob, body="é" * 1501)])  # 3002 bytes
    assert isinstance(result, QuotaExceeded)


@pytest.mark.django_db
def test_zero_switches_the_quotas_off(contacts, settings):
    settings.MESSAGE_QUOTA_SENDER_BYTES = 0
    settings.MESSAGE_QUOTA_RECIPIENT_BYTES = 0
    alice, bob = contacts
    results = send_all([request(alice, bob, body="x" * 5000) for _ in range(5)])
    assert all(isinstance(result, services.SendResult) for result in results)


@pytest.mark.django_db
def test_pending_bytes_counts_undelivered_bodies_per_sender_and_recipient(contacts, make_account):
    alice, bob = contacts
    carol = make_account()
    make_contacts(carol, bob)
    a1, _a2 = send_all([request(alice, bob, body="x" * 10), request(alice, bob, body="x" * 20)])
    send_all([request(carol, bob, body="é" * 4)])
    services.envelopes_mark_delivered(user_id=bob.id, ids=[a1.id])
    sent, waiting = sql.pending_bytes(sender_ids=[alice.id, carol.id, bob.id], recipient_emails=[bob.email.upper()])
    assert sent == {alice.id: 20, carol.id: 8, bob.id: 0}
    assert waiting == {bob.id: 28}
    # the same answers from the batch's combined statement
    found = sql.users_and_resends(
        emails=[bob.email], ids=[alice.id, carol.id], keys=[(alice.id, uuid.uuid4())], quotas=True
    )
    assert (found.sent_bytes, found.waiting_bytes) == ({alice.id: 20, carol.id: 8}, waiting)
    assert {row.id for row in found.users} == {alice.id, carol.id, bob.id}


@pytest.mark.django_db
def test_rest_send_over_quota_is_a_403_with_code_quota_exceeded(contacts, quotas):
    alice, bob = contacts
    send_all([request(alice, bob) for _ in range(3)])
    response = alice.client.post_json(
        "/api/v1/messages/", {"client_id": str(uuid.uuid4()), "to": bob.email, "kind": "message", "body": BODY}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "quota_exceeded"


# --- over the socket, and the shared send budget ----------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_socket_send_over_quota_gets_an_error_frame_with_its_client_id(contacts, quotas):
    alice, bob = contacts
    socket, _ = await open_socket(alice)
    for _ in range(3):
        await send_frame(socket, send_payload(bob, body=BODY))
        assert (await receive(socket))["type"] == "sent"
    payload = send_payload(bob, body=BODY)
    await send_frame(socket, payload)
    error = await receive(socket)
    assert (error["type"], error["code"], error["client_id"]) == ("error", "quota_exceeded", payload["client_id"])
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_socket_and_rest_sends_share_one_budget(contacts, settings):
    from asgiref.sync import sync_to_async

    alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message_send": "3/60"}

    def rest_send():
        return alice.client.post_json(
            "/api/v1/messages/", {"client_id": str(uuid.uuid4()), "to": bob.email, "kind": "message", "body": "eA=="}
        )

    socket, _ = await open_socket(alice)
    for _ in range(2):
        await send_frame(socket, send_payload(bob))
        assert (await receive(socket))["type"] == "sent"
    assert (await sync_to_async(rest_send)()).status_code == 201
    # the budget of 3 is spent, whichever way the next send goes
    response = await sync_to_async(rest_send)()
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")
    await send_frame(socket, send_payload(bob))
    assert (await receive(socket))["code"] == "rate_limited"
    await socket.disconnect()
    assert await sync_to_async(Envelope.objects.count)() == 3


@pytest.mark.django_db
def test_rest_sends_take_from_the_budget_the_socket_uses(contacts, settings):
    from messenger.errors import RateLimited
    from realtime.ratelimit import local_rate_limit_hit

    alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message_send": "2/60"}
    for _ in range(2):
        response = alice.client.post_json(
            "/api/v1/messages/", {"client_id": str(uuid.uuid4()), "to": bob.email, "kind": "message", "body": "eA=="}
        )
        assert response.status_code == 201
    with pytest.raises(RateLimited):
        local_rate_limit_hit("message_send", User.objects.get(pk=alice.id).pk)


# --- the mailbox counters -----------------------------------------------------------------------


def usage_rows() -> dict[int, tuple[int, int]]:
    return {row.user_id: (row.sent_bytes, row.waiting_bytes) for row in MailboxUsage.objects.all()}


def true_usage() -> dict[int, tuple[int, int]]:
    """The counters recomputed from the envelopes (what they must always equal)."""
    usage: dict[int, list[int]] = {}
    for envelope in Envelope.objects.filter(delivered_at=None):
        usage.setdefault(envelope.sender_id, [0, 0])[0] += envelope.size
        usage.setdefault(envelope.recipient_id, [0, 0])[1] += envelope.size
    return {user_id: tuple(pair) for user_id, pair in usage.items()}


def nonzero(usage: dict) -> dict:
    return {user_id: pair for user_id, pair in usage.items() if any(pair)}


@pytest.mark.django_db
def test_the_counters_follow_stores_receipts_and_the_purge(contacts, make_account, settings):
    alice, bob = contacts
    carol = make_account()
    make_contacts(carol, bob)
    make_contacts(carol, alice)
    a1, a2, a3 = send_all([request(alice, bob, body="x" * n) for n in (10, 20, 30)])
    c1, c2 = send_all([request(carol, bob, body="é" * 5), request(carol, alice, body="y" * 7)])
    assert usage_rows() == true_usage() == {alice.id: (60, 7), bob.id: (0, 70), carol.id: (17, 0)}
    # a resend and a refused send change nothing
    send_all([request(alice, bob, client_id=a1.client_id, body="x" * 10)])
    settings.MESSAGE_QUOTA_SENDER_BYTES = 100
    [refused] = send_all([request(alice, bob, body="z" * 50)])
    assert isinstance(refused, QuotaExceeded)
    assert nonzero(usage_rows()) == true_usage()
    # delivered (ack), read without ack (implies delivery), read after ack (no change), foreign ids
    services.envelopes_mark_delivered(user_id=bob.id, ids=[a1.id, c2.id])  # c2 is alice's: ignored
    services.envelopes_mark_read(user_id=bob.id, ids=[a2.id])
    services.envelopes_mark_read(user_id=bob.id, ids=[a1.id])
    assert nonzero(usage_rows()) == true_usage()
    # the socket path's batch: sends and receipts together
    services.envelopes_apply([request(carol, bob, body="w" * 3), services.ReceiptRequest(alice.id, [c2.id])])
    assert nonzero(usage_rows()) == true_usage()
    # the purge deletes what expired undelivered and takes it off the counters
    settings.MESSAGE_RETENTION_DAYS = 1
    Envelope.objects.filter(id__in=[a3.id, c1.id]).update(created_at=timezone.now() - timedelta(days=2))
    assert services.envelopes_purge().expired_deleted == 2
    assert nonzero(usage_rows()) == true_usage()


@pytest.mark.django_db
def test_the_migration_counts_the_envelopes_undelivered_before_it(contacts):
    from django.apps import apps

    alice, bob = contacts
    a1, _ = send_all([request(alice, bob, body="x" * 10), request(alice, bob, body="x" * 20)])
    services.envelopes_mark_delivered(user_id=bob.id, ids=[a1.id])
    MailboxUsage.objects.all().delete()
    migration = importlib.import_module("chat.migrations.0002_mailbox_usage")
    migration.count_undelivered(apps, None)
    assert usage_rows() == true_usage() == {alice.id: (20, 0), bob.id: (0, 20)}
