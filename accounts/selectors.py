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


def user_rows_select(emails: list[str], ids: list[int]) -> tuple[str, str, list]:
    """The SELECT of `user_rows` for normalised `emails` and `ids` (either may be empty, not
    both): (columns "id, email, is_active", "FROM ... WHERE ...", bound values). Shared with
    chat.sql.users_and_resends, which runs it inside a larger statement. Only identifiers
    from `_meta` and placeholders go into the SQL; every value is bound."""
    meta, quote = User._meta, connection.ops.quote_name
    pk, email, active = (quote(meta.get_field(name).column) for name in ("id", "email", "is_active"))
    terms, params = [], []
    for column, values in ((email, emails), (pk, ids)):
        if values:
            terms.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
            params += values
    return f"{pk}, {email}, {active}", f"FROM {quote(meta.db_table)} WHERE {' OR '.join(terms)}", params


def user_rows(*, emails: Iterable[str] = (), ids: Iterable[int] = ()) -> list[tuple[int, str, bool]]:
    """(id, email, is_active) of the accounts with any of these emails (normalised) or ids,
    in one query: the chat app resolves a whole batch of envelopes at once (more than
    VALUES_PER_QUERY / 2 emails or ids take one query per that many).

    Hand-written SQL: it is `filter(Q(email__in=...) | Q(pk__in=...)).values_list(...)`, but
    the ORM prepares every value of both lists through the field on each call, which for the
    chat server's batches of a few hundred envelopes cost about 8 % of its CPU under load."""
    wanted_emails = sorted({normalize_email(email) for email in emails})
    wanted_ids = sorted(set(ids))
    found: dict[int, tuple[int, str, bool]] = {}
    step = VALUES_PER_QUERY // 2
    with connection.cursor() as cursor:
        for start in range(0, max(len(wanted_emails), len(wanted_ids)), step):
            columns, source, params = user_rows_select(
                wanted_emails[start : start + step], wanted_ids[start : start + step]
            )
            cursor.execute(f"SELECT {columns} {source}", params)
            for row_pk, row_email, row_active in cursor.fetchall():
                found[row_pk] = (row_pk, row_email, bool(row_active))
    return list(found.values())
