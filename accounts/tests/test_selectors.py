import pytest

from accounts.models import User
from accounts.selectors import user_by_email, user_rows

pytestmark = pytest.mark.django_db


def test_user_by_email_normalises_and_hides_deactivated_accounts():
    alice = User.objects.create_user("alice@example.test", "a long passphrase 1")
    assert user_by_email(email=" ALICE@example.test") == alice
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert user_by_email(email=alice.email) is None
    assert user_by_email(email=alice.email, active_only=False) == alice


def test_user_rows_resolves_emails_and_ids_in_one_query(django_assert_num_queries):
    alice = User.objects.create_user("alice@example.test", "a long passphrase 1")
    bob = User.objects.create_user("bob@example.test", "a long passphrase 2")
    User.objects.create_user("carol@example.test", "a long passphrase 3")
    with django_assert_num_queries(1):
        rows = user_rows(emails=["ALICE@example.test", "nobody@example.test"], ids=[bob.id])
    assert sorted(rows) == [(alice.id, "alice@example.test", True), (bob.id, "bob@example.test", True)]
    assert user_rows() == []
