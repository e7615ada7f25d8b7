import pytest

from accounts.models import User
from accounts.selectors import user_by_email

pytestmark = pytest.mark.django_db


def test_user_by_email_normalises_and_hides_deactivated_accounts():
    alice = User.objects.create_user("alice@example.test", "a long passphrase 1")
    assert user_by_email(email=" ALICE@example.test") == alice
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert user_by_email(email=alice.email) is None
    assert user_by_email(email=alice.email, active_only=False) == alice
