"""Public key material of each user: the server is a key directory and never holds a
private key. Keys are stored as canonical standard base64 of their raw bytes."""

from django.conf import settings
from django.db import models
from django.utils import timezone

# Key ids are 1..2**31-1 (docs/PROTOCOL.md; the envelope parser refuses 0). They travel as
# JSON numbers and are stored in signed 32-bit columns on every backend.
MIN_KEY_ID = 1
MAX_KEY_ID = 2**31 - 1
# Below this many unused one-time prekeys the owner is asked to upload more (`prekeys_low`
# event, `GET /api/v1/keys/prekeys/count`, `manage.py audit_prekeys`).
ONE_TIME_PREKEYS_LOW = 10
# Unused one-time prekeys a user may have stored at once: enough for a burst of new
# contacts, small enough that one account cannot fill the table.
ONE_TIME_PREKEYS_MAX_UNUSED = 500


class IdentityKey(models.Model):
    """The account's long-term Ed25519 public key, shared by all its devices (one per account;
    replaced when the user starts over, docs/PROTOCOL.md section 15)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="identity_key")
    public_key = models.CharField(max_length=44)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"identity key of {self.user_id}"


class SignedPreKey(models.Model):
    """An X25519 prekey of one device, signed by the account's identity key. The newest
    non-retired one is the device's current one; a replaced one is retired (retired_at set) and
    kept for a grace period so that first messages already encrypted to it can still be
    answered. `user` is always the device's account (kept for the per-account reads)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signed_prekeys")
    device = models.ForeignKey("accounts.Device", on_delete=models.CASCADE, related_name="signed_prekeys")
    key_id = models.IntegerField()
    public_key = models.CharField(max_length=44)
    signature = models.CharField(max_length=88)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)
    # True for the current key, NULL once retired (never False): with the unique index on
    # (device, is_current) the database admits at most one current signed prekey per device.
    # MariaDB has no partial unique index; NULLs never collide in a unique index.
    is_current = models.BooleanField(null=True, default=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["device", "key_id"], name="keys_signedprekey_device_key_id_unique"),
            models.UniqueConstraint(fields=["device", "is_current"], name="keys_signedprekey_one_current_per_device"),
            # `is_current IS NOT NULL` is spelled out because `NULL = TRUE` is unknown, and a
            # CHECK whose result is unknown passes: without it a row that is neither current nor
            # retired would be accepted.
            models.CheckConstraint(
                condition=models.Q(is_current__isnull=False, is_current=True, retired_at__isnull=True)
                | models.Q(is_current__isnull=True, retired_at__isnull=False),
                name="keys_signedprekey_current_xor_retired_v2",
            ),
            models.CheckConstraint(
                condition=models.Q(key_id__gte=MIN_KEY_ID) & models.Q(key_id__lte=MAX_KEY_ID),
                name="keys_signedprekey_key_id_range",
            ),
        ]

    def __str__(self) -> str:
        return f"signed prekey {self.key_id} of device {self.device_id}"


class OneTimePreKey(models.Model):
    """An X25519 one-time prekey of one device. Handed out at most once (claimed_at set
    atomically when a bundle is fetched); ids are never reused within a device, so a claimed
    id can never be overwritten by a refill."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="one_time_prekeys")
    device = models.ForeignKey("accounts.Device", on_delete=models.CASCADE, related_name="one_time_prekeys")
    key_id = models.IntegerField()
    public_key = models.CharField(max_length=44)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["device", "key_id"], name="keys_onetimeprekey_device_key_id_unique"),
            models.CheckConstraint(
                condition=models.Q(key_id__gte=MIN_KEY_ID) & models.Q(key_id__lte=MAX_KEY_ID),
                name="keys_onetimeprekey_key_id_range",
            ),
        ]
        indexes = [
            # "The oldest unclaimed key of this device": the bundle claim's access path.
            models.Index(fields=["device", "claimed_at", "id"], name="keys_otpk_device_unclaimed_idx"),
        ]

    def __str__(self) -> str:
        return f"one-time prekey {self.key_id} of device {self.device_id}"


# Device linking (docs/PROTOCOL.md section 18): how long a link lives, and how many may be open
# per account at once.
LINK_LIFETIME_SECONDS = 600
LINKS_OPEN_MAX = 3


class DeviceLink(models.Model):
    """The short-lived mailbox of one device link: the new device opens it; an existing device
    of the same account leaves its ephemeral public key and an encrypted box in it; the new
    device reads them. The server cannot open the box (it is encrypted to an ephemeral key
    that only the new device holds, and a substituted key changes the verification code both
    users compare), so it only has to keep the mailbox to the account that opened it."""

    link_id = models.CharField(max_length=24, unique=True)  # base64 of 16 random bytes
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_links")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    offer_ephemeral_key = models.CharField(max_length=44, blank=True)
    offer_ciphertext = models.TextField(blank=True)
    offered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="keys_devicelink_user_expiry")]

    def __str__(self) -> str:
        return f"device link of {self.user_id}"
