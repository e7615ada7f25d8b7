"""chat.sql: the hand-written statements return typed rows (the services' tests cover the rest)."""

import uuid

import pytest
from django.utils import timezone

from accounts.models import User
from chat import sql
from chat.models import Envelope

pytestmark = pytest.mark.django_db


def test_users_rows_resolves_emails_and_ids_in_one_query(django_assert_num_queries):
    alice = User.objects.create_user("alice@example.test", "a long passphrase 1")
    bob = User.objects.create_user("bob@example.test", "a long passphrase 2")
    User.objects.create_user("carol@example.test", "a long passphrase 3")
    with django_assert_num_queries(1):
        rows = sql.users_rows(emails=["ALICE@example.test", "nobody@example.test"], ids=[bob.id])
    assert sorted(rows) == [(alice.id, "alice@example.test", True), (bob.id, "bob@example.test", True)]
    assert all(isinstance(row, sql.UserRow) for row in rows)
    assert sql.users_rows() == []


def test_envelopes_insert_stores_the_copies_of_a_big_group_message_in_one_statement(django_assert_num_queries):
    """INSERT_PARAMS, not CHUNK: 285 rows of 14 values in one INSERT; their ids in order."""
    alice = User.objects.create_user("alice@example.test", "a long passphrase 1")
    bob = User.objects.create_user("bob@example.test", "a long passphrase 2")
    client_id = uuid.uuid4()
    rows = [
        sql.NewEnvelope(client_id, alice.id, 1, bob.id, device, device, 285, None, None, "message", "", 4)
        for device in range(285)
    ]
    with django_assert_num_queries(1):
        ids = sql.envelopes_insert(rows, timezone.now())
    assert ids == sorted(ids)
    assert list(Envelope.objects.order_by("id").values_list("id", "recipient_device", "client_id")) == [
        (pk, device, client_id) for pk, device in zip(ids, range(285), strict=True)
    ]
    with django_assert_num_queries(2):
        sql.envelopes_insert([row._replace(client_id=uuid.uuid4()) for row in rows + rows[:1]], timezone.now())
