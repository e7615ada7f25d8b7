"""Reads of accounts for the other apps."""

from collections.abc import Iterable

from django.db import connection

from accounts.models import User, normalize_email

# Bound parameters per statement: well under SQLite's historical limit of 999.
VALUES_PER_QUERY = 500


def user_by_email(*, email: str, active_only: bool = True) -> User | None:
    """The account with this email (compared normalised), or None. Deactivated (banned)
    accounts are invisible unless `active_only` is False."""
    users = User.objects.filter(email=normalize_email(email))
    if active_only:
        users = users.filter(is_active=True)
    return users.first()


def user_rows(*, emails: Iterable[str] = (), ids: Iterable[int] = ()) -> list[tuple[int, str, bool]]:
    """(id, email, is_active) of the accounts with any of these emails (normalised) or ids,
    in one query: the chat app resolves a whole batch of envelopes at once (more than
    VALUES_PER_QUERY / 2 emails or ids take one query per that many).

    Hand-written SQL: it is `filter(Q(email__in=...) | Q(pk__in=...)).values_list(...)`, but
    the ORM prepares every value of both lists through the field on each call, which for the
    chat server's batches of a few hundred envelopes cost about 8 % of its CPU under load.
    Only identifiers from `_meta` and placeholders go into the SQL; every value is bound."""
    wanted_emails = sorted({normalize_email(email) for email in emails})
    wanted_ids = sorted(set(ids))
    if not wanted_emails and not wanted_ids:
        return []
    meta, quote = User._meta, connection.ops.quote_name
    pk, email, active = (quote(meta.get_field(name).column) for name in ("id", "email", "is_active"))
    select = f"SELECT {pk}, {email}, {active} FROM {quote(meta.db_table)} WHERE "  # noqa: S608 - identifiers from _meta only
    found: dict[int, tuple[int, str, bool]] = {}
    with connection.cursor() as cursor:
        for start in range(0, max(len(wanted_emails), len(wanted_ids)), VALUES_PER_QUERY // 2):
            terms, params = [], []
            for column, values in ((email, wanted_emails), (pk, wanted_ids)):
                chunk = values[start : start + VALUES_PER_QUERY // 2]
                if chunk:
                    terms.append(f"{column} IN ({', '.join(['%s'] * len(chunk))})")
                    params += chunk
            cursor.execute(select + " OR ".join(terms), params)
            for row_pk, row_email, row_active in cursor.fetchall():
                found[row_pk] = (row_pk, row_email, bool(row_active))
    return list(found.values())
