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
- a resend with the same `client_id` returns the first envelope's id and stores nothing;
- a message is stored only as copies for exactly the recipient's active devices and the
  sender's other active devices (docs/PROTOCOL.md section 17), all in one transaction or none;
  only the device a copy is addressed to may mark it delivered or read.

Nothing here logs a body or a key: only ids, sizes and counts.
"""

import logging
import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.models import Device, normalize_email
from accounts.selectors import user_by_email
from chat import events, group_messages, sql, validation
from chat.errors import (
    ChatError,
    ClientIdReused,
    DeviceMismatch,
    InvalidEnvelope,
    NoDevices,
    NotAContact,
    QuotaExceeded,
)
from chat.models import Envelope, GroupBody
from chat.validation import KINDS, body_size_check
from contacts.selectors import accepted_pairs
from realtime import bus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Copy:
    """One device's copy of a message (docs/PROTOCOL.md section 17.1)."""

    device: int
    kind: str
    body: str


@dataclass(frozen=True)
class SendRequest:
    """A message to send. A version-1 send has one `kind` and `body` (`copies` None), which
    is acceptable only while the recipient has one device and the sender no other; a
    version-2 send has a copy per recipient device (`copies`) and per other own device
    (`own`)."""

    sender_id: int
    sender_email: str
    to_email: str
    client_id: uuid.UUID
    kind: str = ""
    body: str = ""
    sender_device: int = 1
    copies: tuple[Copy, ...] | None = None
    own: tuple[Copy, ...] = ()


def send_request_parse(frame: dict, *, sender, sender_device: int) -> SendRequest:
    """The `send` of `sender`'s device `sender_device`, as the chat socket's frame or the body
    of POST messages/ carries it (docs/PROTOCOL.md section 17.1): version 2 when it has
    `copies` (and optionally `own`), version 1 (`kind`, `body`) otherwise. Each field is
    checked at this boundary (InvalidFrame, BodyTooLarge); whether the copies match the
    current devices is decided with the database, in `send_decide`."""
    client_id = validation.client_id_parse(frame.get("client_id"))
    to_email = validation.email_parse(frame.get("to"))
    if "copies" not in frame:
        kind = validation.kind_parse(frame.get("kind"))
        body = validation.body_parse(frame.get("body"))
        validation.body_size_check(body)
        return SendRequest(sender.pk, sender.email, to_email, client_id, kind, body, sender_device)
    copies = tuple(Copy(*c) for c in validation.copies_parse(frame.get("copies"), "copies", True))
    own = tuple(Copy(*c) for c in validation.copies_parse(frame.get("own", []), "own"))
    return SendRequest(sender.pk, sender.email, to_email, client_id, "", "", sender_device, copies, own)


@dataclass(frozen=True)
class SendResult:
    id: int  # the message id
    client_id: uuid.UUID
    recipient_id: int
    created: bool


@dataclass(frozen=True)
class ReceiptRequest:
    user_id: int
    ids: list[int]
    read: bool = False  # False: delivered (ack); True: read (implies delivered)
    device_id: int = 1  # only copies addressed to this device are marked


@dataclass(frozen=True)
class ReceiptResult:
    marked: list[int]
    ignored: int


@dataclass(frozen=True)
class PurgeResult:
    bodies_erased: int
    expired_deleted: int


# --- the batch: sends and receipts in one transaction ------------------------------------------


Request = SendRequest | group_messages.GroupSendRequest | ReceiptRequest


def envelopes_apply(requests: list[Request]) -> list[SendResult | group_messages.GroupSent | ReceiptResult | ChatError]:
    """Sends, group sends and receipts of many users at once, within the caller's transaction:
    the chat socket's batch (realtime.batching runs it in one transaction per batch, chat.consumers
    submits to it), and, in their own transaction, `envelopes_send`/`envelopes_mark`. The
    answer for each request, in order, is its result or its domain error; one refused
    request does not affect the others. The rules are the same code for one request and for
    many.

    One transaction for all kinds: each transaction costs a commit (and its fsync) on
    MariaDB, and under light load a batch holds a request or two, so a second transaction
    cost about as much as the work itself. Nothing is visible to anyone before the commit
    (events are published on commit), so an envelope is committed before its `sent` and its
    push. Receipts run after the sends; a receipt cannot name an envelope stored in the same
    batch (its id is only known after the commit), so the order does not change any answer.
    The mailbox counters of all are written last, in one statement (see sql.usage_add)."""
    kinds = (SendRequest, group_messages.GroupSendRequest, ReceiptRequest)
    grouped = {kind: [request for request in requests if isinstance(request, kind)] for kind in kinds}
    usage: dict[int, list[int]] = {}
    stores = (_sends_store, group_messages.group_sends_store, _receipts_mark)
    answers = {
        kind: iter(store(grouped[kind], usage) if grouped[kind] else ())
        for kind, store in zip(kinds, stores, strict=True)
    }
    sql.usage_add(usage)
    return [next(answers[type(request)]) for request in requests]


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


def envelope_send(request: SendRequest | group_messages.GroupSendRequest) -> SendResult | group_messages.GroupSent:
    """Store one message (a version-1 copy, a version-2 set of copies, or a group message) and
    push it to the recipient devices once committed, in its own transaction; a refusal raises.
    Idempotent per (sender, client_id)."""
    [result] = envelopes_send([request])
    if isinstance(result, Exception):
        raise result
    return result


def envelopes_send(requests: list[SendRequest]) -> list[SendResult | ChatError]:
    """`envelope_send` for many requests (from any senders) at once, in one transaction."""
    return _in_own_transaction(requests)


@dataclass(frozen=True)
class StoredCopy:
    recipient_id: int  # the recipient, or the sender for an `own` copy
    device: int
    kind: str
    body: str
    size: int
    own: bool


@dataclass(frozen=True)
class Store:
    """Decided: store a new message for this recipient, as these copies (the recipient's
    first)."""

    recipient_id: int
    size: int  # body bytes of all copies
    copies: tuple[StoredCopy, ...]


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
    devices: dict[int, list[int]] = field(default_factory=dict)  # active device ids per user
    stored_now: dict[tuple[int, uuid.UUID], int] = field(default_factory=dict)  # key -> recipient, this batch

    def count(self, request: SendRequest, store: Store) -> None:
        """The batch stores `request`: its bytes count against the quotas of the requests
        after it, and a second copy of it is a resend."""
        self.sent_bytes[request.sender_id] = self.sent_bytes.get(request.sender_id, 0) + store.size
        for copy in store.copies:
            self.waiting_bytes[copy.recipient_id] = self.waiting_bytes.get(copy.recipient_id, 0) + copy.size
        self.stored_now[(request.sender_id, request.client_id)] = store.recipient_id


def _shape_error(request: SendRequest) -> ChatError | None:
    copies = (Copy(0, request.kind, request.body),) if request.copies is None else (*request.copies, *request.own)
    for copy in copies:
        if copy.kind not in KINDS:
            return InvalidEnvelope("Unknown kind.", code="invalid_kind")
        try:
            body_size_check(copy.body)
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
        return SendFacts({}, {}, set(), set(), {}, {}, {}, sender_quota, recipient_quota, {})
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
        devices=found.devices,
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
    - the devices (`copies_decide`): the copies are for exactly the recipient's active devices
      and the sender's other ones (`device_mismatch`, `no_devices`), from an active device;
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
    copies = copies_decide(request, recipient_id, facts.devices)
    if isinstance(copies, ChatError):
        return copies
    size = sum(copy.size for copy in copies)
    waiting = sum(copy.size for copy in copies if not copy.own)
    if facts.sender_quota and facts.sent_bytes.get(request.sender_id, 0) + size > facts.sender_quota:
        return QuotaExceeded(
            f"Your undelivered messages have reached the storage limit ({facts.sender_quota} bytes); "
            "you can send more as they are delivered."
        )
    if facts.recipient_quota and facts.waiting_bytes.get(recipient_id, 0) + waiting > facts.recipient_quota:
        return QuotaExceeded(
            "This contact has too many undelivered messages waiting on the server; "
            "try again after they have come online."
        )
    return Store(recipient_id, size, copies)


def copies_decide(
    request: SendRequest, recipient_id: int, devices: dict[int, list[int]]
) -> tuple[StoredCopy, ...] | ChatError:
    """The copies to store for one send, or why none is stored (docs/PROTOCOL.md section
    17.1). The server stores a message only for exactly the devices that exist now: a copy
    for a device that is gone could never be delivered, and a device left out would silently
    miss the message. So the sets must match exactly, or the answer lists what is `missing`
    and `extra` and the client corrects its sessions and sends again. A version-1 send is one
    copy, for the recipient's only device, from a sender without other devices."""
    sender_devices = devices.get(request.sender_id, [])
    if request.sender_device not in sender_devices:
        return NotAContact("This device was removed from the account.", code="device_removed")
    to_devices = devices.get(recipient_id, [])
    if not to_devices:
        return NoDevices()
    own_devices = [device for device in sender_devices if device != request.sender_device]
    if request.copies is None:
        if len(to_devices) != 1 or own_devices:
            return DeviceMismatch(missing={"to": to_devices, "own": own_devices}, extra={"to": [], "own": []})
        copies = (Copy(to_devices[0], request.kind, request.body),)
        own = ()
    else:
        copies, own = request.copies, request.own
        named_to, named_own = {c.device for c in copies}, {c.device for c in own}
        missing = {"to": sorted(set(to_devices) - named_to), "own": sorted(set(own_devices) - named_own)}
        extra = {"to": sorted(named_to - set(to_devices)), "own": sorted(named_own - set(own_devices))}
        if missing["to"] or missing["own"] or extra["to"] or extra["own"]:
            return DeviceMismatch(missing=missing, extra=extra)
    stored = [StoredCopy(recipient_id, c.device, c.kind, c.body, len(c.body.encode("utf-8")), False) for c in copies]
    stored += [StoredCopy(request.sender_id, c.device, c.kind, c.body, len(c.body.encode("utf-8")), True) for c in own]
    return tuple(stored)


def _sends_store(requests: list[SendRequest], usage: dict[int, list[int]]) -> list[SendResult | ChatError]:
    """A batch of sends within the caller's transaction: prefetch, decide each request, the
    INSERTs of what is stored, then the pushes (on commit). The first copy of every stored
    message goes in one INSERT (its id is the message id), the other copies in a second one
    that names it. The new copies' bytes are added to `usage` ({user id: [sent, waiting]}) for
    the caller to write to the mailbox counters."""
    facts = _sends_prefetch(requests)
    outcomes: list[SendOutcome] = []
    for request in requests:
        outcome = send_decide(request, facts)
        if isinstance(outcome, Store):
            facts.count(request, outcome)
            usage.setdefault(request.sender_id, [0, 0])[0] += outcome.size
            for copy in outcome.copies:
                usage.setdefault(copy.recipient_id, [0, 0])[1] += copy.size
        outcomes.append(outcome)

    stores = [
        (request, outcome) for request, outcome in zip(requests, outcomes, strict=True) if isinstance(outcome, Store)
    ]
    now = timezone.now()
    first_ids = (
        sql.envelopes_insert([_new_copy(request, store, 0, None) for request, store in stores], now) if stores else []
    )
    message_ids = {
        (request.sender_id, request.client_id): pk for (request, _), pk in zip(stores, first_ids, strict=True)
    }
    others = [(request, store, index) for request, store in stores for index in range(1, len(store.copies))]
    other_ids = (
        sql.envelopes_insert(
            [
                _new_copy(request, store, index, message_ids[(request.sender_id, request.client_id)])
                for request, store, index in others
            ],
            now,
        )
        if others
        else []
    )
    copy_ids = {
        (request.sender_id, request.client_id, 0): pk for (request, _), pk in zip(stores, first_ids, strict=True)
    }
    copy_ids.update(
        {
            (request.sender_id, request.client_id, index): pk
            for (request, _, index), pk in zip(others, other_ids, strict=True)
        }
    )

    results: list[SendResult | ChatError] = []
    for request, outcome in zip(requests, outcomes, strict=True):
        key = (request.sender_id, request.client_id)
        if isinstance(outcome, Store):
            message_id = message_ids[key]
            results.append(SendResult(message_id, request.client_id, outcome.recipient_id, created=True))
            for index, copy in enumerate(outcome.copies):
                _announce_stored(request, copy_ids[(*key, index)], message_id, outcome, copy, facts, now)
        elif isinstance(outcome, Resend):
            # A copy of a message stored earlier in this batch gets that one's id.
            message_id = outcome.id if outcome.id is not None else message_ids[key]
            results.append(SendResult(message_id, request.client_id, outcome.recipient_id, created=False))
        else:
            results.append(outcome)
    return results


def _new_copy(request: SendRequest, store: Store, index: int, message_id: int | None) -> sql.NewEnvelope:
    copy = store.copies[index]
    return sql.NewEnvelope(
        request.client_id,
        request.sender_id,
        request.sender_device,
        copy.recipient_id,
        copy.device,
        index,
        len(store.copies),
        message_id,
        store.recipient_id if copy.own else None,
        copy.kind,
        copy.body,
        copy.size,
    )


def _announce_stored(
    request: SendRequest,
    copy_id: int,
    message_id: int,
    store: Store,
    copy: StoredCopy,
    facts: SendFacts,
    now: datetime,
) -> None:
    event = events.message_event(
        id=copy_id,
        message_id=message_id,
        client_id=request.client_id,
        sender_email=facts.email_by_id[request.sender_id],
        sender_device=request.sender_device,
        to_email=facts.email_by_id[store.recipient_id],
        kind=copy.kind,
        body=copy.body,
        sent_at=now,
    )
    bus.publish_on_commit([copy.recipient_id], events.for_device(event, copy.device))
    logger.debug(
        "envelope stored id=%s message=%s sender=%s recipient=%s device=%s size=%s",
        copy_id,
        message_id,
        request.sender_id,
        copy.recipient_id,
        copy.device,
        copy.size,
    )


# --- receipts: prefetch -> decide -> update -> announce ---------------------------------------


def envelopes_mark_delivered(*, user_id: int, ids: list[int], device_id: int = 1) -> ReceiptResult:
    """The recipient device acknowledges its copies: they are delivered (and their bodies
    erased), and each sender's sockets get one `delivered` event. Re-acking is a no-op."""
    return envelopes_mark([ReceiptRequest(user_id=user_id, ids=ids, device_id=device_id)])[0]


def envelopes_mark_read(*, user_id: int, ids: list[int], device_id: int = 1) -> ReceiptResult:
    """The recipient device has shown its copies to the user. Reading implies delivery: copies
    not yet acknowledged are marked delivered too (and that receipt is sent first)."""
    return envelopes_mark([ReceiptRequest(user_id=user_id, ids=ids, read=True, device_id=device_id)])[0]


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
    database, no side effects). Only copies addressed to the request's own device are
    marked; the ids of anyone else's copies (another device's of the same account included),
    and of none, are foreign. Reading implies
    delivery; marking twice is a no-op."""
    delivered: dict[int, None] = {}
    read: dict[int, None] = {}
    marked: list[int] = []
    foreign = 0
    for pk in request.ids:
        row = rows.get(pk)
        if row is None or row.recipient_id != request.user_id or row.recipient_device != request.device_id:
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
    events (on commit). The bytes of the copies delivered now come off `usage`. Foreign
    ids are counted in the log, never listed: they would tell the reader whose they are.

    Receipts name messages, not copies (docs/PROTOCOL.md section 17.3): the sender hears
    `delivered`/`read` with the message id when any recipient device marks its copy (an
    `own` copy, one's own message on another device, produces none), and a read also reaches
    the reader's other devices as `read_elsewhere`, when the reader has any. The copies of
    group messages are counted per member instead (chat.group_messages.receipts_apply)."""
    rows = sql.receipt_rows({pk for request in requests for pk in request.ids})
    delivered: dict[int, int] = {}  # envelope id -> sender id, marked delivered now
    read: dict[int, int] = {}
    read_by: dict[tuple[int, int], list[int]] = {}  # (reader, device) -> message ids read now
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
            if rows[pk].peer_id is None:
                read_by.setdefault((request.user_id, request.device_id), []).append(rows[pk].message_id)
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
        direct = {pk: sender for pk, sender in delivered.items() if rows[pk].group_id is None}
        for sender_id, message_ids in _by_sender(direct, rows, "delivered_at").items():
            bus.publish_on_commit([sender_id], events.delivered_event(ids=message_ids))
    if read:
        sql.envelopes_update(list(read), fields={"read_at": now})
        direct = {pk: sender for pk, sender in read.items() if rows[pk].group_id is None}
        for sender_id, message_ids in _by_sender(direct, rows, "read_at").items():
            bus.publish_on_commit([sender_id], events.read_event(ids=message_ids))
        _announce_read_elsewhere(read_by)
    group_messages.receipts_apply(
        delivered=[pk for pk in delivered if rows[pk].group_id is not None],
        read=[pk for pk in read if rows[pk].group_id is not None],
        rows=rows,
    )
    return results


def _announce_read_elsewhere(read_by: dict[tuple[int, int], list[int]]) -> None:
    """`read_elsewhere` to the other devices of each reader that has any (one more query,
    only for batches with reads)."""
    if not read_by:
        return
    devices = sql.active_devices(user_ids={reader for reader, _ in read_by})
    for (reader, device), message_ids in read_by.items():
        if len(devices.get(reader, ())) > 1:
            event = events.read_elsewhere_event(ids=sorted(set(message_ids)))
            bus.publish_on_commit([reader], events.except_device(event, device))


def _delivered_fields(now: datetime) -> dict:
    fields = {"delivered_at": now}
    if not settings.KEEP_DELIVERED_BODIES:
        # Delivered: the recipient holds the ciphertext now; the server keeps only metadata.
        fields["body"] = ""
    return fields


def _by_sender(marked: dict[int, int], rows: dict[int, sql.ReceiptRow], column: str) -> dict[int, list[int]]:
    """{sender id: message ids} to announce for the copies marked now: `own` copies left out,
    and messages another recipient copy of which was marked before (that receipt was sent
    then; docs/PROTOCOL.md section 17.3: delivered or read by any device). Only messages of
    several copies are looked up, so a version-1 message costs no query. Two devices marking
    copies of one message in two processes at the same moment may both announce it: receipts
    are idempotent for clients."""
    fanned = [rows[pk].message_id for pk in marked if rows[pk].peer_id is None and rows[pk].copies > 1]
    before = sql.messages_marked_before(fanned, column=column, now_ids=marked) if fanned else set()
    grouped: dict[int, set[int]] = {}
    for pk in marked:
        row = rows[pk]
        if row.peer_id is None and row.message_id not in before:
            grouped.setdefault(marked[pk], set()).add(row.message_id)
    return {sender_id: sorted(ids) for sender_id, ids in grouped.items()}


# --- devices removed ----------------------------------------------------------------------


def copies_of_removed_devices_delete(*, user_id: int, device_ids: list[int]) -> int:
    """Delete the undelivered copies addressed to devices the account removed (they can never
    be delivered), with their bytes off the mailbox counters, in the removal's transaction
    (accounts.devices.devices_removed). The senders' other copies of those messages stay: a
    message is delivered when any recipient device has it."""
    doomed = list(
        Envelope.objects.select_for_update()
        .filter(recipient_id=user_id, recipient_device__in=device_ids, delivered_at__isnull=True)
        .values_list("id", "sender_id", "size", "group_id", "message_id")
    )
    usage: dict[int, list[int]] = {}
    group_copies: dict[int, int] = {}
    for pk, sender_id, size, group_id, message_id in doomed:
        usage.setdefault(sender_id, [0, 0])[0] -= size
        usage.setdefault(user_id, [0, 0])[1] -= size
        if group_id is not None:
            group_copies[message_id or pk] = group_copies.get(message_id or pk, 0) + 1
    group_messages.copies_removed(group_copies)
    for start in range(0, len(doomed), sql.CHUNK):
        Envelope.objects.filter(id__in=[row[0] for row in doomed[start : start + sql.CHUNK]]).delete()
    sql.usage_add(usage)
    if doomed:
        logger.info("undelivered copies of removed devices deleted user=%s count=%s", user_id, len(doomed))
    return len(doomed)


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
    older than MESSAGE_RETENTION_DAYS, and undelivered copies addressed to a removed device.
    Delivered metadata stays for receipts. A group message's body is erased once no copy of it
    waits (or, like an undelivered envelope, at the end of retention); its counts stay.

    Copies of removed devices are deleted when the device is removed
    (copies_of_removed_devices_delete), but a send that read the device list just before the
    removal committed may store its copy for that device just after: sends lock no device rows
    (that would cost every send a lock), so such a copy waits here instead. It is never
    delivered (the device is refused), and only counts against the quotas until this runs."""
    now = now or timezone.now()
    bodies = Envelope.objects.none()
    if not settings.KEEP_DELIVERED_BODIES:
        bodies = Envelope.objects.filter(delivered_at__isnull=False).exclude(body="")
    removed = Device.objects.filter(
        user_id=OuterRef("recipient_id"), device_id=OuterRef("recipient_device"), removed_at__isnull=False
    )
    expired = Envelope.objects.filter(delivered_at__isnull=True).filter(
        Q(created_at__lt=now - timedelta(days=settings.MESSAGE_RETENTION_DAYS)) | Q(Exists(removed))
    )
    old = now - timedelta(days=settings.MESSAGE_RETENTION_DAYS)
    group_bodies = GroupBody.objects.exclude(body="").filter(Q(remaining__lte=0) | Q(created_at__lt=old))
    if settings.KEEP_DELIVERED_BODIES:
        group_bodies = group_bodies.filter(created_at__lt=old)
    if dry_run:
        return PurgeResult(bodies_erased=bodies.count() + group_bodies.count(), expired_deleted=expired.count())
    erased = bodies.update(body="") + group_bodies.update(body="")
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
