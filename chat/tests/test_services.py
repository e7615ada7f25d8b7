import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from chat import services
from chat.errors import BodyTooLarge, ClientIdReused, InvalidEnvelope, NotAContact
from chat.models import Envelope
from chat.tests.helpers import make_contacts, request_contact
from realtime import bus

pytestmark = pytest.mark.django_db


def user(account) -> User:
    return User.objects.get(pk=account.id)


def send(sender, to, *, client_id=None, body="Y2lwaGVy", kind="message"):
    return send_to(sender, to.email, client_id=client_id, kind=kind, body=body)


def send_to(sender, to_email, *, client_id=None, body="Y2lwaGVy", kind="message"):
    sender = user(sender)
    request = services.SendRequest(sender.pk, sender.email, to_email, client_id or uuid.uuid4(), kind, body)
    return services.envelope_send(request)


@pytest.fixture
def publishing(django_capture_on_commit_callbacks, monkeypatch):
    """Call a function; return its result and the (user_ids, message) pairs it published on
    commit (the test's transaction never commits, so the callbacks are run by hand)."""

    def run(function, *args, **kwargs):
        collected = []
        with monkeypatch.context() as patch:
            patch.setattr(bus, "_send_now", lambda user_ids, message: collected.append((user_ids, message)))
            with django_capture_on_commit_callbacks(execute=True):
                result = function(*args, **kwargs)
        return result, collected

    return run


# --- sending --------------------------------------------------------------------------------


def test_send_stores_the_envelope_and_pushes_it_to_the_recipient_only(contacts, publishing):
    alice, bob = contacts
    result, published = publishing(send, alice, bob, kind="prekey", body="b64==")
    envelope = Envelope.objects.get(pk=result.id)
    assert (envelope.sender_id, envelope.recipient_id, envelope.kind, envelope.body, envelope.size) == (
        alice.id,
        bob.id,
        "prekey",
        "b64==",
        5,
    )
    assert result.created
    [(user_ids, message)] = published
    assert user_ids == [bob.id]
    assert message["event"]["type"] == "message"
    assert message["event"]["from"] == alice.email


def test_nothing_is_published_when_the_transaction_rolls_back(contacts, django_capture_on_commit_callbacks):
    alice, bob = contacts

    def send_then_fail():
        with transaction.atomic():
            send(alice, bob)
            raise RuntimeError

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        send_then_fail()
    assert callbacks == []
    assert not Envelope.objects.exists()


def test_resend_with_the_same_client_id_stores_nothing_and_returns_the_same_id(contacts, publishing):
    alice, bob = contacts
    client_id = uuid.uuid4()
    first, _ = publishing(send, alice, bob, client_id=client_id)
    again, published = publishing(send, alice, bob, client_id=client_id)
    assert (again.id, again.created) == (first.id, False)
    assert Envelope.objects.count() == 1
    assert published == []  # the duplicate is not pushed again


def test_client_id_reused_for_another_recipient_is_a_conflict(contacts, make_account):
    alice, bob = contacts
    carol = make_account()
    make_contacts(alice, carol)
    client_id = uuid.uuid4()
    send(alice, bob, client_id=client_id)
    with pytest.raises(ClientIdReused):
        send(alice, carol, client_id=client_id)


def test_the_same_client_id_from_two_senders_is_two_envelopes(contacts, make_account):
    alice, bob = contacts
    carol = make_account()
    make_contacts(carol, bob)
    client_id = uuid.uuid4()
    assert send(alice, bob, client_id=client_id).id != send(carol, bob, client_id=client_id).id


def test_send_to_a_stranger_is_refused(alice, bob):
    with pytest.raises(NotAContact):
        send(alice, bob)
    assert not Envelope.objects.exists()


def test_send_to_a_pending_contact_is_refused_both_ways(alice, bob):
    request_contact(alice, bob)
    with pytest.raises(NotAContact):
        send(alice, bob)
    with pytest.raises(NotAContact):
        send(bob, alice)


def test_send_to_a_removed_contact_is_refused(contacts):
    alice, bob = contacts
    assert bob.client.post_json("/api/v1/contacts/remove", {"email": alice.email}).status_code == 204
    with pytest.raises(NotAContact):
        send(alice, bob)


def test_send_to_an_unknown_email_looks_like_a_stranger(alice):
    with pytest.raises(NotAContact) as excinfo:
        send_to(alice, "ghost@example.test", body="x")
    assert excinfo.value.code == "not_a_contact"


def test_send_to_a_deactivated_contact_is_refused(contacts):
    alice, bob = contacts
    User.objects.filter(pk=bob.id).update(is_active=False)
    with pytest.raises(NotAContact):
        send(alice, bob)


def test_a_deactivated_sender_cannot_send(contacts):
    alice, bob = contacts
    User.objects.filter(pk=alice.id).update(is_active=False)
    with pytest.raises(NotAContact) as excinfo:
        send(alice, bob)
    assert excinfo.value.code == "account_disabled"


def test_recipient_email_is_compared_case_insensitively(contacts):
    alice, bob = contacts
    send_to(alice, bob.email.upper(), body="x")
    assert Envelope.objects.get().recipient_id == bob.id


def test_send_to_oneself_is_refused(alice):
    with pytest.raises(InvalidEnvelope):
        send(alice, alice)


def test_body_size_is_limited_in_bytes(contacts, settings):
    alice, bob = contacts
    settings.MESSAGE_MAX_BODY_BYTES = 10
    send(alice, bob, body="x" * 10)
    with pytest.raises(BodyTooLarge):
        send(alice, bob, body="é" * 6)  # 12 bytes in UTF-8


def test_unknown_kind_is_refused(contacts):
    alice, bob = contacts
    with pytest.raises(InvalidEnvelope):
        send(alice, bob, kind="html")


# --- the database as the last line of defence --------------------------------------------------


def test_database_refuses_a_second_envelope_with_the_same_sender_and_client_id(contacts):
    alice, bob = contacts
    client_id = uuid.uuid4()
    Envelope.objects.create(sender_id=alice.id, recipient_id=bob.id, client_id=client_id, kind="message", body="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        Envelope.objects.create(sender_id=alice.id, recipient_id=bob.id, client_id=client_id, kind="message")


def test_database_refuses_an_envelope_to_oneself(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        Envelope.objects.create(sender_id=alice.id, recipient_id=alice.id, client_id=uuid.uuid4(), kind="message")


def test_database_refuses_an_unknown_kind(contacts):
    alice, bob = contacts
    with pytest.raises(IntegrityError), transaction.atomic():
        Envelope.objects.create(sender_id=alice.id, recipient_id=bob.id, client_id=uuid.uuid4(), kind="html")


# --- receipts -------------------------------------------------------------------------------


def test_mark_delivered_erases_the_body_keeps_metadata_and_tells_the_sender(contacts, publishing):
    alice, bob = contacts
    first, second = send(alice, bob, body="one"), send(alice, bob, body="two")
    result, published = publishing(services.envelopes_mark_delivered, user_id=bob.id, ids=[first.id, second.id])
    assert result.marked == [first.id, second.id]
    rows = list(Envelope.objects.order_by("id").values_list("body", "size", "delivered_at"))
    assert [(body, size) for body, size, _ in rows] == [("", 3), ("", 3)]
    assert all(delivered_at for *_, delivered_at in rows)
    assert published == [
        ([alice.id], {"type": "push.event", "event": {"type": "delivered", "ids": [first.id, second.id]}})
    ]


def test_keep_delivered_bodies_keeps_them(contacts, settings):
    alice, bob = contacts
    settings.KEEP_DELIVERED_BODIES = True
    sent = send(alice, bob, body="kept")
    services.envelopes_mark_delivered(user_id=bob.id, ids=[sent.id])
    assert Envelope.objects.get().body == "kept"


def test_only_the_recipient_can_mark_delivered_or_read(contacts, make_account, publishing):
    alice, bob = contacts
    mallory = make_account()
    sent = send(alice, bob)
    for user_id in (mallory.id, alice.id):
        for mark in (services.envelopes_mark_delivered, services.envelopes_mark_read):
            result, published = publishing(mark, user_id=user_id, ids=[sent.id])
            assert (result.marked, published) == ([], [])
    envelope = Envelope.objects.get()
    assert (envelope.delivered_at, envelope.read_at, envelope.body) == (None, None, "Y2lwaGVy")


def test_receipts_mixing_own_and_foreign_ids_mark_only_own(contacts, make_account, caplog):
    alice, bob = contacts
    carol = make_account()
    make_contacts(alice, carol)
    to_bob, to_carol = send(alice, bob), send(alice, carol)
    result = services.envelopes_mark_delivered(user_id=bob.id, ids=[to_bob.id, to_carol.id, 999_999])
    assert (result.marked, result.ignored) == ([to_bob.id], 2)
    assert Envelope.objects.get(pk=to_carol.id).delivered_at is None
    [record] = [r for r in caplog.records if r.name == "chat.services"]
    assert "not addressed to the user ignored" in record.getMessage()
    assert record.args == (bob.id, 2)  # counts only, not whose envelopes the ids are


def test_marking_twice_changes_nothing_the_second_time(contacts, publishing):
    alice, bob = contacts
    sent = send(alice, bob)
    services.envelopes_mark_delivered(user_id=bob.id, ids=[sent.id])
    delivered_at = Envelope.objects.get().delivered_at
    result, published = publishing(services.envelopes_mark_delivered, user_id=bob.id, ids=[sent.id])
    assert (result.marked, published) == ([], [])
    assert Envelope.objects.get().delivered_at == delivered_at


def test_read_implies_delivered(contacts, publishing):
    alice, bob = contacts
    sent = send(alice, bob)
    _, published = publishing(services.envelopes_mark_read, user_id=bob.id, ids=[sent.id])
    envelope = Envelope.objects.get()
    assert envelope.delivered_at is not None
    assert envelope.read_at is not None
    assert envelope.body == ""
    assert [message["event"]["type"] for _, message in published] == ["delivered", "read"]


def test_receipts_go_to_each_sender_separately(contacts, make_account, publishing):
    alice, bob = contacts
    carol = make_account()
    make_contacts(carol, bob)
    from_alice, from_carol = send(alice, bob), send(carol, bob)
    _, published = publishing(services.envelopes_mark_delivered, user_id=bob.id, ids=[from_alice.id, from_carol.id])
    assert sorted((ids, m["event"]["ids"]) for ids, m in published) == [
        ([alice.id], [from_alice.id]),
        ([carol.id], [from_carol.id]),
    ]


def test_typing_recipient_requires_an_accepted_contact(alice, bob):
    with pytest.raises(NotAContact):
        services.typing_recipient(sender=user(alice), to_email=bob.email)
    make_contacts(alice, bob)
    assert services.typing_recipient(sender=user(alice), to_email=bob.email) == bob.id


# --- retention --------------------------------------------------------------------------------


def _age(envelope_id: int, days: int) -> None:
    Envelope.objects.filter(pk=envelope_id).update(created_at=timezone.now() - timedelta(days=days))


def test_purge_deletes_expired_undelivered_and_erases_delivered_bodies(contacts, settings):
    alice, bob = contacts
    settings.MESSAGE_RETENTION_DAYS = 7
    expired, fresh, delivered = send(alice, bob), send(alice, bob), send(alice, bob)
    _age(expired.id, 8)
    _age(delivered.id, 8)
    # delivered while bodies were kept
    Envelope.objects.filter(pk=delivered.id).update(delivered_at=timezone.now())

    dry = services.envelopes_purge(dry_run=True)
    assert (dry.bodies_erased, dry.expired_deleted) == (1, 1)
    assert Envelope.objects.count() == 3

    result = services.envelopes_purge()
    assert (result.bodies_erased, result.expired_deleted) == (1, 1)
    assert set(Envelope.objects.values_list("id", flat=True)) == {fresh.id, delivered.id}
    assert Envelope.objects.get(pk=delivered.id).body == ""
    assert Envelope.objects.get(pk=fresh.id).body != ""


def test_purge_keeps_delivered_bodies_when_configured(contacts, settings):
    alice, bob = contacts
    settings.KEEP_DELIVERED_BODIES = True
    sent = send(alice, bob)
    services.envelopes_mark_delivered(user_id=bob.id, ids=[sent.id])
    assert services.envelopes_purge().bodies_erased == 0
    assert Envelope.objects.get().body != ""


# --- batches (the socket path sends many requests in one call) -----------------------------------


def request(sender, to, *, client_id=None, kind="message", body="x") -> services.SendRequest:
    return services.SendRequest(sender.id, sender.email, to.email, client_id or uuid.uuid4(), kind, body)


def test_a_batch_answers_each_request_on_its_own(contacts, make_account, settings):
    alice, bob = contacts
    stranger = make_account()
    settings.MESSAGE_MAX_BODY_BYTES = 10
    client_id = uuid.uuid4()
    results = services.envelopes_send(
        [
            request(alice, bob, client_id=client_id),
            request(alice, stranger),
            request(bob, alice, body="x" * 11),
            request(alice, bob, client_id=client_id),  # the same envelope twice in one batch
            request(bob, alice, kind="html"),
            request(bob, alice),
        ]
    )
    ok, stranger_error, too_large, duplicate, bad_kind, reply = results
    assert ok.created
    assert reply.created
    assert (duplicate.id, duplicate.created) == (ok.id, False)
    assert [type(e) for e in (stranger_error, too_large, bad_kind)] == [NotAContact, BodyTooLarge, InvalidEnvelope]
    assert Envelope.objects.count() == 2
    assert list(Envelope.objects.values_list("id", flat=True)) == sorted([ok.id, reply.id])


def test_a_batch_refuses_a_client_id_reused_for_another_recipient_within_it(contacts, make_account):
    alice, bob = contacts
    carol = make_account()
    make_contacts(alice, carol)
    client_id = uuid.uuid4()
    first, second = services.envelopes_send(
        [request(alice, bob, client_id=client_id), request(alice, carol, client_id=client_id)]
    )
    assert first.created
    assert isinstance(second, ClientIdReused)


def test_receipts_of_two_sockets_for_one_envelope_in_one_batch_mark_it_once(contacts, publishing):
    alice, bob = contacts
    sent = send(alice, bob)
    results, published = publishing(
        services.envelopes_mark,
        [services.ReceiptRequest(bob.id, [sent.id]), services.ReceiptRequest(bob.id, [sent.id], read=True)],
    )
    assert [r.marked for r in results] == [[sent.id], [sent.id]]  # delivered by one, read by the other
    assert [m["event"] for _, m in published] == [
        {"type": "delivered", "ids": [sent.id]},
        {"type": "read", "ids": [sent.id]},
    ]


def test_receipts_in_one_batch_stay_scoped_to_their_own_user(contacts, make_account):
    alice, bob = contacts
    mallory = make_account()
    sent = send(alice, bob)
    results = services.envelopes_mark(
        [services.ReceiptRequest(mallory.id, [sent.id]), services.ReceiptRequest(alice.id, [sent.id], read=True)]
    )
    assert [r.marked for r in results] == [[], []]
    assert Envelope.objects.get().delivered_at is None
