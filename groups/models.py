"""Groups: who is in which group, with which role. Nothing else about a group is stored.

The server needs the members of a group to authorise its messages and to fan them out, and the
admins to authorise removals; the group's name and settings are end-to-end encrypted between
the members (docs/PROTOCOL.md part III) and never reach it.

A group's `epoch` counts the changes of who receives its messages: it grows by one when a member
joins, is removed or leaves, and when a member's device is linked or unlinked. A client sends
a group message for the epoch it knows; the server refuses a message for an older one, so the
sender learns the change before its next message (and hands its sender key to a new device, or
replaces it after a removal) instead of after it. `GroupChange` keeps one row per membership
change, so a member who was offline can show "Alice added Carol" where it happened.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Group(models.Model):
    id = models.BigAutoField(primary_key=True)
    # The id clients use; random, so a group's id says nothing about when or by whom it was made.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    epoch = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"group {self.uid}"


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "admin"
        MEMBER = "member", "member"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="group_memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["group", "joined_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["group", "user"], name="groups_membership_unique"),
            models.CheckConstraint(condition=models.Q(role__in=["admin", "member"]), name="groups_membership_role"),
        ]
        indexes = [models.Index(fields=["user", "group"], name="groups_membership_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.group_id} ({self.role})"


class GroupChange(models.Model):
    """One change of a group's membership, as every member's client shows it."""

    class Kind(models.TextChoices):
        CREATED = "created", "created"
        ADDED = "added", "added"
        REMOVED = "removed", "removed"
        LEFT = "left", "left"
        ADMIN = "admin", "admin"

    id = models.BigAutoField(primary_key=True)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="changes")
    # The epoch the group has after this change (a new admin does not change the epoch).
    epoch = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Who did it (NULL: an operator, or an account deleted since).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Whom it is about, as emails (the members of a new group, the one added, removed, ...).
    subjects = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["group", "id"], name="groups_change_group")]

    def __str__(self) -> str:
        return f"{self.kind} in {self.group_id} at epoch {self.epoch}"
