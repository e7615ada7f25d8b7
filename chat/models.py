"""Message envelopes: the only thing the chat app stores.

The server relays ciphertext it cannot read; an envelope's body is an opaque string chosen by
the sender's client. The server's rules are about who may write to whom and about delivery:
the row is the message (the realtime push is only a nudge), `id` defines delivery order, and
`(sender, client_id)` makes a resend idempotent.

Devices (docs/PROTOCOL.md section 17): an envelope is one *copy* of a message, addressed to one
device of the recipient (or, for an `own` copy, to another device of the sender, with `peer` the
contact the message went to). A message sent as N copies is N rows inserted in one transaction;
the first (`copy_index` 0, always a copy for the recipient) has `message_id` NULL and its own id
is the message id; the others name it in `message_id`. A version-1 message is one copy, so its
envelope id is its message id, as before.

Groups (docs/PROTOCOL.md section 23): a group message is one `GroupBody` (the ciphertext, stored
once) and one envelope per receiving device, with `group` set; such an envelope's `body` is only
the sender key distribution for that device, if the sender included one, and `copies` counts
that recipient's copies of the message (so a receipt knows whether another device of the same
member may have marked the message already).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Envelope(models.Model):
    class Kind(models.TextChoices):
        # A first message: carries the X3DH header the recipient needs to set up the session.
        PREKEY = "prekey", "prekey"
        MESSAGE = "message", "message"

    # Monotonic: delivery order is id order.
    id = models.BigAutoField(primary_key=True)
    # Chosen by the sender's client; a resend after a lost `sent` reuses it.
    client_id = models.UUIDField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sent_envelopes")
    sender_device = models.IntegerField(default=1)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="received_envelopes")
    # The device this copy is for: only it receives and acknowledges it.
    recipient_device = models.IntegerField(default=1)
    # NULL for the first copy of a message (its id is the message id), else the first copy's id.
    message_id = models.BigIntegerField(null=True, blank=True)
    copy_index = models.PositiveSmallIntegerField(default=0)
    # How many copies the message has (1 for a version-1 message): receipts look for the other
    # copies of a message only when it has any.
    copies = models.PositiveSmallIntegerField(default=1)
    # The group of a group message's copy (NULL for a message between two accounts).
    group = models.ForeignKey("groups.Group", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # Set on `own` copies only (recipient == sender): the contact the message was sent to (for a
    # group message, the sender itself).
    peer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Ciphertext, opaque to the server. Erased ("") once delivered unless KEEP_DELIVERED_BODIES.
    body = models.TextField(blank=True)
    # Size of the body in bytes as received; kept after the body is erased (admin, quotas).
    size = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # "Undelivered for this device, in order": equality on recipient, device and
            # delivered_at (NULL), then the id range scan. Partial indexes would be smaller
            # but MariaDB has none.
            models.Index(fields=["recipient", "recipient_device", "delivered_at", "id"], name="chat_env_device_queue"),
            # The copies of a message (receipts by message id).
            models.Index(fields=["message_id"], name="chat_env_message"),
            # Retention: expired undelivered envelopes, bodies left to erase.
            models.Index(fields=["delivered_at", "created_at"], name="chat_env_retention"),
        ]
        constraints = [
            # A resend's guard: two concurrent inserts of one message collide on its first copy.
            models.UniqueConstraint(
                fields=["sender", "client_id", "copy_index"], name="chat_envelope_sender_client_id_copy_unique"
            ),
            models.CheckConstraint(condition=models.Q(kind__in=["prekey", "message"]), name="chat_envelope_kind_valid"),
            # Only an `own` copy goes to its sender, and it names the contact it was sent to.
            models.CheckConstraint(
                condition=~models.Q(sender=models.F("recipient")) | models.Q(peer__isnull=False),
                name="chat_envelope_not_to_self_but_own_copies",
            ),
        ]

    def __str__(self) -> str:
        return f"envelope {self.id} {self.sender_id}->{self.recipient_id}"


class GroupBody(models.Model):
    """The ciphertext of a group message, stored once for all its copies, and where its
    receipts stand. `message_id` is the id of the message's first copy."""

    message_id = models.BigIntegerField(primary_key=True)
    group = models.ForeignKey("groups.Group", on_delete=models.CASCADE, related_name="+")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    client_id = models.UUIDField()
    epoch = models.PositiveIntegerField()
    # Opaque; erased ("") once every copy was delivered unless KEEP_DELIVERED_BODIES.
    body = models.TextField(blank=True)
    size = models.PositiveIntegerField(default=0)
    # Members the message went to (the sender's account not counted), and how many of them
    # have it delivered (any of their devices acknowledged) and read.
    recipients = models.PositiveIntegerField()
    delivered = models.PositiveIntegerField(default=0)
    read = models.PositiveIntegerField(default=0)
    # Copies not delivered yet (own copies included): the body is erased when none is left.
    remaining = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A resend's guard, as for envelopes.
            models.UniqueConstraint(fields=["sender", "client_id"], name="chat_groupbody_sender_client_id_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="chat_groupbody_created")]

    def __str__(self) -> str:
        return f"group message {self.message_id}"


class MailboxUsage(models.Model):
    """Body bytes of a user's undelivered envelopes, as sender and as recipient: what the
    storage quotas (MESSAGE_QUOTA_*_BYTES) compare against.

    Kept as counters, not summed from the envelopes: a sum reads every undelivered row of the
    batch's users, and a flooded mailbox (tens of thousands of small envelopes) made that tens
    of milliseconds in every batch that touched it, paid by every user of the process. The
    transaction that stores or delivers envelopes adjusts the counters in the same commit
    (chat.sql.usage_add), and `purge_messages` subtracts what it deletes."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="mailbox_usage"
    )
    # Undelivered bytes this user sent (waiting for any recipient).
    sent_bytes = models.BigIntegerField(default=0)
    # Undelivered bytes waiting for this user (from any sender).
    waiting_bytes = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"mailbox usage of {self.user_id}: sent {self.sent_bytes}, waiting {self.waiting_bytes}"
