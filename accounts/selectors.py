"""Reads of accounts for the other apps."""

from collections.abc import Iterable

from django.db.models import Q

from accounts.models import User, normalize_email


def user_by_email(*, email: str, active_only: bool = True) -> User | None:
    """The account with this email (compared normalised), or None. Deactivated (banned)
    accounts are invisible unless `active_only` is False."""
    users = User.objects.filter(email=normalize_email(email))
    if active_only:
        users = users.filter(is_active=True)
    return users.first()


def user_rows(*, emails: Iterable[str] = (), ids: Iterable[int] = ()) -> list[tuple[int, str, bool]]:
    """(id, email, is_active) of the accounts with any of these emails (normalised) or ids,
    in one query: the chat app resolves a whole batch of envelopes at once."""
    wanted_emails = {normalize_email(email) for email in emails}
    wanted_ids = set(ids)
    if not wanted_emails and not wanted_ids:
        return []
    return list(
        User.objects.filter(Q(email__in=wanted_emails) | Q(pk__in=wanted_ids)).values_list("pk", "email", "is_active")
    )
