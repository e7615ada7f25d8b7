"""Hand-written SQL for the statements the socket path runs for every batch.

For these one-table statements Django's query compiler costs several times the statement
itself (on the benchmark machine ~0.5 ms of CPU to build a `values_list()` query against
~0.05 ms to run it), and they run for every batch, which under light load means for every
frame. Each function names the ORM query it stands for and is covered by the same service
tests on SQLite and MariaDB. Table and column names come from the model's `_meta`; values go
through the fields' own `get_db_prep_value`/`to_python`, so backend conversions (UUIDs,
aware datetimes) are Django's. Everything else in the app uses the ORM.

Only identifiers from `_meta` and placeholder lists are formatted into the SQL; every value
is a bound parameter (hence the `noqa: S608` on each statement).
"""

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.db import connection

from chat.models import Envelope

# Keeps every statement well under SQLite's and MariaDB's limits on bound parameters.
CHUNK = 500


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(field: str) -> str:
    return _quote(Envelope._meta.get_field(field).column)


def _table() -> str:
    return _quote(Envelope._meta.db_table)


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def _chunks(values: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _prep(field: str, value):
    return Envelope._meta.get_field(field).get_db_prep_value(value, connection)


def stored_for_resend(keys: Iterable[tuple[int, uuid.UUID]]) -> dict:
    """{(sender_id, client_id): (id, recipient_id)} of stored envelopes with these keys;
    stands for `Envelope.objects.filter(Q(sender_id=, client_id=) | ...).values_list(...)`.

    One equality pair per key, not `sender_id IN (...) AND client_id IN (...)`: on the
    unique (sender, client_id) index the two IN lists make SQLite probe every combination
    (200 x 200 for a batch of 200 sends: 7 ms against 1 ms for the 200 pairs)."""
    columns = ", ".join(_column(c) for c in ("sender", "client_id", "id", "recipient"))
    client_field = Envelope._meta.get_field("client_id")
    found = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(keys)), CHUNK // 2):
            where, params = _resend_where(chunk)
            cursor.execute(f"SELECT {columns} FROM {_table()} WHERE {where}", params)  # noqa: S608 - see above
            for sender_id, client_id, pk, recipient_id in cursor.fetchall():
                found[(sender_id, client_field.to_python(client_id))] = (pk, recipient_id)
    return found


def _resend_where(keys: list[tuple[int, uuid.UUID]]) -> tuple[str, list]:
    """The WHERE clause of `stored_for_resend` for these keys, and its bound values."""
    sender, client = _column("sender"), _column("client_id")
    client_field = Envelope._meta.get_field("client_id")
    params = []
    for sender_id, client_id in keys:
        params += [sender_id, client_field.get_db_prep_value(client_id, connection)]
    return " OR ".join([f"({sender} = %s AND {client} = %s)"] * len(keys)), params


def _pending_selects(ids: list[int], emails: list[str], filler: str = "") -> tuple[list[str], list]:
    """The SELECTs of `pending_bytes` as UNION ALL branches (tag, user id, `filler`, bytes),
    for the senders `ids` and the recipients with these normalised `emails` (either may be
    empty): primary-key lookups in chat.models.MailboxUsage."""
    from accounts.models import User

    table, user, sent, waiting = _usage_names()
    branches, params = [], []
    if ids:
        branches.append(
            f"SELECT 2, {user}, {filler}{sent} FROM {table} WHERE {user} IN ({_marks(len(ids))})"  # noqa: S608 - identifiers from _meta only
        )
        params += ids
    if emails:
        users, user_pk, user_email = (
            _quote(User._meta.db_table),
            _quote(User._meta.pk.column),
            _quote(User._meta.get_field("email").column),
        )
        branches.append(
            f"SELECT 3, {user}, {filler}{waiting} FROM {table} "  # noqa: S608 - identifiers from _meta only
            f"WHERE {user} IN (SELECT {user_pk} FROM {users} WHERE {user_email} IN ({_marks(len(emails))}))"
        )
        params += emails
    return branches, params


def _usage_names() -> tuple[str, str, str, str]:
    from chat.models import MailboxUsage

    meta = MailboxUsage._meta
    return (
        _quote(meta.db_table),
        *(_quote(meta.get_field(name).column) for name in ("user", "sent_bytes", "waiting_bytes")),
    )


def pending_bytes(*, sender_ids: Iterable[int], recipient_emails: Iterable[str]) -> tuple[dict, dict]:
    """({sender id: body bytes of its undelivered envelopes}, {recipient id: body bytes of the
    undelivered envelopes waiting for it}) for the storage quotas, from the MailboxUsage
    counters; users without a counter row are missing (they have none). Stands for
    `MailboxUsage.objects.filter(...).values_list(...)` twice."""
    from accounts.models import normalize_email

    ids = sorted(set(sender_ids))
    emails = sorted({normalize_email(email) for email in recipient_emails})
    sent: dict[int, int] = {}
    waiting: dict[int, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, max(len(ids), len(emails)), CHUNK):
            branches, params = _pending_selects(ids[start : start + CHUNK], emails[start : start + CHUNK])
            cursor.execute(" UNION ALL ".join(branches), params)
            for tag, user_id, total in cursor.fetchall():
                (sent if tag == 2 else waiting)[user_id] = int(total)
    return sent, waiting


def usage_add(deltas: dict[int, list[int]]) -> None:
    """Add {user id: [sent bytes, waiting bytes]} to the MailboxUsage counters, creating the
    rows that do not exist yet: one upsert for the whole batch (`INSERT ... ON DUPLICATE KEY
    UPDATE` on MariaDB, `ON CONFLICT ... DO UPDATE` on SQLite).

    Rows go in user id order and a batch calls this once, as its last statement: every
    transaction then locks counter rows in the same order and after all its other locks,
    so two processes' batches wait for each other here but cannot deadlock."""
    rows = sorted((user_id, sent, waiting) for user_id, (sent, waiting) in deltas.items() if sent or waiting)
    if not rows:
        return
    table, user, sent, waiting = _usage_names()
    if connection.vendor == "mysql":
        update = f"ON DUPLICATE KEY UPDATE {sent} = {sent} + VALUES({sent}), {waiting} = {waiting} + VALUES({waiting})"
    else:
        update = (
            f"ON CONFLICT ({user}) DO UPDATE SET {sent} = {sent} + excluded.{sent}, "
            f"{waiting} = {waiting} + excluded.{waiting}"
        )
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, CHUNK // 3):
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({user}, {sent}, {waiting}) VALUES {values} {update}",  # noqa: S608 - see above
                [value for row in chunk for value in row],
            )


def users_and_resends(
    *, emails: Iterable[str], ids: Iterable[int], keys: Iterable[tuple[int, uuid.UUID]], quotas: bool = False
) -> tuple[list[tuple[int, str, bool]], dict, tuple[dict, dict]]:
    """`accounts.selectors.user_rows(emails=, ids=)`, `stored_for_resend(keys)` and, with
    `quotas`, `pending_bytes(sender_ids=ids, recipient_emails=emails)` in ONE statement
    (`UNION ALL` of the SELECTs, each row tagged with the branch it came from).

    Every send batch needs these answers and none depends on another; as separate statements
    they were network round trips on MariaDB, and under light load (a batch of one or two
    sends) each round trip costs about as much server CPU as the rest of the batch's Python
    (the loopback send and receive are system time of the database thread). The WHERE
    clauses are those of the separate functions (the `IN` lists on the unique email and the
    primary key, one equality pair per key on the unique (sender, client_id) index, the
    quota counters by primary key), so each branch uses the same index as alone.
    Batches bigger than one statement's share of bound parameters (MAX_BATCH keeps the socket
    path below it) run the separate functions."""
    from accounts.models import normalize_email
    from accounts.selectors import VALUES_PER_QUERY, user_rows, user_rows_select

    wanted_emails = sorted({normalize_email(email) for email in emails})
    wanted_ids = sorted(set(ids))
    wanted_keys = sorted(set(keys))
    if (
        len(wanted_emails) + len(wanted_ids) > VALUES_PER_QUERY // 2
        or len(wanted_keys) > CHUNK // 2
        or not (wanted_emails or wanted_ids)
        or not wanted_keys
    ):
        pending = pending_bytes(sender_ids=wanted_ids, recipient_emails=wanted_emails) if quotas else ({}, {})
        return user_rows(emails=wanted_emails, ids=wanted_ids), stored_for_resend(wanted_keys), pending

    user_columns, user_source, params = user_rows_select(wanted_emails, wanted_ids)
    resend_where, resend_params = _resend_where(wanted_keys)
    params += resend_params
    sender, client, pk, recipient = (_column(c) for c in ("sender", "client_id", "id", "recipient"))
    # The counters go in a column of their own, so the other columns keep their types.
    branches = [
        f"SELECT 0, {user_columns}, NULL, NULL, NULL, NULL {user_source}",
        f"SELECT 1, {sender}, NULL, NULL, {client}, {pk}, {recipient}, NULL "  # noqa: S608 - identifiers from _meta only
        f"FROM {_table()} WHERE {resend_where}",
    ]
    if quotas:
        pending_branches, pending_params = _pending_selects(wanted_ids, wanted_emails, "NULL, NULL, NULL, NULL, NULL, ")
        branches += pending_branches
        params += pending_params
    client_field = Envelope._meta.get_field("client_id")
    users: dict[int, tuple[int, str, bool]] = {}
    found = {}
    sent: dict[int, int] = {}
    waiting: dict[int, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches), params)
        for tag, first, row_email, row_active, client_id, envelope_id, recipient_id, total in cursor.fetchall():
            if tag == 0:
                users[first] = (first, row_email, bool(row_active))
            elif tag == 1:
                found[(first, client_field.to_python(client_id))] = (envelope_id, recipient_id)
            else:
                (sent if tag == 2 else waiting)[first] = int(total)
    return list(users.values()), found, (sent, waiting)


def envelopes_insert(rows: list[tuple[uuid.UUID, int, int, str, str, int]], created_at: datetime) -> list[int]:
    """Insert (client_id, sender_id, recipient_id, kind, body, size) rows; returns their ids
    in order. Stands for `Envelope.objects.bulk_create(...)`, which on SQLite (3.35+) and
    MariaDB (10.5+) also uses INSERT ... RETURNING."""
    columns = ["client_id", "sender", "recipient", "kind", "body", "size", "created_at"]
    created = _prep("created_at", created_at)
    ids: list[int] = []
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, CHUNK // len(columns)):
            params = []
            for client_id, sender_id, recipient_id, kind, body, size in chunk:
                params += [_prep("client_id", client_id), sender_id, recipient_id, kind, body, size, created]
            values = ", ".join([f"({_marks(len(columns))})"] * len(chunk))
            names = ", ".join(_column(c) for c in columns)
            cursor.execute(
                f"INSERT INTO {_table()} ({names}) VALUES {values} RETURNING {_column('id')}",  # noqa: S608 - see above
                params,
            )
            ids += [row[0] for row in cursor.fetchall()]
    return ids


def receipt_rows(ids: Iterable[int]) -> dict[int, tuple[int, int, object, object, int]]:
    """{id: (sender_id, recipient_id, delivered_at, read_at, size)}, rows locked where the database
    can; stands for `Envelope.objects.select_for_update().filter(id__in=...)`."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    found = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(ids))):
            columns = ", ".join(_column(c) for c in ("id", "sender", "recipient", "delivered_at", "read_at", "size"))
            where = f"{_column('id')} IN ({_marks(len(chunk))})"
            cursor.execute(
                f"SELECT {columns} FROM {_table()} WHERE {where}{lock}",  # noqa: S608 - see above
                chunk,
            )
            for pk, *row in cursor.fetchall():
                found[pk] = tuple(row)
    return found


def envelopes_update(ids: list[int], *, fields: dict) -> None:
    """`Envelope.objects.filter(id__in=ids).update(**fields)` for timestamp and body fields."""
    assignments = ", ".join(f"{_column(name)} = %s" for name in fields)
    values = [_prep(name, value) for name, value in fields.items()]
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(ids)):
            where = f"{_column('id')} IN ({_marks(len(chunk))})"
            cursor.execute(
                f"UPDATE {_table()} SET {assignments} WHERE {where}",  # noqa: S608 - see above
                [*values, *chunk],
            )
