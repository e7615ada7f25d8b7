"""Reads of accounts for the other apps."""

from accounts.models import User, normalize_email


def user_by_email(*, email: str, active_only: bool = True) -> User | None:
    """The account with this email (compared normalised), or None. Deactivated (banned)
    accounts are invisible unless `active_only` is False."""
    users = User.objects.filter(email=normalize_email(email))
    if active_only:
        users = users.filter(is_active=True)
    return users.first()
