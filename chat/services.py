"""Writes of the chat app: storing envelopes, receipts, retention.

The order of events is the delivery guarantee: an envelope is committed to the database
before anyone hears about it (the sender's `sent`, the recipient's push both come after the
commit), so a crash or a dropped push can delay a message but never lose it. The push is a
nudge; the recipient's next connect (or `GET /api/v1/messages/`) delivers whatever it has not
acknowledged, in id order.

Who may do what, written out because the prototype got each of these wrong:
- only to an accepted contact (a stranger, a pending request or an unknown email all get the
  same `not_a_contact`, so the endpoint does not reveal who has an account);
- only the recipient of an envelope can mark it delivered or read; ids of anyone else's
  envelopes are ignored (and counted in the log, without the ids' owners);
- a resend with the same `client_id` returns the first envelope's id and stores nothing.

Nothing here logs a body or a key: only ids, sizes and counts.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import normalize_email
from accounts.selectors import user_by_email
from chat import events, sql
from chat.errors import ChatError, ClientIdReused, InvalidEnvelope, NotAContact, QuotaExceeded
from chat.models import Envelope
from chat.validation import KINDS, body_size_check
from contacts.selectors import accepted_pairs
from realtime import bus
from realtime.db import batch_transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendRequest:
    sender_id: int
    sender_email: str
    to_email: str
    client_id: uuid.UUID
    kind: str
    body: str


@dataclass(frozen=True)
class SendResult:
    id: int
    client_id: uuid.UUID
    recipient_id: int
    created: bool


@dataclass(frozen=True)
class ReceiptRequest:
    user_id: int
    ids: list[int]
    read: bool = False  # False: delivered (ack); True: read (implies delivered)


@dataclass(frozen=True)
class ReceiptResult:
    marked: list[int]
    ignored: int


@dataclass(frozen=True)
class PurgeResult:
    bodies_erased: int
    expired_deleted: int


# --- sending ----------------------------------------------------------------------------------


def envelope_send(*, sender, to_email: str, client_id: uuid.UUID, kind: str, body: str) -> SendResult:
    """Store an envelope from `sender` to the contact with email `to_email` and push it to
    the recipient's sockets once committed. Idempotent per (sender, client_id)."""
    request = SendRequest(sender.pk, sender.email, to_email, client_id, kind, body)
    [result] = envelopes_send([request])
    if isinstance(result, Exception):
        raise result
    return result


def envelopes_send(requests: list[SendRequest]) -> list[SendResult | ChatError]:
    """`envelope_send` for many requests (from any senders) at once: the socket path batches
    the frames of every socket of a process into one call. The answer for each request is
    its result or its error; one refused request does not affect the others. The rules are
    the same code for one request and for many."""
    try:
        with transaction.atomic():
            return _envelopes_store(requests)
    except IntegrityError:
        return _envelopes_send_one_by_one(requests)


def _envelopes_send_one_by_one(requests: list[SendRequest]) -> list[SendResult | ChatError]:
    """After an IntegrityError: a concurrent resend (another tab, another process) inserted
    one of these (sender, client_id) pairs between our duplicate check and our insert, and
    the whole transaction was rolled back. Its row is committed now: redo each request alone
    (one transaction each), which finds it and answers with its id."""
    results: list[SendResult | ChatError] = []
    for request in requests:
        try:
            with transaction.atomic():
                results.extend(_envelopes_store([request]))
        except IntegrityError:
            with transaction.atomic():
                results.extend(_envelopes_store([request]))
    return results


def batch_apply(
    sends: list[SendRequest], receipts: list[ReceiptRequest]
) -> tuple[list[SendResult | ChatError], list[ReceiptResult]]:
    """`envelopes_send(sends)` and `envelopes_mark(receipts)` in ONE transaction: the socket
    path's batch. Each transaction costs round trips and a log flush on MariaDB (Django's
    atomic sends `SET autocommit=0`, `COMMIT` and `SET autocommit=1`, and the commit waits
    for the fsync), and under light load a batch holds a request or two, so the second
    transaction cost about as much as the work itself.

    Nothing is visible to anyone before this one commit (events are published on commit), so
    the guarantees are those of the two calls: an envelope is committed before its `sent`
    and its push. Receipts run after the sends, as they did in their own transaction; a
    receipt cannot name an envelope stored in the same batch (its id is only known after the
    commit), so the order does not change any answer. Receipts answer every request (no
    domain errors), and a refused send is an answer too, so one request never aborts the
    others. If the INSERT meets a concurrent resend (IntegrityError), the whole transaction
    is rolled back (with its events) and the batch is redone the way the two calls do it
    alone: sends one by one, then the receipts in their own transaction."""
    try:
        with batch_transaction():
            usage: dict[int, list[int]] = {}
            send_results = _envelopes_store(sends, usage) if sends else []
            receipt_results = _envelopes_mark(receipts, usage) if receipts else []
            # The mailbox counters of both, in one statement, the batch's last (see usage_add).
            sql.usage_add(usage)
    except IntegrityError:
        send_results = _envelopes_send_one_by_one(sends)
        receipt_results = envelopes_mark(receipts) if receipts else []
    return send_results, receipt_results


def _check_shape(request: SendRequest) -> None:
    if request.kind not in KINDS:
        raise InvalidEnvelope("Unknown kind.", code="invalid_kind")
    body_size_check(request.body)


def _envelopes_store(
    requests: list[SendRequest], usage: dict[int, list[int]] | None = None
) -> list[SendResult | ChatError]:
    """Store what may be stored, within the caller's transaction, and count the new
    envelopes' bytes in the mailbox counters: at the end, or, given `usage` ({user id: [sent,
    waiting]}), added there for the caller to write (one statement for a whole batch)."""
    if usage is None:
        usage = {}
        results = _envelopes_store(requests, usage)
        sql.usage_add(usage)
        return results
    results: list[SendResult | ChatError | None] = [None] * len(requests)
    todo: list[int] = []
    for index, request in enumerate(requests):
        try:
            _check_shape(request)
            todo.append(index)
        except ChatError as error:
            results[index] = error
    if not todo:
        return results

    # Who is who: every recipient by email and every sender by id. The sender is checked
    # too: a socket of a user deactivated a moment ago may not be closed yet. And resends:
    # envelopes already stored under these (sender, client_id) pairs. One query for both.
    sender_quota, recipient_quota = settings.MESSAGE_QUOTA_SENDER_BYTES, settings.MESSAGE_QUOTA_RECIPIENT_BYTES
    users, stored, (sent_bytes, waiting_bytes) = sql.users_and_resends(
        emails={requests[i].to_email for i in todo},
        ids={requests[i].sender_id for i in todo},
        keys={(requests[i].sender_id, requests[i].client_id) for i in todo},
        quotas=bool(sender_quota or recipient_quota),
    )
    active_by_email = {email: pk for pk, email, active in users if active}
    email_by_id = {pk: email for pk, email, _ in users}
    active_ids = {pk for pk, _, active in users if active}

    recipients: dict[int, int] = {}  # request index -> recipient id
    for index in todo:
        try:
            recipients[index] = _recipient(requests[index], active_ids, active_by_email, email_by_id)
        except ChatError as error:
            results[index] = error
    # Only between accepted contacts: one query for every pair of the batch.
    accepted = accepted_pairs(pairs={(requests[index].sender_id, recipient) for index, recipient in recipients.items()})

    new: list[tuple[int, int]] = []  # (request index, recipient id)
    for index, recipient_id in recipients.items():
        request = requests[index]
        try:
            key = (request.sender_id, request.client_id)
            if key in stored:
                if stored[key][0] is None:
                    # Sent twice within this batch: answered with the first copy's id below.
                    _duplicate(stored[key], request, recipient_id)
                    continue
                results[index] = _duplicate(stored[key], request, recipient_id)
                continue
            if (request.sender_id, recipient_id) not in accepted:
                raise NotAContact()
            size = _quota_take(request, recipient_id, sent_bytes, waiting_bytes, sender_quota, recipient_quota)
            usage.setdefault(request.sender_id, [0, 0])[0] += size
            usage.setdefault(recipient_id, [0, 0])[1] += size
            stored[key] = (None, recipient_id)  # a second copy in this batch is a resend
            new.append((index, recipient_id))
        except ChatError as error:
            results[index] = error

    # One INSERT for the batch.
    now = timezone.now()
    rows = [
        (
            requests[index].client_id,
            requests[index].sender_id,
            recipient_id,
            requests[index].kind,
            requests[index].body,
            len(requests[index].body.encode("utf-8")),
        )
        for index, recipient_id in new
    ]
    ids = sql.envelopes_insert(rows, now) if rows else []
    for (index, recipient_id), envelope_id, row in zip(new, ids, rows, strict=True):
        request = requests[index]
        stored[(request.sender_id, request.client_id)] = (envelope_id, recipient_id)
        results[index] = SendResult(
            id=envelope_id, client_id=request.client_id, recipient_id=recipient_id, created=True
        )
        bus.publish_on_commit(
            [recipient_id],
            events.message_event(
                id=envelope_id,
                client_id=request.client_id,
                sender_email=email_by_id[request.sender_id],
                kind=request.kind,
                body=request.body,
                sent_at=now,
            ),
        )
        logger.debug(
            "envelope stored id=%s sender=%s recipient=%s size=%s", envelope_id, request.sender_id, recipient_id, row[5]
        )
    # Copies of a client_id sent twice within this batch get the first copy's id.
    for index in todo:
        if results[index] is None:
            request = requests[index]
            results[index] = _duplicate(stored[(request.sender_id, request.client_id)], request, None)
    return results


def _recipient(request: SendRequest, active_ids: set, active_by_email: dict, email_by_id: dict) -> int:
    if request.sender_id not in active_ids:
        raise NotAContact("Your account is disabled.", code="account_disabled")
    email = normalize_email(request.to_email)
    if email_by_id.get(request.sender_id) == email:
        raise InvalidEnvelope("You cannot send a message to yourself.", code="self_recipient")
    recipient_id = active_by_email.get(email)
    if recipient_id is None:
        # Unknown and deactivated accounts look exactly like strangers.
        raise NotAContact()
    return recipient_id


def _quota_take(
    request: SendRequest, recipient_id: int, sent: dict, waiting: dict, sender_quota: int, recipient_quota: int
) -> int:
    """Count this envelope against the storage quotas and return its size, or refuse it
    (QuotaExceeded).

    `sent`/`waiting` hold the undelivered bytes per sender/recipient (the MailboxUsage
    counters, read in the batch's first statement) and are increased here by each envelope
    the batch accepts, so a batch cannot pass a quota together that each request would pass
    alone. Only resends are free (they store nothing). Two processes' batches may both pass
    a nearly full quota at the same moment (the counters are read without a lock): the
    overshoot is bounded by one batch each, which is what keeps this check free of locks
    and extra round trips. The recipient's quota tells the sender, an accepted contact,
    only that the contact has a lot of mail waiting, never how much."""
    size = len(request.body.encode("utf-8"))
    if sender_quota and sent.get(request.sender_id, 0) + size > sender_quota:
        raise QuotaExceeded(
            f"Your undelivered messages have reached the storage limit ({sender_quota} bytes); "
            "you can send more as they are delivered."
        )
    if recipient_quota and waiting.get(recipient_id, 0) + size > recipient_quota:
        raise QuotaExceeded(
            "This contact has too many undelivered messages waiting on the server; "
            "try again after they have come online."
        )
    sent[request.sender_id] = sent.get(request.sender_id, 0) + size
    waiting[recipient_id] = waiting.get(recipient_id, 0) + size
    return size


def _duplicate(stored: tuple[int, int], request: SendRequest, recipient_id: int | None) -> SendResult:
    envelope_id, stored_recipient_id = stored
    if recipient_id is not None and stored_recipient_id != recipient_id:
        raise ClientIdReused()
    return SendResult(id=envelope_id, client_id=request.client_id, recipient_id=stored_recipient_id, created=False)


# --- receipts ---------------------------------------------------------------------------------


def _delivered_fields(now: datetime) -> dict:
    fields = {"delivered_at": now}
    if not settings.KEEP_DELIVERED_BODIES:
        # Delivered: the recipient holds the ciphertext now; the server keeps only metadata.
        fields["body"] = ""
    return fields


def envelopes_mark_delivered(*, user_id: int, ids: list[int]) -> ReceiptResult:
    """The recipient acknowledges envelopes: they are delivered (and their bodies erased),
    and each sender's sockets get one `delivered` event. Re-acking is a no-op."""
    return envelopes_mark([ReceiptRequest(user_id=user_id, ids=ids)])[0]


def envelopes_mark_read(*, user_id: int, ids: list[int]) -> ReceiptResult:
    """The recipient has shown envelopes to the user. Reading implies delivery: envelopes not
    yet acknowledged are marked delivered too (and that receipt is sent first)."""
    return envelopes_mark([ReceiptRequest(user_id=user_id, ids=ids, read=True)])[0]


def envelopes_mark(requests: list[ReceiptRequest]) -> list[ReceiptResult]:
    """Delivered/read receipts of many recipients at once (the socket path batches them).
    Each request marks only envelopes addressed to its own user; ids of anyone else's
    envelopes are ignored and counted in the log (not the ids: they would tell the reader
    whose they are)."""
    with transaction.atomic():
        return _envelopes_mark(requests)


def _envelopes_mark(requests: list[ReceiptRequest], usage: dict[int, list[int]] | None = None) -> list[ReceiptResult]:
    """`envelopes_mark` within the caller's transaction (the rows are locked until its end).
    The bytes of the envelopes delivered now come off the mailbox counters: at the end, or,
    given `usage`, subtracted there for the caller to write."""
    if usage is None:
        usage = {}
        results = _envelopes_mark(requests, usage)
        sql.usage_add(usage)
        return results
    now = timezone.now()
    all_ids = {pk for request in requests for pk in request.ids}
    rows = sql.receipt_rows(all_ids)
    delivered: dict[int, int] = {}  # envelope id -> sender id, marked delivered now
    read: dict[int, int] = {}
    results = []
    for request in requests:
        marked, foreign = [], 0
        for pk in request.ids:
            row = rows.get(pk)
            if row is None or row[1] != request.user_id:
                foreign += 1
                continue
            sender_id, _, delivered_at, read_at, size = row
            changed = False
            if delivered_at is None and pk not in delivered:
                delivered[pk] = sender_id
                usage.setdefault(sender_id, [0, 0])[0] -= size
                usage.setdefault(request.user_id, [0, 0])[1] -= size
                changed = True
            if request.read and read_at is None and pk not in read:
                read[pk] = sender_id
                changed = True
            if changed:
                marked.append(pk)
        if foreign:
            logger.warning(
                "receipt for envelopes not addressed to the user ignored user=%s count=%s", request.user_id, foreign
            )
        results.append(ReceiptResult(marked=marked, ignored=len(request.ids) - len(marked)))
    if delivered:
        sql.envelopes_update(list(delivered), fields=_delivered_fields(now))
        for sender_id, sender_ids in _by_sender(delivered).items():
            bus.publish_on_commit([sender_id], events.delivered_event(ids=sender_ids))
    if read:
        sql.envelopes_update(list(read), fields={"read_at": now})
        for sender_id, sender_ids in _by_sender(read).items():
            bus.publish_on_commit([sender_id], events.read_event(ids=sender_ids))
    return results


def _by_sender(marked: dict[int, int]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for pk in sorted(marked):
        grouped.setdefault(marked[pk], []).append(pk)
    return grouped


# --- typing, retention ------------------------------------------------------------------------


def typing_recipient(*, sender, to_email: str) -> int:
    """The id of the contact a typing indicator may be relayed to (nothing is stored)."""
    email = normalize_email(to_email)
    if email == sender.email:
        raise InvalidEnvelope("You cannot send a message to yourself.", code="self_recipient")
    recipient = user_by_email(email=email)
    if recipient is None or not accepted_pairs(pairs={(sender.pk, recipient.pk)}):
        raise NotAContact()
    return recipient.pk


@transaction.atomic
def envelopes_purge(*, now: datetime | None = None, dry_run: bool = False) -> PurgeResult:
    """Retention: erase the bodies of delivered envelopes (unless KEEP_DELIVERED_BODIES; this
    catches envelopes delivered while the setting was on) and delete undelivered envelopes
    older than MESSAGE_RETENTION_DAYS. Delivered metadata stays for receipts."""
    now = now or timezone.now()
    bodies = Envelope.objects.none()
    if not settings.KEEP_DELIVERED_BODIES:
        bodies = Envelope.objects.filter(delivered_at__isnull=False).exclude(body="")
    expired = Envelope.objects.filter(
        delivered_at__isnull=True, created_at__lt=now - timedelta(days=settings.MESSAGE_RETENTION_DAYS)
    )
    if dry_run:
        return PurgeResult(bodies_erased=bodies.count(), expired_deleted=expired.count())
    erased = bodies.update(body="")
    # Locked first: an acknowledgement racing the purge would otherwise take the same bytes
    # off the mailbox counters a second time.
    doomed = list(expired.select_for_update().values_list("id", "sender_id", "recipient_id", "size"))
    usage: dict[int, list[int]] = {}
    for _, sender_id, recipient_id, size in doomed:
        usage.setdefault(sender_id, [0, 0])[0] -= size
        usage.setdefault(recipient_id, [0, 0])[1] -= size
    deleted = 0
    for start in range(0, len(doomed), sql.CHUNK):
        deleted += Envelope.objects.filter(id__in=[row[0] for row in doomed[start : start + sql.CHUNK]]).delete()[0]
    sql.usage_add(usage)
    logger.info("messages purged bodies_erased=%s expired_deleted=%s", erased, deleted)
    return PurgeResult(bodies_erased=erased, expired_deleted=deleted)
