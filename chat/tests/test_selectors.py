import uuid

import pytest

from chat import selectors
from chat.models import Envelope

pytestmark = pytest.mark.django_db


def envelope(sender, recipient, **fields) -> Envelope:
    return Envelope.objects.create(
        sender_id=sender.id, recipient_id=recipient.id, client_id=uuid.uuid4(), kind="message", body="x", **fields
    )


def test_pending_lists_only_the_users_undelivered_envelopes_in_id_order(alice, bob, make_account):
    carol = make_account()
    first = envelope(alice, bob)
    envelope(bob, alice)
    envelope(alice, carol)
    from django.utils import timezone

    envelope(alice, bob, delivered_at=timezone.now())
    last = envelope(carol, bob)

    pending = selectors.envelopes_pending(user_id=bob.id)

    assert [m["id"] for m in pending] == [first.id, last.id]
    assert [m["from"] for m in pending] == [alice.email, carol.email]


def test_pending_pages_with_after_and_limit(alice, bob):
    ids = [envelope(alice, bob).id for _ in range(5)]
    assert [m["id"] for m in selectors.envelopes_pending(user_id=bob.id, limit=2)] == ids[:2]
    assert [m["id"] for m in selectors.envelopes_pending(user_id=bob.id, after=ids[1], limit=2)] == ids[2:4]
    assert selectors.envelopes_pending(user_id=bob.id, after=ids[-1]) == []


def test_pending_has_the_shape_of_a_message_frame(alice, bob):
    sent = envelope(alice, bob)
    [message] = selectors.envelopes_pending(user_id=bob.id)
    assert set(message) == {
        "type",
        "id",
        "message_id",
        "client_id",
        "from",
        "from_device",
        "to",
        "kind",
        "body",
        "sent_at",
    }
    assert (message["message_id"], message["from_device"], message["to"]) == (message["id"], 1, bob.email)
    assert message["client_id"] == str(sent.client_id)
    assert message["sent_at"].endswith("Z")


def test_pending_is_one_query(alice, bob, django_assert_num_queries):
    for _ in range(3):
        envelope(alice, bob)
    with django_assert_num_queries(1):
        selectors.envelopes_pending(user_id=bob.id)
