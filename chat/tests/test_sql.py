"""chat.sql: the hand-written statements return typed rows (the services' tests cover the rest)."""

import pytest

from accounts.models import User
from chat import sql

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
