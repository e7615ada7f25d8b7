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
from collections.abc import Container
from dataclasses import dataclass, field
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


# --- the batch: sends and receipts in one transaction ------------------------------------------


def envelopes_apply(requests: list[SendRequest | ReceiptRequest]) -> list[SendResult | ReceiptResult | ChatError]:
    """Sends and receipts of many users at once, within the caller's transaction: the chat
    socket's batch (realtime.batching runs it in one transaction per batch, chat.consumers
    submits to it), and, in their own transaction, `envelopes_send`/`envelopes_mark`. The
    answer for each request, in order, is its result or its domain error; one refused
    request does not affect the others. The rules are the same code for one request and for
    many.

    One transaction for both kinds: each transaction costs a commit (and its fsync) on
    MariaDB, and under light load a batch holds a request or two, so a second transaction
    cost about as much as the work itself. Nothing is visible to anyone before the commit
    (events are published on commit), so an envelope is committed before its `sent` and its
    push. Receipts run after the sends; a receipt cannot name an envelope stored in the same
    batch (its id is only known after the commit), so the order does not change any answer.
    The mailbox counters of both are written last, in one statement (see sql.usage_add)."""
    sends = [request for request in requests if isinstance(request, SendRequest)]
    receipts = [request for request in requests if isinstance(request, ReceiptRequest)]
    usage: dict[int, list[int]] = {}
    send_results = iter(_sends_store(sends, usage) if sends else ())
    receipt_results = iter(_receipts_mark(receipts, usage) if receipts else ())
    sql.usage_add(usage)
    return [next(send_results) if isinstance(request, SendRequest) else next(receipt_results) for request in requests]


def _in_own_transaction(requests: list) -> list:
    """`envelopes_apply` in a transaction of its own (the REST path and management code).

    An IntegrityError means a concurrent resend (another tab, another process) inserted one
    of these (sender, client_id) pairs between our duplicate check and our insert, and the
    transaction was rolled back. Its row is committed now: each request is redone alone (one
    transaction each), which finds it and answers with its id. The socket path's batches get
    the same treatment from realtime.batching."""
    try:
        with transaction.atomic():
            return envelopes_apply(requests)
    except IntegrityError:
        results = []
        for request in requests:
            try:
                with transaction.atomic():
                    results += envelopes_apply([request])
            except IntegrityError:
                with transaction.atomic():
                    results += envelopes_apply([request])
        return results


# --- sending: prefetch -> decide -> insert -> announce ----------------------------------------


def envelope_send(*, sender, to_email: str, client_id: uuid.UUID, kind: str, body: str) -> SendResult:
    """Store an envelope from `sender` to the contact with email `to_email` and push it to
    the recipient's sockets once committed. Idempotent per (sender, client_id)."""
    request = SendRequest(sender.pk, sender.email, to_email, client_id, kind, body)
    [result] = envelopes_send([request])
    if isinstance(result, Exception):
        raise result
    return result


def envelopes_send(requests: list[SendRequest]) -> list[SendResult | ChatError]:
    """`envelope_send` for many requests (from any senders) at once, in one transaction."""
    return _in_own_transaction(requests)


@dataclass(frozen=True)
class Store:
    """Decided: store a new envelope for this recipient."""

    recipient_id: int
    size: int  # body bytes


@dataclass(frozen=True)
class Resend:
    """Decided: a resend of a stored envelope, answered with its id and storing nothing.
    `id` is None for a copy of an envelope stored earlier in the same batch (its id is known
    after the INSERT)."""

    id: int | None
    recipient_id: int


SendOutcome = Store | Resend | ChatError


@dataclass
class SendFacts:
    """Everything `send_decide` decides from: what the batch's reads found, and what the
    batch decided so far. Only `_sends_store` changes it, between two decisions (`count`)."""

    active_by_email: dict[str, int]
    email_by_id: dict[int, str]
    active_ids: set[int]
    accepted: set[tuple[int, int]]  # (sender id, recipient id) pairs that are accepted contacts
    stored: dict[tuple[int, uuid.UUID], sql.StoredEnvelope]  # before this batch
    sent_bytes: dict[int, int]  # undelivered bytes per sender, this batch's included
    waiting_bytes: dict[int, int]  # undelivered bytes per recipient, this batch's included
    sender_quota: int
    recipient_quota: int
    stored_now: dict[tuple[int, uuid.UUID], int] = field(default_factory=dict)  # key -> recipient, this batch

    def count(self, request: SendRequest, store: Store) -> None:
        """The batch stores `request`: its bytes count against the quotas of the requests
        after it, and a second copy of it is a resend."""
        self.sent_bytes[request.sender_id] = self.sent_bytes.get(request.sender_id, 0) + store.size
        self.waiting_bytes[store.recipient_id] = self.waiting_bytes.get(store.recipient_id, 0) + store.size
        self.stored_now[(request.sender_id, request.client_id)] = store.recipient_id


def _shape_error(request: SendRequest) -> ChatError | None:
    if request.kind not in KINDS:
        return InvalidEnvelope("Unknown kind.", code="invalid_kind")
    try:
        body_size_check(request.body)
    except ChatError as error:
        return error
    return None


def _sends_prefetch(requests: list[SendRequest]) -> SendFacts:
    """The reads of a batch of sends: every recipient by email and every sender by id (the
    sender is checked too: a socket of a user deactivated a moment ago may not be closed
    yet), the envelopes already stored under these (sender, client_id) pairs (resends) and
    the quota counters, in one statement; then, in one more, which of the resolved pairs are
    accepted contacts. Requests refused for their shape are left out."""
    well_formed = [request for request in requests if _shape_error(request) is None]
    sender_quota, recipient_quota = settings.MESSAGE_QUOTA_SENDER_BYTES, settings.MESSAGE_QUOTA_RECIPIENT_BYTES
    if not well_formed:
        return SendFacts({}, {}, set(), set(), {}, {}, {}, sender_quota, recipient_quota)
    found = sql.users_and_resends(
        emails={request.to_email for request in well_formed},
        ids={request.sender_id for request in well_formed},
        keys={(request.sender_id, request.client_id) for request in well_formed},
        quotas=bool(sender_quota or recipient_quota),
    )
    active_by_email = {user.email: user.id for user in found.users if user.is_active}
    active_ids = {user.id for user in found.users if user.is_active}
    pairs = set()
    for request in well_formed:
        recipient_id = active_by_email.get(normalize_email(request.to_email))
        if request.sender_id in active_ids and recipient_id is not None:
            pairs.add((request.sender_id, recipient_id))
    return SendFacts(
        active_by_email=active_by_email,
        email_by_id={user.id: user.email for user in found.users},
        active_ids=active_ids,
        accepted=accepted_pairs(pairs=pairs),
        stored=found.stored,
        sent_bytes=found.sent_bytes,
        waiting_bytes=found.waiting_bytes,
        sender_quota=sender_quota,
        recipient_quota=recipient_quota,
    )


def send_decide(request: SendRequest, facts: SendFacts) -> SendOutcome:
    """What to do with one send, from `facts` alone (no database, no side effects): store it,
    answer it as a resend, or refuse it with a domain error. The rules, in order:
    - the shape (kind, body size);
    - the sender's account is active (`account_disabled`), the recipient is not the sender
      (`self_recipient`), the recipient is an active account (else `not_a_contact`: unknown
      and deactivated accounts look exactly like strangers);
    - a (sender, client_id) already stored, or stored earlier in this batch, is a resend if
      it went to the same recipient (else `client_id_reused`); resends are free;
    - only to an accepted contact (`not_a_contact`);
    - the storage quotas (`quota_exceeded`): `facts` holds the undelivered bytes per sender
      and recipient (the MailboxUsage counters, read without a lock, plus what this batch
      stores before this request), so a batch cannot pass a quota together that each request
      would pass alone. Two processes' batches may both pass a nearly full quota at the same
      moment: the overshoot is bounded by one batch each, which keeps this check free of
      locks and extra round trips. The recipient's quota tells the sender, an accepted
      contact, only that the contact has a lot of mail waiting, never how much."""
    error = _shape_error(request)
    if error is not None:
        return error
    if request.sender_id not in facts.active_ids:
        return NotAContact("Your account is disabled.", code="account_disabled")
    email = normalize_email(request.to_email)
    if facts.email_by_id.get(request.sender_id) == email:
        return InvalidEnvelope("You cannot send a message to yourself.", code="self_recipient")
    recipient_id = facts.active_by_email.get(email)
    if recipient_id is None:
        return NotAContact()
    key = (request.sender_id, request.client_id)
    if key in facts.stored_now:
        return Resend(None, recipient_id) if facts.stored_now[key] == recipient_id else ClientIdReused()
    stored = facts.stored.get(key)
    if stored is not None:
        return Resend(stored.id, stored.recipient_id) if stored.recipient_id == recipient_id else ClientIdReused()
    if (request.sender_id, recipient_id) not in facts.accepted:
        return NotAContact()
    size = len(request.body.encode("utf-8"))
    if facts.sender_quota and facts.sent_bytes.get(request.sender_id, 0) + size > facts.sender_quota:
        return QuotaExceeded(
            f"Your undelivered messages have reached the storage limit ({facts.sender_quota} bytes); "
            "you can send more as they are delivered."
        )
    if facts.recipient_quota and facts.waiting_bytes.get(recipient_id, 0) + size > facts.recipient_quota:
        return QuotaExceeded(
            "This contact has too many undelivered messages waiting on the server; "
            "try again after they have come online."
        )
    return Store(recipient_id, size)


def _sends_store(requests: list[SendRequest], usage: dict[int, list[int]]) -> list[SendResult | ChatError]:
    """A batch of sends within the caller's transaction: prefetch, decide each request, one
    INSERT for what is stored, then the pushes (on commit). The new envelopes' bytes are added
    to `usage` ({user id: [sent, waiting]}) for the caller to write to the mailbox counters."""
    facts = _sends_prefetch(requests)
    outcomes: list[SendOutcome] = []
    for request in requests:
        outcome = send_decide(request, facts)
        if isinstance(outcome, Store):
            facts.count(request, outcome)
            usage.setdefault(request.sender_id, [0, 0])[0] += outcome.size
            usage.setdefault(outcome.recipient_id, [0, 0])[1] += outcome.size
        outcomes.append(outcome)

    new = [
        sql.NewEnvelope(
            request.client_id, request.sender_id, outcome.recipient_id, request.kind, request.body, outcome.size
        )
        for request, outcome in zip(requests, outcomes, strict=True)
        if isinstance(outcome, Store)
    ]
    now = timezone.now()
    ids = iter(sql.envelopes_insert(new, now) if new else ())
    stored_ids: dict[tuple[int, uuid.UUID], int] = {}
    results: list[SendResult | ChatError] = []
    for request, outcome in zip(requests, outcomes, strict=True):
        if isinstance(outcome, Store):
            envelope_id = stored_ids[(request.sender_id, request.client_id)] = next(ids)
            results.append(SendResult(envelope_id, request.client_id, outcome.recipient_id, created=True))
            _announce_stored(request, envelope_id, outcome, facts.email_by_id[request.sender_id], now)
        elif isinstance(outcome, Resend):
            # A copy of an envelope stored earlier in this batch gets that one's id.
            envelope_id = outcome.id
            if envelope_id is None:
                envelope_id = stored_ids[(request.sender_id, request.client_id)]
            results.append(SendResult(envelope_id, request.client_id, outcome.recipient_id, created=False))
        else:
            results.append(outcome)
    return results


def _announce_stored(request: SendRequest, envelope_id: int, store: Store, sender_email: str, now: datetime) -> None:
    bus.publish_on_commit(
        [store.recipient_id],
        events.message_event(
            id=envelope_id,
            client_id=request.client_id,
            sender_email=sender_email,
            kind=request.kind,
            body=request.body,
            sent_at=now,
        ),
    )
    logger.debug(
        "envelope stored id=%s sender=%s recipient=%s size=%s",
        envelope_id,
        request.sender_id,
        store.recipient_id,
        store.size,
    )


# --- receipts: prefetch -> decide -> update -> announce ---------------------------------------


def envelopes_mark_delivered(*, user_id: int, ids: list[int]) -> ReceiptResult:
    """The recipient acknowledges envelopes: they are delivered (and their bodies erased),
    and each sender's sockets get one `delivered` event. Re-acking is a no-op."""
    return envelopes_mark([ReceiptRequest(user_id=user_id, ids=ids)])[0]


def envelopes_mark_read(*, user_id: int, ids: list[int]) -> ReceiptResult:
    """The recipient has shown envelopes to the user. Reading implies delivery: envelopes not
    yet acknowledged are marked delivered too (and that receipt is sent first)."""
    return envelopes_mark([ReceiptRequest(user_id=user_id, ids=ids, read=True)])[0]


def envelopes_mark(requests: list[ReceiptRequest]) -> list[ReceiptResult]:
    """Delivered/read receipts of many recipients at once, in one transaction."""
    return _in_own_transaction(requests)


@dataclass(frozen=True)
class ReceiptOutcome:
    """Decided for one receipt: the ids it marks delivered and read now (not marked before,
    nor earlier in the batch), and how many of its ids are not the user's to mark."""

    delivered: list[int]
    read: list[int]
    marked: list[int]  # delivered or read now, in the request's order
    foreign: int


def receipt_decide(
    request: ReceiptRequest,
    rows: dict[int, sql.ReceiptRow],
    delivered_before: Container[int],
    read_before: Container[int],
) -> ReceiptOutcome:
    """What one receipt marks, from the locked rows and what the batch marked before it (no
    database, no side effects). Only envelopes addressed to the request's own user are
    marked; the ids of anyone else's envelopes, and of none, are foreign. Reading implies
    delivery; marking twice is a no-op."""
    delivered: dict[int, None] = {}
    read: dict[int, None] = {}
    marked: list[int] = []
    foreign = 0
    for pk in request.ids:
        row = rows.get(pk)
        if row is None or row.recipient_id != request.user_id:
            foreign += 1
            continue
        changed = False
        if row.delivered_at is None and pk not in delivered_before and pk not in delivered:
            delivered[pk] = None
            changed = True
        if request.read and row.read_at is None and pk not in read_before and pk not in read:
            read[pk] = None
            changed = True
        if changed:
            marked.append(pk)
    return ReceiptOutcome(list(delivered), list(read), marked, foreign)


def _receipts_mark(requests: list[ReceiptRequest], usage: dict[int, list[int]]) -> list[ReceiptResult]:
    """A batch of receipts within the caller's transaction (the rows stay locked until its
    end): read and lock the rows, decide each request, one UPDATE per receipt kind, then the
    events (on commit). The bytes of the envelopes delivered now come off `usage`. Foreign
    ids are counted in the log, never listed: they would tell the reader whose they are."""
    rows = sql.receipt_rows({pk for request in requests for pk in request.ids})
    delivered: dict[int, int] = {}  # envelope id -> sender id, marked delivered now
    read: dict[int, int] = {}
    results = []
    for request in requests:
        outcome = receipt_decide(request, rows, delivered, read)
        for pk in outcome.delivered:
            row = rows[pk]
            delivered[pk] = row.sender_id
            usage.setdefault(row.sender_id, [0, 0])[0] -= row.size
            usage.setdefault(request.user_id, [0, 0])[1] -= row.size
        for pk in outcome.read:
            read[pk] = rows[pk].sender_id
        if outcome.foreign:
            logger.warning(
                "receipt for envelopes not addressed to the user ignored user=%s count=%s",
                request.user_id,
                outcome.foreign,
            )
        results.append(ReceiptResult(marked=outcome.marked, ignored=len(request.ids) - len(outcome.marked)))
    now = timezone.now()
    if delivered:
        sql.envelopes_update(list(delivered), fields=_delivered_fields(now))
        for sender_id, sender_ids in _by_sender(delivered).items():
            bus.publish_on_commit([sender_id], events.delivered_event(ids=sender_ids))
    if read:
        sql.envelopes_update(list(read), fields={"read_at": now})
        for sender_id, sender_ids in _by_sender(read).items():
            bus.publish_on_commit([sender_id], events.read_event(ids=sender_ids))
    return results


def _delivered_fields(now: datetime) -> dict:
    fields = {"delivered_at": now}
    if not settings.KEEP_DELIVERED_BODIES:
        # Delivered: the recipient holds the ciphertext now; the server keeps only metadata.
        fields["body"] = ""
    return fields


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
