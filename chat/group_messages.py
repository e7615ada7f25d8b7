"""Group messages (docs/PROTOCOL.md section 23): stored once, delivered as one small copy per
member device, counted per member for receipts.

The rules, and why:
- Only a member may send, and only for the group's current epoch (`stale_epoch` otherwise): the
  epoch moves whenever the group's member devices change, so a sender that sends for the
  current epoch has seen the current devices and (section 22's rule) handed its sender key to
  the new ones and replaced it after a removal. The server cannot check the cryptography; it
  makes sure nobody sends without having been told.
- The body is stored once (`GroupBody`); each receiving device gets an envelope row carrying
  only its own sender key distribution, if any, so a message to a hundred members costs one
  body and a hundred small rows, all inserted in the batch's transaction or none.
- `keys` may name only current member devices other than the sending one (`invalid_keys`): a
  client cannot use a group to put envelopes in a stranger's queue.
- Receipts count members, not devices: a member's first device to acknowledge (or read) its
  copy counts, the others do not; the sender's devices get the counts (`group_receipts`).
- The storage quota of the sender counts every copy, as the receipts subtract every copy. The
  recipients' quotas are not checked: one member's full mailbox must not stop a whole group
  (their copies still count in their mailbox).
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import normalize_email
from chat import events, sql, validation
from chat.errors import ChatError, ClientIdReused, InvalidKeys, NoDevices, NotAContact, QuotaExceeded, StaleEpoch
from chat.models import Envelope, GroupBody
from groups.errors import GroupNotFound
from groups.models import Membership
from realtime import bus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupKey:
    email: str  # normalized
    device: int
    kind: str
    body: str


@dataclass(frozen=True)
class GroupSendRequest:
    sender_id: int
    sender_email: str
    sender_device: int
    client_id: uuid.UUID
    group: uuid.UUID
    epoch: int
    body: str
    keys: tuple[GroupKey, ...] = ()


@dataclass(frozen=True)
class GroupSent:
    """What the batch answers for a group message: its id, and whether it is new."""

    id: int
    client_id: uuid.UUID
    created: bool


def group_send_parse(frame: dict, *, sender, sender_device: int) -> GroupSendRequest:
    """A `group_send` frame or the body of POST groups/messages, checked field by field."""
    client_id = validation.client_id_parse(frame.get("client_id"))
    group = validation.group_id_parse(frame.get("group"))
    epoch = validation.epoch_parse(frame.get("epoch"))
    body = validation.body_parse(frame.get("body"))
    validation.body_size_check(body)
    keys = tuple(GroupKey(*key) for key in validation.group_keys_parse(frame.get("keys", [])))
    return GroupSendRequest(sender.pk, sender.email, sender_device, client_id, group, epoch, body, keys)


class _Copy(NamedTuple):
    recipient_id: int
    device: int
    key: GroupKey | None
    copies: int  # of this recipient
    size: int


@dataclass(frozen=True)
class _BatchReads:
    """What the batch's group sends read once, up front (chat.sql, one statement each): the
    locked groups, their members and devices, the earlier uses of the sends' (sender,
    client_id) pairs, and the senders' undelivered bytes. Nothing the batch does changes them:
    the groups are locked (membership and device changes lock them too), and the counters are
    written only at the end of the batch (`usage`, sql.usage_add)."""

    groups: dict[uuid.UUID, sql.LockedGroup]
    members: dict[int, sql.GroupMembers]
    earlier: dict[tuple[int, uuid.UUID], sql.EarlierGroupSend]
    sent_bytes: dict[int, int]


def group_sends_store(requests: list[GroupSendRequest], usage: dict[int, list[int]]) -> list[GroupSent | ChatError]:
    """Store these group messages within the caller's transaction (the socket's batch), each
    decided alone; the copies' bytes are added to `usage` like envelope_send's.

    A batch of sends to one group costs five statements whatever its size, and each message
    three more (its first copy, the other copies in one INSERT, its body): the ORM's six
    queries per message cost more CPU in Django's compiler than in the database."""
    groups = sql.groups_locked({r.group for r in requests})
    quota = settings.MESSAGE_QUOTA_SENDER_BYTES
    reads = _BatchReads(
        groups,
        sql.group_members([group.pk for group in groups.values()]),
        sql.group_sends_earlier({(r.sender_id, r.client_id) for r in requests}),
        sql.pending_bytes(sender_ids={r.sender_id for r in requests}, recipient_emails=[])[0] if quota else {},
    )
    stored_now: dict[tuple[int, uuid.UUID], sql.EarlierGroupSend] = {}
    results: list[GroupSent | ChatError] = []
    for request in requests:
        try:
            results.append(_store_one(request, reads, usage, stored_now))
        except (ChatError, GroupNotFound) as error:
            results.append(error)
    return results


def _store_one(request: GroupSendRequest, reads: _BatchReads, usage: dict, stored_now: dict) -> GroupSent:
    """One group message. The group's row is locked until the batch commits, as every membership
    change and every member's device change locks it (groups.services): a removal either commits
    first, and this send reads the new epoch and is refused (`stale_epoch`), or waits for this
    send, which then went to the members of before. So no message the sender encrypted before it
    knew of a removal is stored for the removed member after the removal."""
    group = reads.groups.get(request.group)
    members = reads.members.get(group.pk) if group else None
    if members is None or request.sender_id not in members.ids.values():
        raise GroupNotFound()
    key = (request.sender_id, request.client_id)
    earlier = stored_now.get(key) or reads.earlier.get(key)
    if earlier is not None:
        if earlier.group_id != group.pk:
            raise ClientIdReused()
        return GroupSent(earlier.message_id, request.client_id, created=False)
    if request.epoch != group.epoch:
        raise StaleEpoch(epoch=group.epoch)
    copies, recipients = _copies(request, members)
    size = sum(copy.size for copy in copies)
    quota = settings.MESSAGE_QUOTA_SENDER_BYTES
    if quota and reads.sent_bytes.get(request.sender_id, 0) + usage.get(request.sender_id, [0, 0])[0] + size > quota:
        raise QuotaExceeded(
            f"Your undelivered messages have reached the storage limit ({quota} bytes); "
            "you can send more as they are delivered."
        )
    usage.setdefault(request.sender_id, [0, 0])[0] += size
    for copy in copies:
        usage.setdefault(copy.recipient_id, [0, 0])[1] += copy.size
    message_id, copy_ids, now = _insert(request, group, copies)
    sql.group_body_insert(
        GroupBody(
            message_id=message_id,
            group_id=group.pk,
            sender_id=request.sender_id,
            client_id=request.client_id,
            epoch=group.epoch,
            body=request.body,
            size=len(request.body.encode("utf-8")),
            recipients=recipients,
            remaining=len(copies),
            created_at=now,
        )
    )
    stored_now[key] = sql.EarlierGroupSend(message_id, group.pk)
    event = events.group_message_event(
        id=message_id,
        message_id=message_id,
        client_id=request.client_id,
        group=str(request.group),
        epoch=group.epoch,
        sender_email=request.sender_email,
        sender_device=request.sender_device,
        body=request.body,
        key=None,
        sent_at=now,
    )
    for copy, copy_id in zip(copies, copy_ids, strict=True):
        key_entry = (copy.key.kind, copy.key.body) if copy.key else None
        bus.publish_on_commit([copy.recipient_id], events.group_copy_for_device(event, copy_id, key_entry, copy.device))
    logger.debug("group message stored id=%s group=%s copies=%s", message_id, group.pk, len(copies))
    return GroupSent(message_id, request.client_id, created=True)


def _copies(request: GroupSendRequest, members: sql.GroupMembers) -> tuple[list[_Copy], int]:
    """A copy for every active device of every active member but the sending device, with its
    key entry; and the number of members (other than the sender) it goes to."""
    devices = members.devices
    if request.sender_device not in devices.get(request.sender_id, ()):
        raise NotAContact("This device was removed from the account.", code="device_removed")
    targets = {
        (user_id, device)
        for user_id in members.ids.values()
        for device in devices.get(user_id, ())
        if (user_id, device) != (request.sender_id, request.sender_device)
    }
    if not targets:
        raise NoDevices("Nobody else in this group has a device that can receive messages.")
    keys = {}
    for entry in request.keys:
        target = (members.ids.get(normalize_email(entry.email)), entry.device)
        if target not in targets:
            raise InvalidKeys()
        keys[target] = entry
    per_recipient: dict[int, int] = {}
    for user_id, _ in targets:
        per_recipient[user_id] = per_recipient.get(user_id, 0) + 1
    body_size = len(request.body.encode("utf-8"))
    copies = [
        _Copy(
            user_id,
            device,
            keys.get((user_id, device)),
            per_recipient[user_id],
            body_size + (len(keys[(user_id, device)].body) if (user_id, device) in keys else 0),
        )
        # The first copy (its id is the message id) goes to another member when there is one.
        for user_id, device in sorted(targets, key=lambda t: (t[0] == request.sender_id, t))
    ]
    return copies, len([user_id for user_id in per_recipient if user_id != request.sender_id])


def _insert(request: GroupSendRequest, group: sql.LockedGroup, copies: list[_Copy]) -> tuple[int, list[int], datetime]:
    """The copies' envelope rows: the first alone (its id is the message id), then all the
    others in one INSERT (sql.envelopes_insert)."""
    now = timezone.now()

    def row(index: int, copy: _Copy, message_id: int | None) -> sql.NewEnvelope:
        own = copy.recipient_id == request.sender_id
        return sql.NewEnvelope(
            request.client_id,
            request.sender_id,
            request.sender_device,
            copy.recipient_id,
            copy.device,
            index,
            copy.copies,
            message_id,
            request.sender_id if own else None,
            copy.key.kind if copy.key else Envelope.Kind.MESSAGE,
            copy.key.body if copy.key else "",
            copy.size,
            group.pk,
        )

    [first] = sql.envelopes_insert([row(0, copies[0], None)], now)
    rest = [row(index, copy, first) for index, copy in enumerate(copies) if index]
    others = sql.envelopes_insert(rest, now) if rest else []
    return first, [first, *others], now


# --- receipts ------------------------------------------------------------------------------


def receipts_apply(*, delivered: list[int], read: list[int], rows: dict[int, sql.ReceiptRow]) -> None:
    """The copies of group messages marked delivered and read in this batch (the envelope rows
    are updated by the caller): count each member once per message, erase bodies nobody waits
    for any more, and tell each sender where its messages stand.

    The sender is told when a count reaches a milestone (1, 2, 4, 8, ... members, and all of
    them), not at every copy: a message to a hundred members would otherwise cost its sender a
    hundred pushes, one per acknowledgement; its client asks (`group_receipts`) for the exact
    counts whenever it shows them."""
    if not delivered and not read:
        return
    counts: dict[int, list[int]] = {}  # message id -> [delivered members, read members, copies delivered]
    for column, marked, slot in (("delivered_at", delivered, 0), ("read_at", read, 1)):
        for message_id, _ in _first_per_member(marked, rows, column):
            counts.setdefault(message_id, [0, 0, 0])[slot] += 1
    for pk in delivered:
        counts.setdefault(rows[pk].message_id, [0, 0, 0])[2] += 1
    sql.group_counts_add({pk: tuple(c) for pk, c in counts.items()}, erase=not settings.KEEP_DELIVERED_BODIES)
    changed = {message_id: c for message_id, c in counts.items() if c[0] or c[1]}
    if not changed:
        return
    by_sender: dict[int, list[tuple[int, int, int, int]]] = {}
    for row in sql.group_counts(changed):
        new_delivered, new_read, _ = changed[row.message_id]
        if _milestone(row.delivered - new_delivered, row.delivered, row.recipients) or _milestone(
            row.read - new_read, row.read, row.recipients
        ):
            by_sender.setdefault(row.sender_id, []).append((row.message_id, row.delivered, row.read, row.recipients))
    for sender_id, receipts in by_sender.items():
        bus.publish_on_commit([sender_id], events.group_receipts_event(receipts=sorted(receipts)))


def _milestone(before: int, after: int, total: int) -> bool:
    """Whether a count going from `before` to `after` reached a power of two or `total`."""
    if after <= before:
        return False
    return after >= total or (1 << (after.bit_length() - 1)) > before


def _first_per_member(marked: list[int], rows: dict[int, sql.ReceiptRow], column: str) -> set[tuple[int, int]]:
    """(message id, member) pairs this batch marks first: own copies never count, and a copy of
    a member with several copies counts only if no other copy of theirs was marked before."""
    pairs = {(rows[pk].message_id, rows[pk].recipient_id) for pk in marked if rows[pk].peer_id is None}
    shared = [pk for pk in marked if rows[pk].peer_id is None and rows[pk].copies > 1]
    if shared:
        ids = {rows[pk].message_id for pk in shared}
        before = Envelope.objects.filter(
            Q(id__in=ids) | Q(message_id__in=ids),
            recipient_id__in={rows[pk].recipient_id for pk in shared},
            **{f"{column}__isnull": False},
        ).exclude(id__in=marked)
        for pk, message_id, recipient_id in before.values_list("id", "message_id", "recipient_id"):
            pairs.discard((message_id or pk, recipient_id))
    return pairs


def typing_recipients(*, sender, group: uuid.UUID) -> list[int]:
    """The other members of a group `sender` is a member of (GroupNotFound otherwise)."""
    members = list(Membership.objects.filter(group__uid=group, user__is_active=True).values_list("user_id", flat=True))
    if sender.pk not in members:
        raise GroupNotFound()
    return [member for member in members if member != sender.pk]


def group_receipts_of(*, user_id: int, ids: list[int]) -> dict:
    """Where the group messages `user_id` sent, among `ids`, stand (others are left out)."""
    rows = GroupBody.objects.filter(sender_id=user_id, message_id__in=ids).values_list(
        "message_id", "delivered", "read", "recipients"
    )
    return events.group_receipts_event(receipts=sorted(rows))


def copies_removed(copies: dict[int, int]) -> None:
    """{message id: undelivered copies deleted} (their device was unlinked): fewer copies wait."""
    for message_id, count in copies.items():
        GroupBody.objects.filter(message_id=message_id).update(remaining=F("remaining") - count)
