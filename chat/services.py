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
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import normalize_email
from chat import events
from chat.errors import ClientIdReused, InvalidEnvelope, NotAContact
from chat.models import Envelope
from chat.validation import KINDS, body_size_check

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    id: int
    client_id: uuid.UUID
    recipient_id: int
    created: bool


@dataclass(frozen=True)
class ReceiptResult:
    marked: list[int]
    ignored: int


@dataclass(frozen=True)
class PurgeResult:
    bodies_erased: int
    expired_deleted: int


def _are_contacts(*, user_id: int, other_id: int) -> bool:
    # Imported here: the contacts app may import chat.events at module level.
    from contacts.selectors import are_contacts

    return are_contacts(user_id=user_id, other_id=other_id)


def _recipient_id(*, sender_id: int, to_email: str) -> int:
    """The recipient's id, and in the same query a check that the sender is still active (a
    socket of a user deactivated a moment ago may still be open until its close arrives)."""
    email = normalize_email(to_email)
    rows = get_user_model().objects.filter(Q(email=email) | Q(pk=sender_id)).values_list("pk", "email", "is_active")
    sender = recipient = None
    for pk, row_email, is_active in rows:
        if pk == sender_id:
            sender = (row_email, is_active)
        else:
            recipient = (pk, is_active)
    if sender is None or not sender[1]:
        raise NotAContact("Your account is disabled.", code="account_disabled")
    if sender[0] == email:
        raise InvalidEnvelope("You cannot send a message to yourself.", code="self_recipient")
    if recipient is None or not recipient[1]:
        raise NotAContact()
    return recipient[0]


def _existing(*, sender_id: int, client_id: uuid.UUID) -> tuple[int, int] | None:
    return Envelope.objects.filter(sender_id=sender_id, client_id=client_id).values_list("id", "recipient_id").first()


def _duplicate_result(existing: tuple[int, int], *, client_id: uuid.UUID, recipient_id: int) -> SendResult:
    envelope_id, stored_recipient_id = existing
    if stored_recipient_id != recipient_id:
        raise ClientIdReused()
    return SendResult(id=envelope_id, client_id=client_id, recipient_id=recipient_id, created=False)


def envelope_send(*, sender, to_email: str, client_id: uuid.UUID, kind: str, body: str) -> SendResult:
    """Store an envelope from `sender` to the contact with email `to_email` and push it to
    the recipient's sockets once committed. Idempotent per (sender, client_id)."""
    if kind not in KINDS:
        raise InvalidEnvelope("Unknown kind.", code="invalid_kind")
    size = body_size_check(body)
    try:
        return _envelope_store(sender=sender, to_email=to_email, client_id=client_id, kind=kind, body=body, size=size)
    except IntegrityError:
        # Two resends with one client_id raced (two tabs, a retry on a slow link): the other
        # one's insert won, so this one is the duplicate.
        existing = _existing(sender_id=sender.pk, client_id=client_id)
        if existing is None:
            raise
        recipient_id = _recipient_id(sender_id=sender.pk, to_email=to_email)
        return _duplicate_result(existing, client_id=client_id, recipient_id=recipient_id)


@transaction.atomic
def _envelope_store(*, sender, to_email: str, client_id: uuid.UUID, kind: str, body: str, size: int) -> SendResult:
    recipient_id = _recipient_id(sender_id=sender.pk, to_email=to_email)
    existing = _existing(sender_id=sender.pk, client_id=client_id)
    if existing is not None:
        return _duplicate_result(existing, client_id=client_id, recipient_id=recipient_id)
    if not _are_contacts(user_id=sender.pk, other_id=recipient_id):
        raise NotAContact()
    envelope = Envelope.objects.create(
        client_id=client_id, sender_id=sender.pk, recipient_id=recipient_id, kind=kind, body=body, size=size
    )
    events.publish_on_commit(
        [recipient_id],
        events.message_event(
            id=envelope.id,
            client_id=client_id,
            sender_email=sender.email,
            kind=kind,
            body=body,
            sent_at=envelope.created_at,
        ),
    )
    logger.debug("envelope stored id=%s sender=%s recipient=%s size=%s", envelope.id, sender.pk, recipient_id, size)
    return SendResult(id=envelope.id, client_id=client_id, recipient_id=recipient_id, created=True)


def _own_rows(*, user_id: int, ids: list[int], unset: str) -> list[tuple[int, int, datetime | None]]:
    """The recipient's own envelopes among `ids` whose `unset` timestamp is still empty,
    locked. Ids that are not the user's at all (someone else's, or none) are counted in the
    log and otherwise ignored."""
    rows = list(
        Envelope.objects.select_for_update()
        .filter(recipient_id=user_id, id__in=ids)
        .order_by("id")
        .values_list("id", "sender_id", "delivered_at", unset)
    )
    foreign = len(ids) - len(rows)
    if foreign:
        # The ids themselves are not logged: they would tell the reader whose they are.
        logger.warning("receipt for envelopes not addressed to the user ignored user=%s count=%s", user_id, foreign)
    return [(pk, sender_id, delivered_at) for pk, sender_id, delivered_at, value in rows if value is None]


def _delivered_fields(now: datetime) -> dict:
    fields = {"delivered_at": now}
    if not settings.KEEP_DELIVERED_BODIES:
        # Delivered: the recipient holds the ciphertext now; the server keeps only metadata.
        fields["body"] = ""
    return fields


def _by_sender(rows) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for pk, sender_id, *_ in rows:
        grouped.setdefault(sender_id, []).append(pk)
    return grouped


@transaction.atomic
def envelopes_mark_delivered(*, user_id: int, ids: list[int], now: datetime | None = None) -> ReceiptResult:
    """The recipient acknowledges envelopes: they are delivered (and their bodies erased),
    and each sender's sockets get one `delivered` event. Re-acking is a no-op."""
    now = now or timezone.now()
    rows = _own_rows(user_id=user_id, ids=ids, unset="delivered_at")
    if not rows:
        return ReceiptResult(marked=[], ignored=len(ids))
    marked = [row[0] for row in rows]
    Envelope.objects.filter(id__in=marked).update(**_delivered_fields(now))
    for sender_id, sender_ids in _by_sender(rows).items():
        events.publish_on_commit([sender_id], events.delivered_event(ids=sender_ids))
    return ReceiptResult(marked=marked, ignored=len(ids) - len(marked))


@transaction.atomic
def envelopes_mark_read(*, user_id: int, ids: list[int], now: datetime | None = None) -> ReceiptResult:
    """The recipient has shown envelopes to the user. Reading implies delivery: envelopes not
    yet acknowledged are marked delivered too (and that receipt sent first)."""
    now = now or timezone.now()
    rows = _own_rows(user_id=user_id, ids=ids, unset="read_at")
    if not rows:
        return ReceiptResult(marked=[], ignored=len(ids))
    marked = [row[0] for row in rows]
    undelivered = [row for row in rows if row[2] is None]
    if undelivered:
        Envelope.objects.filter(id__in=[row[0] for row in undelivered]).update(**_delivered_fields(now))
        for sender_id, sender_ids in _by_sender(undelivered).items():
            events.publish_on_commit([sender_id], events.delivered_event(ids=sender_ids))
    Envelope.objects.filter(id__in=marked).update(read_at=now)
    for sender_id, sender_ids in _by_sender(rows).items():
        events.publish_on_commit([sender_id], events.read_event(ids=sender_ids))
    return ReceiptResult(marked=marked, ignored=len(ids) - len(marked))


def typing_recipient(*, sender, to_email: str) -> int:
    """The id of the contact a typing indicator may be relayed to (nothing is stored)."""
    recipient_id = _recipient_id(sender_id=sender.pk, to_email=to_email)
    if not _are_contacts(user_id=sender.pk, other_id=recipient_id):
        raise NotAContact()
    return recipient_id


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
    deleted, _ = expired.delete()
    logger.info("messages purged bodies_erased=%s expired_deleted=%s", erased, deleted)
    return PurgeResult(bodies_erased=erased, expired_deleted=deleted)
