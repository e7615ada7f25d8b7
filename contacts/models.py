"""Contact requests: who may talk to whom.

One row per unordered pair of users, whatever its direction and state. The pair is stored as
plain columns (`user_low` < `user_high`) under a unique index, because MariaDB has neither
expression nor partial unique indexes: that makes a second request for the same pair (in
either direction) impossible in the database, not only in code. `requester`/`recipient` say
who asked whom; check constraints tie them to the pair, so a self-request or a row whose
pair columns disagree with its direction cannot be stored either.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class ContactRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        # Visible only to the recipient: the requester keeps seeing "pending" (see
        # contacts.services for why a rejection is never revealed).
        REJECTED = "rejected"

    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact_requests_sent"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact_requests_received"
    )
    user_low = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_high = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user_low", "user_high"], name="contacts_request_pair_unique"),
            # Also rules out self-requests: low < high means two different users.
            models.CheckConstraint(condition=Q(user_low__lt=F("user_high")), name="contacts_request_pair_ordered"),
            models.CheckConstraint(
                condition=(Q(requester=F("user_low")) & Q(recipient=F("user_high")))
                | (Q(requester=F("user_high")) & Q(recipient=F("user_low"))),
                name="contacts_request_pair_matches_direction",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "accepted", "rejected"]), name="contacts_request_status_valid"
            ),
            # An answered request has an answer time; a pending one has none.
            models.CheckConstraint(
                condition=(Q(status="pending") & Q(responded_at__isnull=True))
                | (~Q(status="pending") & Q(responded_at__isnull=False)),
                name="contacts_request_responded_at_iff_answered",
            ),
        ]
        indexes = [
            # "My pending incoming requests" and "my pending outgoing requests".
            models.Index(fields=["recipient", "status"], name="contacts_request_recipient_idx"),
            models.Index(fields=["requester", "status"], name="contacts_request_requester_idx"),
        ]

    def __str__(self) -> str:
        return f"contact request {self.requester_id} -> {self.recipient_id} ({self.status})"

    @staticmethod
    def ordered_pair(user_id: int, other_id: int) -> tuple[int, int]:
        return (user_id, other_id) if user_id < other_id else (other_id, user_id)
