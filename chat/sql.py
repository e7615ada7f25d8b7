"""Hand-written SQL for the statements the socket path runs for every batch, returning typed rows.

For these statements Django's query compiler costs several times the statement itself (on
the benchmark machine ~0.5 ms of CPU to build a `values_list()` query against ~0.05 ms to run
it), and they run for every batch, which under light load means for every frame. Each
function names the ORM query it stands for and is covered by the same service tests on
SQLite and MariaDB. Table and column names come from the models' `_meta` (the users table
through the envelope's foreign key, whatever AUTH_USER_MODEL is); values go through the
fields' own `get_db_prep_value`/`to_python`, so backend conversions (UUIDs, aware datetimes)
are Django's. Everything else in the app uses the ORM.

Only identifiers from `_meta` and placeholder lists are formatted into the SQL; every value
is a bound parameter (hence the `noqa: S608` on each statement).
"""

import functools
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import NamedTuple

from django.db import connection

from accounts.models import Device, normalize_email
from chat.models import Envelope, GroupBody, MailboxUsage
from groups.models import Group, Membership

# Keeps every statement well under SQLite's and MariaDB's limits on bound parameters.
CHUNK = 500
# An INSERT of envelopes may bind more: the copies of a group message to up to 285 devices (a
# group of 256 members with one device each) in one statement rather than one per 35 rows. Far below
# SQLite's default limit (32,766 since 3.32) and MariaDB's (65,535); a SQLite built with a lower
# one is asked (`envelopes_insert`).
INSERT_PARAMS = 4000


class UserRow(NamedTuple):
    id: int
    email: str
    is_active: bool


class StoredEnvelope(NamedTuple):
    """The first copy of a message found under a (sender, client_id) pair: the answer to its
    resend (its id is the message id)."""

    id: int
    recipient_id: int


class SendPrefetch(NamedTuple):
    """What a batch of sends reads before it decides anything (`users_and_resends`)."""

    users: list[UserRow]
    stored: dict[tuple[int, uuid.UUID], StoredEnvelope]  # by (sender id, client_id)
    sent_bytes: dict[int, int]  # undelivered body bytes per sender (the MailboxUsage counters)
    waiting_bytes: dict[int, int]  # undelivered body bytes per recipient
    devices: dict[int, list[int]]  # active device ids per user (senders and recipients), ascending


class NewEnvelope(NamedTuple):
    """One copy to insert. `message_id` None: the first copy of its message."""

    client_id: uuid.UUID
    sender_id: int
    sender_device: int
    recipient_id: int
    recipient_device: int
    copy_index: int
    copies: int
    message_id: int | None
    peer_id: int | None
    kind: str
    body: str
    size: int
    group_id: int | None = None


class ReceiptRow(NamedTuple):
    sender_id: int
    recipient_id: int
    recipient_device: int
    message_id: int  # the message the copy belongs to (its own id for a first copy)
    copies: int  # of the message
    peer_id: int | None  # set for an `own` copy
    delivered_at: object  # as the driver returns it; only compared with None
    read_at: object
    size: int
    group_id: int | None  # set on the copies of a group message


@functools.cache
def _quote(name: str) -> str:
    """The quoted identifier, computed once per name: the app has one database (settings.DATABASES),
    and every `connection.ops` goes through Django's per-thread connection proxy (about 3,000
    quotes per second of a 100-member group's traffic)."""
    return connection.ops.quote_name(name)


@functools.cache
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


# --- the users table (read for this app's own statements, see the module docstring) --------------


def _users_select(emails: list[str], ids: list[int], tag: str = "", filler: str = "") -> tuple[str, list]:
    """SELECT [tag] id, email, is_active [filler] of the users with any of these normalised
    `emails` or `ids` (either may be empty, not both), and its bound values."""
    meta = Envelope._meta.get_field("sender").related_model._meta
    pk, email, active = (_quote(meta.get_field(name).column) for name in ("id", "email", "is_active"))
    terms, params = [], []
    for column, values in ((email, emails), (pk, ids)):
        if values:
            terms.append(f"{column} IN ({_marks(len(values))})")
            params += values
    source = f"FROM {_quote(meta.db_table)} WHERE {' OR '.join(terms)}"
    return f"SELECT {tag}{pk}, {email}, {active}{filler} {source}", params


def users_rows(*, emails: Iterable[str] = (), ids: Iterable[int] = ()) -> list[UserRow]:
    """The accounts with any of these emails (normalised) or ids; stands for
    `User.objects.filter(Q(email__in=...) | Q(pk__in=...)).values_list(...)`, one statement
    per CHUNK / 2 emails and ids. The ORM prepares every value of both lists through the
    field on each call: for batches of a few hundred envelopes about 8 % of the server's CPU."""
    wanted_emails = sorted({normalize_email(email) for email in emails})
    wanted_ids = sorted(set(ids))
    found: dict[int, UserRow] = {}
    step = CHUNK // 2
    with connection.cursor() as cursor:
        for start in range(0, max(len(wanted_emails), len(wanted_ids)), step):
            cursor.execute(*_users_select(wanted_emails[start : start + step], wanted_ids[start : start + step]))
            for pk, email, active in cursor.fetchall():
                found[pk] = UserRow(pk, email, bool(active))
    return list(found.values())


# --- sends ------------------------------------------------------------------------------------


def stored_for_resend(keys: Iterable[tuple[int, uuid.UUID]]) -> dict[tuple[int, uuid.UUID], StoredEnvelope]:
    """{(sender_id, client_id): stored envelope} for these keys; stands for
    `Envelope.objects.filter(Q(sender_id=, client_id=) | ...).values_list(...)`.

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
                found[(sender_id, client_field.to_python(client_id))] = StoredEnvelope(pk, recipient_id)
    return found


def _resend_where(keys: list[tuple[int, uuid.UUID]]) -> tuple[str, list]:
    """The WHERE clause of `stored_for_resend` for these keys, and its bound values."""
    sender, client = _column("sender"), _column("client_id")
    client_field = Envelope._meta.get_field("client_id")
    params = []
    for sender_id, client_id in keys:
        params += [sender_id, client_field.get_db_prep_value(client_id, connection)]
    pairs = " OR ".join([f"({sender} = %s AND {client} = %s)"] * len(keys))
    return f"({pairs}) AND {_column('copy_index')} = 0", params


def _usage_names() -> tuple[str, str, str, str]:
    meta = MailboxUsage._meta
    return (
        _quote(meta.db_table),
        *(_quote(meta.get_field(name).column) for name in ("user", "sent_bytes", "waiting_bytes")),
    )


def _pending_selects(ids: list[int], emails: list[str], filler: str = "") -> tuple[list[str], list]:
    """The SELECTs of `pending_bytes` as UNION ALL branches (tag, user id, `filler`, bytes),
    for the senders `ids` and the recipients with these normalised `emails` (either may be
    empty): primary-key lookups in chat.models.MailboxUsage."""
    table, user, sent, waiting = _usage_names()
    branches, params = [], []
    if ids:
        branches.append(
            f"SELECT 2, {user}, {filler}{sent} FROM {table} WHERE {user} IN ({_marks(len(ids))})"  # noqa: S608 - identifiers from _meta only
        )
        params += ids
    if emails:
        meta = Envelope._meta.get_field("recipient").related_model._meta
        users, user_pk, user_email = (
            _quote(meta.db_table),
            _quote(meta.pk.column),
            _quote(meta.get_field("email").column),
        )
        branches.append(
            f"SELECT 3, {user}, {filler}{waiting} FROM {table} "  # noqa: S608 - identifiers from _meta only
            f"WHERE {user} IN (SELECT {user_pk} FROM {users} WHERE {user_email} IN ({_marks(len(emails))}))"
        )
        params += emails
    return branches, params


def _devices_select(
    ids: list[int], emails: list[str], tag: str = "", filler: str = "", tail: str = ""
) -> tuple[str, list]:
    """SELECT [tag] user id, [filler] device id [tail] of the active devices of the users
    `ids` and of the users with these normalised `emails` (either may be empty, not both)."""
    meta = Device._meta
    table, user, number, removed = (
        _quote(meta.db_table),
        *(_quote(meta.get_field(name).column) for name in ("user", "device_id", "removed_at")),
    )
    users_meta = Envelope._meta.get_field("recipient").related_model._meta
    terms, params = [], []
    if ids:
        terms.append(f"{user} IN ({_marks(len(ids))})")
        params += ids
    if emails:
        users, user_pk, user_email = (
            _quote(users_meta.db_table),
            _quote(users_meta.pk.column),
            _quote(users_meta.get_field("email").column),
        )
        subquery = f"SELECT {user_pk} FROM {users} WHERE {user_email} IN ({_marks(len(emails))})"  # noqa: S608 - identifiers from _meta only
        terms.append(f"{user} IN ({subquery})")
        params += emails
    where = f"{removed} IS NULL AND ({' OR '.join(terms)})"
    return f"SELECT {tag}{user}, {filler}{number}{tail} FROM {table} WHERE {where}", params  # noqa: S608 - identifiers from _meta only


def active_devices(*, user_ids: Iterable[int] = (), emails: Iterable[str] = ()) -> dict[int, list[int]]:
    """{user id: active device ids, ascending} of these users and of the users with these
    emails; stands for `Device.objects.filter(removed_at=None, ...).values_list(...)`."""
    ids = sorted(set(user_ids))
    wanted = sorted({normalize_email(email) for email in emails})
    found: dict[int, list[int]] = {}
    with connection.cursor() as cursor:
        for start in range(0, max(len(ids), len(wanted)), CHUNK // 2):
            chunk_ids, chunk_emails = ids[start : start + CHUNK // 2], wanted[start : start + CHUNK // 2]
            if not (chunk_ids or chunk_emails):
                continue
            cursor.execute(*_devices_select(chunk_ids, chunk_emails))
            for user_id, device_id in cursor.fetchall():
                found.setdefault(user_id, []).append(device_id)
    return {user_id: sorted(devices) for user_id, devices in found.items()}


def pending_bytes(*, sender_ids: Iterable[int], recipient_emails: Iterable[str]) -> tuple[dict, dict]:
    """({sender id: body bytes of its undelivered envelopes}, {recipient id: body bytes of the
    undelivered envelopes waiting for it}) for the storage quotas, from the MailboxUsage
    counters; users without a counter row are missing (they have none). Stands for
    `MailboxUsage.objects.filter(...).values_list(...)` twice."""
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


def users_and_resends(
    *, emails: Iterable[str], ids: Iterable[int], keys: Iterable[tuple[int, uuid.UUID]], quotas: bool = False
) -> SendPrefetch:
    """`users_rows(emails=, ids=)`, `stored_for_resend(keys)` and, with `quotas`,
    `pending_bytes(sender_ids=ids, recipient_emails=emails)` in ONE statement (`UNION ALL` of
    the SELECTs, each row tagged with the branch it came from).

    Every send batch needs these answers and none depends on another; as separate statements
    they were network round trips on MariaDB, and under light load (a batch of one or two
    sends) each round trip costs about as much server CPU as the rest of the batch's Python
    (the loopback send and receive are system time of the database thread). The WHERE
    clauses are those of the separate functions (the `IN` lists on the unique email and the
    primary key, one equality pair per key on the unique (sender, client_id) index, the
    quota counters by primary key), so each branch uses the same index as alone; and the active
    devices of all these users (`active_devices`), on the device table's (user, device_id)
    index.
    Batches bigger than one statement's share of bound parameters (MAX_BATCH keeps the socket
    path below it) run the separate functions."""
    wanted_emails = sorted({normalize_email(email) for email in emails})
    wanted_ids = sorted(set(ids))
    wanted_keys = sorted(set(keys))
    if (
        len(wanted_emails) + len(wanted_ids) > CHUNK // 2
        or len(wanted_keys) > CHUNK // 2
        or not (wanted_emails or wanted_ids)
        or not wanted_keys
    ):
        sent, waiting = pending_bytes(sender_ids=wanted_ids, recipient_emails=wanted_emails) if quotas else ({}, {})
        users = users_rows(emails=wanted_emails, ids=wanted_ids)
        devices = active_devices(user_ids=wanted_ids, emails=wanted_emails)
        return SendPrefetch(users, stored_for_resend(wanted_keys), sent, waiting, devices)

    users_select, params = _users_select(wanted_emails, wanted_ids, "0, ", ", NULL, NULL, NULL, NULL")
    resend_where, resend_params = _resend_where(wanted_keys)
    params += resend_params
    sender, client, pk, recipient = (_column(c) for c in ("sender", "client_id", "id", "recipient"))
    # The counters go in a column of their own, so the other columns keep their types.
    devices_select, devices_params = _devices_select(
        wanted_ids, wanted_emails, "4, ", "NULL, NULL, NULL, ", ", NULL, NULL"
    )
    branches = [
        users_select,
        f"SELECT 1, {sender}, NULL, NULL, {client}, {pk}, {recipient}, NULL "  # noqa: S608 - identifiers from _meta only
        f"FROM {_table()} WHERE {resend_where}",
        devices_select,
    ]
    params += devices_params
    if quotas:
        pending_branches, pending_params = _pending_selects(wanted_ids, wanted_emails, "NULL, NULL, NULL, NULL, NULL, ")
        branches += pending_branches
        params += pending_params
    client_field = Envelope._meta.get_field("client_id")
    users: dict[int, UserRow] = {}
    stored = {}
    sent: dict[int, int] = {}
    waiting: dict[int, int] = {}
    devices: dict[int, list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches), params)
        for tag, first, row_email, row_active, client_id, envelope_id, recipient_id, total in cursor.fetchall():
            if tag == 0:
                users[first] = UserRow(first, row_email, bool(row_active))
            elif tag == 1:
                stored[(first, client_field.to_python(client_id))] = StoredEnvelope(envelope_id, recipient_id)
            elif tag == 4:
                devices.setdefault(first, []).append(envelope_id)
            else:
                (sent if tag == 2 else waiting)[first] = int(total)
    devices = {user_id: sorted(numbers) for user_id, numbers in devices.items()}
    return SendPrefetch(list(users.values()), stored, sent, waiting, devices)


def envelopes_insert(rows: list[NewEnvelope], created_at: datetime) -> list[int]:
    """Insert these envelopes; returns their ids in order, in one statement per INSERT_PARAMS
    bound values (285 rows). Stands for `Envelope.objects.bulk_create(...)`, which on SQLite
    (3.35+) and MariaDB (10.5+) also uses INSERT ... RETURNING."""
    columns = [
        "client_id",
        "sender",
        "sender_device",
        "recipient",
        "recipient_device",
        "copy_index",
        "copies",
        "message_id",
        "peer",
        "kind",
        "body",
        "size",
        "group",
        "created_at",
    ]
    created = _prep("created_at", created_at)
    # The copies of one message share their client_id: prepared once.
    client_ids = {client_id: _prep("client_id", client_id) for client_id in {row.client_id for row in rows}}
    limit = min(INSERT_PARAMS, connection.features.max_query_params or INSERT_PARAMS)
    ids: list[int] = []
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, limit // len(columns)):
            params = []
            for client_id, *fields in chunk:
                params += [client_ids[client_id], *fields, created]
            values = ", ".join([f"({_marks(len(columns))})"] * len(chunk))
            names = ", ".join(_column(c) for c in columns)
            cursor.execute(
                f"INSERT INTO {_table()} ({names}) VALUES {values} RETURNING {_column('id')}",  # noqa: S608 - see above
                params,
            )
            ids += [row[0] for row in cursor.fetchall()]
    return ids


# --- receipts ---------------------------------------------------------------------------------


def receipt_rows(ids: Iterable[int]) -> dict[int, ReceiptRow]:
    """{id: row} of these envelopes, locked where the database can; stands for
    `Envelope.objects.select_for_update().filter(id__in=...)`."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    found = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(ids))):
            columns = ", ".join(
                _column(c)
                for c in (
                    "id",
                    "sender",
                    "recipient",
                    "recipient_device",
                    "message_id",
                    "copies",
                    "peer",
                    "delivered_at",
                    "read_at",
                )
            )
            columns += f", {_column('size')}, {_column('group')}"
            where = f"{_column('id')} IN ({_marks(len(chunk))})"
            cursor.execute(
                f"SELECT {columns} FROM {_table()} WHERE {where}{lock}",  # noqa: S608 - see above
                chunk,
            )
            for pk, sender_id, recipient_id, device, message_id, copies, peer_id, *rest in cursor.fetchall():
                found[pk] = ReceiptRow(sender_id, recipient_id, device, message_id or pk, copies, peer_id, *rest)
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


def messages_marked_before(message_ids: list[int], *, column: str, now_ids: Iterable[int]) -> set[int]:
    """Which of these messages already have a recipient copy (not an `own` one) with `column`
    ("delivered_at" or "read_at") set, other than the copies `now_ids`: their receipt was sent
    when that copy was marked. Stands for `Envelope.objects.filter(Q(id__in=) | Q(message_id__in=),
    peer=None, **{column + "__isnull": False}).exclude(id__in=now_ids)`, by the primary key and
    the message_id index."""
    found: set[int] = set()
    skip = set(now_ids)
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(message_ids)), CHUNK // 2):
            marks = _marks(len(chunk))
            cursor.execute(
                f"SELECT {_column('id')}, {_column('message_id')} FROM {_table()} "  # noqa: S608 - see above
                f"WHERE ({_column('id')} IN ({marks}) OR {_column('message_id')} IN ({marks})) "
                f"AND {_column('peer')} IS NULL AND {_column(column)} IS NOT NULL",
                [*chunk, *chunk],
            )
            for pk, message_id in cursor.fetchall():
                if pk not in skip:
                    found.add(message_id or pk)
    return found


# --- the queue (a socket's backlog) -------------------------------------------------------------


class PendingRow(NamedTuple):
    """An undelivered copy as a socket sends it (chat.selectors turns it into its event)."""

    id: int
    message_id: int | None
    client_id: uuid.UUID
    sender_email: str
    sender_device: int
    recipient_email: str
    peer_email: str | None
    kind: str
    body: str
    created_at: datetime
    group_uid: uuid.UUID | None
    group_body: str | None  # a group copy's GroupBody (the message's body and epoch)
    group_epoch: int | None


def _queue_where(user_id: int, device_id: int, after: int) -> tuple[str, list]:
    """The undelivered copies to one device of a user above `after` (the queue index)."""
    where = (
        f"e.{_column('recipient')} = %s AND e.{_column('recipient_device')} = %s "
        f"AND e.{_column('delivered_at')} IS NULL AND e.{_column('id')} > %s"
    )
    return where, [user_id, device_id, after]


def queue_sizes(*, user_id: int, device_id: int, after: int, limit: int) -> list[tuple[int, int]]:
    """(id, size) of the first `limit` undelivered copies to this device above `after`, in id
    order; stands for `Envelope.objects.filter(recipient_id=, recipient_device=,
    delivered_at__isnull=True, id__gt=).order_by("id").values_list("id", "size")[:limit]`."""
    where, params = _queue_where(user_id, device_id, after)
    pk = _column("id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.{pk}, e.{_column('size')} FROM {_table()} e WHERE {where} ORDER BY e.{pk} LIMIT %s",  # noqa: S608 - see above
            [*params, limit],
        )
        return cursor.fetchall()


def queue_rows(*, user_id: int, device_id: int, after: int, limit: int, ids: list[int] | None) -> list[PendingRow]:
    """The first `limit` undelivered copies to this device above `after` (and among `ids`, if
    given), in id order, with the emails of their sender, recipient and peer, their group's
    uid and a group copy's body and epoch: ONE statement (the copies on the queue index joined
    by primary key). Stands for the `values_list("sender__email", ..., "group__uid")` of
    chat.selectors and a GroupBody query; a socket that fell behind reads its backlog with it
    page after page, so its compiler cost was paid per page."""
    users_meta = Envelope._meta.get_field("sender").related_model._meta
    users, user_pk, user_email = (
        _quote(users_meta.db_table),
        _quote(users_meta.pk.column),
        _quote(users_meta.get_field("email").column),
    )
    group_meta = Group._meta
    groups, group_pk, group_uid = (
        _quote(group_meta.db_table),
        *(_quote(group_meta.get_field(n).column) for n in ("id", "uid")),
    )
    bodies, body_message, _, _, _, _, _, body_text = _group_names()
    body_epoch = _quote(GroupBody._meta.get_field("epoch").column)
    where, params = _queue_where(user_id, device_id, after)
    if ids is not None:
        where += f" AND e.{_column('id')} IN ({_marks(len(ids))})"
        params += ids
    pk, message_id, group = _column("id"), _column("message_id"), _column("group")
    columns = ", ".join(
        f"e.{_column(name)}"
        for name in ("id", "message_id", "client_id", "sender_device", "kind", "body", "created_at")
    )
    client_field = Envelope._meta.get_field("client_id")
    uid_field = group_meta.get_field("uid")
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}, s.{user_email}, r.{user_email}, p.{user_email}, g.{group_uid}, b.{body_text}, "  # noqa: S608 - see above
            f"b.{body_epoch} FROM {_table()} e "
            f"JOIN {users} s ON s.{user_pk} = e.{_column('sender')} "
            f"JOIN {users} r ON r.{user_pk} = e.{_column('recipient')} "
            f"LEFT JOIN {users} p ON p.{user_pk} = e.{_column('peer')} "
            f"LEFT JOIN {groups} g ON g.{group_pk} = e.{group} "
            f"LEFT JOIN {bodies} b ON e.{group} IS NOT NULL AND b.{body_message} = COALESCE(e.{message_id}, e.{pk}) "
            f"WHERE {where} ORDER BY e.{pk} LIMIT %s",
            [*params, limit],
        )
        for pk_, message, client, device, kind, body, created, sender, recipient, peer, uid, text, epoch in cursor:
            found.append(
                PendingRow(
                    pk_,
                    message,
                    client_field.to_python(client),
                    sender,
                    device,
                    recipient,
                    peer,
                    kind,
                    body,
                    connection.ops.convert_datetimefield_value(created, None, connection),
                    uid_field.to_python(uid) if uid is not None else None,
                    text,
                    epoch,
                )
            )
    return found


def queue_among(*, user_id: int, device_id: int, ids: list[int]) -> set[int]:
    """Which of `ids` are undelivered copies to this device; stands for `Envelope.objects.filter(
    recipient_id=, recipient_device=, delivered_at__isnull=True, id__in=).values_list("id")`."""
    found: set[int] = set()
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(ids))):
            where, params = _queue_where(user_id, device_id, 0)
            where += f" AND e.{_column('id')} IN ({_marks(len(chunk))})"
            cursor.execute(
                f"SELECT e.{_column('id')} FROM {_table()} e WHERE {where}",  # noqa: S608 - see above
                [*params, *chunk],
            )
            found.update(row[0] for row in cursor.fetchall())
    return found


# --- group messages ---------------------------------------------------------------------------


class GroupCounts(NamedTuple):
    message_id: int
    sender_id: int
    delivered: int
    read: int
    recipients: int


def _group_names() -> tuple[str, ...]:
    meta = GroupBody._meta
    return (
        _quote(meta.db_table),
        *(
            _quote(meta.get_field(name).column)
            for name in ("message_id", "sender", "delivered", "read", "recipients", "remaining", "body")
        ),
    )


class LockedGroup(NamedTuple):
    pk: int
    epoch: int


class GroupMembers(NamedTuple):
    """A group's active members and their active devices, as a group send needs them."""

    ids: dict[str, int]  # {email: user id}
    devices: dict[int, list[int]]  # {user id: active device ids, ascending}; members without one missing


class EarlierGroupSend(NamedTuple):
    """What a (sender, client_id) pair was used for before: a group message (`group_id` set) or
    another envelope (`group_id` None)."""

    message_id: int
    group_id: int | None


def groups_locked(uids: Iterable[uuid.UUID]) -> dict[uuid.UUID, LockedGroup]:
    """{uid: (pk, epoch)} of these groups, their rows locked in id order where the database can
    (the order groups.services locks several groups in: two transactions that both lock some of
    them cannot deadlock); stands for `Group.objects.select_for_update().filter(uid__in=...)
    .order_by("pk")`. Unknown uids are missing."""
    meta = Group._meta
    table, pk, uid, epoch = (_quote(meta.db_table), *(_quote(meta.get_field(n).column) for n in ("id", "uid", "epoch")))
    uid_field = meta.get_field("uid")
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    wanted = sorted(uid_field.get_db_prep_value(value, connection) for value in set(uids))
    found = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(wanted):
            cursor.execute(
                f"SELECT {pk}, {uid}, {epoch} FROM {table} WHERE {uid} IN ({_marks(len(chunk))}) ORDER BY {pk}{lock}",  # noqa: S608 - see above
                chunk,
            )
            for row_pk, row_uid, row_epoch in cursor.fetchall():
                found[uid_field.to_python(row_uid)] = LockedGroup(row_pk, row_epoch)
    return found


def group_members(group_pks: Iterable[int]) -> dict[int, GroupMembers]:
    """{group pk: its active members and their active devices} in ONE statement (memberships
    joined to the users and, left, to their devices); stands for `Membership.objects.filter(
    group=..., user__is_active=True).values_list("user__email", "user_id")` per group and
    `active_devices(user_ids=...)` of their members. Groups without an active member are missing."""
    membership, users_meta, device = (
        Membership._meta,
        Envelope._meta.get_field("sender").related_model._meta,
        Device._meta,
    )
    m_table, m_group, m_user = (
        _quote(membership.db_table),
        *(_quote(membership.get_field(n).column) for n in ("group", "user")),
    )
    u_table, u_pk, u_email, u_active = (
        _quote(users_meta.db_table),
        *(_quote(users_meta.get_field(n).column) for n in ("id", "email", "is_active")),
    )
    d_table, d_user, d_number, d_removed = (
        _quote(device.db_table),
        *(_quote(device.get_field(n).column) for n in ("user", "device_id", "removed_at")),
    )
    found: dict[int, GroupMembers] = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(group_pks))):
            cursor.execute(
                f"SELECT m.{m_group}, u.{u_pk}, u.{u_email}, d.{d_number} FROM {m_table} m "  # noqa: S608 - see above
                f"JOIN {u_table} u ON u.{u_pk} = m.{m_user} "
                f"LEFT JOIN {d_table} d ON d.{d_user} = u.{u_pk} AND d.{d_removed} IS NULL "
                f"WHERE m.{m_group} IN ({_marks(len(chunk))}) AND u.{u_active} = %s",
                [*chunk, True],
            )
            for group_pk, user_id, email, device_id in cursor.fetchall():
                members = found.setdefault(group_pk, GroupMembers({}, {}))
                members.ids[email] = user_id
                if device_id is not None:
                    members.devices.setdefault(user_id, []).append(device_id)
    for members in found.values():
        for devices in members.devices.values():
            devices.sort()
    return found


def group_sends_earlier(keys: Iterable[tuple[int, uuid.UUID]]) -> dict[tuple[int, uuid.UUID], EarlierGroupSend]:
    """{(sender id, client_id): what the pair was used for} of these pairs, in ONE statement:
    the group messages (GroupBody, on its unique (sender, client_id) index) and, UNION ALL, the
    first copies of other envelopes (`stored_for_resend`'s WHERE). A group message's first copy
    is an envelope too: its GroupBody row wins. Stands for `GroupBody.objects.filter(sender_id=,
    client_id=).values_list(...).first()` and `Envelope.objects.filter(sender_id=, client_id=,
    copy_index=0).exists()` per send."""
    meta = GroupBody._meta
    table, message, sender, client, group = (
        _quote(meta.db_table),
        *(_quote(meta.get_field(n).column) for n in ("message_id", "sender", "client_id", "group")),
    )
    client_field = Envelope._meta.get_field("client_id")
    found: dict[tuple[int, uuid.UUID], EarlierGroupSend] = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(keys)), CHUNK // 4):
            envelope_where, params = _resend_where(chunk)
            pairs = " OR ".join([f"({sender} = %s AND {client} = %s)"] * len(chunk))
            cursor.execute(
                f"SELECT 0, {sender}, {client}, {message}, {group} FROM {table} WHERE {pairs} "  # noqa: S608 - see above
                f"UNION ALL SELECT 1, {_column('sender')}, {_column('client_id')}, {_column('id')}, NULL "
                f"FROM {_table()} WHERE {envelope_where}",
                [*params, *params],
            )
            # The envelopes' rows (tag 1) first: a GroupBody row (tag 0) of the same pair replaces them.
            for _, sender_id, client_id, message_id, group_id in sorted(cursor.fetchall(), key=lambda row: -row[0]):
                found[(sender_id, client_field.to_python(client_id))] = EarlierGroupSend(message_id, group_id)
    return found


def group_body_insert(body: GroupBody) -> None:
    """INSERT this (unsaved) GroupBody; stands for `GroupBody.objects.create(...)`, whose
    compiler cost more than the statement."""
    fields = [field for field in GroupBody._meta.concrete_fields]
    names = ", ".join(_quote(field.column) for field in fields)
    values = [field.get_db_prep_save(getattr(body, field.attname), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_quote(GroupBody._meta.db_table)} ({names}) VALUES ({_marks(len(fields))})",  # noqa: S608 - see above
            values,
        )


def group_counts_add(changes: dict[int, tuple[int, int, int]], *, erase: bool) -> None:
    """Add {message id: (members delivered to now, members who read now, copies delivered
    now)} to the GroupBody counters, and erase the body of a message none of whose copies waits
    any more (with `erase`): ONE statement for the batch's messages (each amount a `CASE` on the
    message id), not one per message (MySQLdb's `executemany` sends an UPDATE per row, a round
    trip each). Stands for `GroupBody.objects.filter(message_id=...).update(delivered=F(...) +
    ..., ...)` per message. The body's assignment comes first: MariaDB evaluates SET left to
    right (a later one sees the new `remaining`), SQLite with the old values; first, both read
    the old one."""
    if not changes:
        return
    table, message, _, delivered, read, _, remaining, body = _group_names()
    with connection.cursor() as cursor:
        # Nine bound values per message.
        for chunk in _chunks(sorted(changes), CHUNK // 10):
            whens = " ".join(["WHEN %s THEN %s"] * len(chunk))

            def amounts(slot: int, chunk: list[int] = chunk) -> list[int]:
                return [value for pk in chunk for value in (pk, changes[pk][slot])]

            copies = f"(CASE {message} {whens} END)"
            wipe = f"CASE WHEN {remaining} - {copies} <= 0 THEN '' ELSE {body} END" if erase else body
            cursor.execute(
                f"UPDATE {table} SET {body} = {wipe}, {delivered} = {delivered} + (CASE {message} {whens} END), "  # noqa: S608 - see above
                f"{read} = {read} + (CASE {message} {whens} END), {remaining} = {remaining} - {copies} "
                f"WHERE {message} IN ({_marks(len(chunk))})",
                [*(amounts(2) if erase else []), *amounts(0), *amounts(1), *amounts(2), *chunk],
            )


def group_counts(message_ids: Iterable[int]) -> list[GroupCounts]:
    """The counters of these group messages; stands for `GroupBody.objects.filter(message_id__in=
    ...).values_list(...)`."""
    table, message, sender, delivered, read, recipients, _, _ = _group_names()
    found = []
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(message_ids))):
            cursor.execute(
                f"SELECT {message}, {sender}, {delivered}, {read}, {recipients} FROM {table} "  # noqa: S608 - see above
                f"WHERE {message} IN ({_marks(len(chunk))})",
                chunk,
            )
            found += [GroupCounts(*row) for row in cursor.fetchall()]
    return found


# --- the mailbox counters ---------------------------------------------------------------------


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
