"""Message envelopes: the only thing the chat app stores.

The server relays ciphertext it cannot read; an envelope's body is an opaque string chosen by
the sender's client. The server's rules are about who may write to whom and about delivery:
the row is the message (the realtime push is only a nudge), `id` defines delivery order, and
`(sender, client_id)` makes a resend idempotent.
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
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="received_envelopes")
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
            # "Undelivered for recipient, in order": equality on recipient and delivered_at
            # (NULL), then the id range scan. Partial indexes would be smaller but MariaDB
            # has none. `size` makes it covering for the recipient's storage quota (a sum
            # over the undelivered rows) and the socket's flow control (ids and sizes).
            models.Index(fields=["recipient", "delivered_at", "id", "size"], name="chat_env_recipient_queue"),
            # The sender's storage quota: the sum of its undelivered sizes, from the index
            # alone (delivered rows stay for receipts, so the sender's rows keep growing).
            models.Index(fields=["sender", "delivered_at", "size"], name="chat_env_sender_pending"),
            # Retention: expired undelivered envelopes, bodies left to erase.
            models.Index(fields=["delivered_at", "created_at"], name="chat_env_retention"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["sender", "client_id"], name="chat_envelope_sender_client_id_unique"),
            models.CheckConstraint(condition=models.Q(kind__in=["prekey", "message"]), name="chat_envelope_kind_valid"),
            models.CheckConstraint(condition=~models.Q(sender=models.F("recipient")), name="chat_envelope_not_to_self"),
        ]

    def __str__(self) -> str:
        return f"envelope {self.id} {self.sender_id}->{self.recipient_id}"
