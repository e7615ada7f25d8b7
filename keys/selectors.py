"""Reads of key material, scoped to one user, and the operators' audit."""

import base64
import binascii
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from accounts.models import Device
from contacts.selectors import related_by_email
from groups.selectors import co_member_by_email
from keys import validation
from keys.errors import InvalidKeyMaterial
from keys.models import ONE_TIME_PREKEYS_LOW, ONE_TIME_PREKEYS_MAX_UNUSED, IdentityKey, OneTimePreKey, SignedPreKey


def fingerprint(public_key: str) -> str:
    """A short, readable fingerprint of a stored public key for operators (not the safety
    number users compare: that one is computed by the clients over both identity keys)."""
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        return "(not base64)"
    digest = hashlib.sha256(raw).hexdigest()[:20]
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def identity_key_fingerprint(*, user) -> str | None:
    key = IdentityKey.objects.filter(user=user).values_list("public_key", flat=True).first()
    return None if key is None else fingerprint(key)


def one_time_prekeys_unused_count(*, user) -> int:
    """Unused one-time prekeys of all the account's devices."""
    return OneTimePreKey.objects.filter(user=user, claimed_at__isnull=True).count()


def identity_key_of(*, user_id: int) -> str | None:
    return IdentityKey.objects.filter(user_id=user_id).values_list("public_key", flat=True).first()


def identity_key_for(*, viewer_id: int, email: str) -> str | None:
    """The identity key of the user with this email, if `viewer_id` is a contact, has a
    pending request with them (contacts.selectors.are_related) or shares a group with them;
    else None, whatever the reason, so the lookup reveals nothing about strangers."""
    other = related_by_email(user_id=viewer_id, email=email) or co_member_by_email(user_id=viewer_id, email=email)
    return None if other is None else identity_key_of(user_id=other.id)


def signed_prekey_max_age() -> timedelta:
    return timedelta(days=settings.SIGNED_PREKEY_MAX_AGE_DAYS)


@dataclass(frozen=True)
class PreKeyStatus:
    identity_key: str | None
    count: int
    low_threshold: int
    max_unused: int
    signed_prekey_id: int | None
    signed_prekey_created_at: datetime | None
    signed_prekey_age_seconds: int | None
    signed_prekey_max_age_seconds: int


def prekey_status(*, user_id: int, device_id: int, now: datetime | None = None) -> PreKeyStatus:
    """What a device needs to decide whether to upload one-time prekeys or rotate its signed
    prekey (its own keys), and whether its identity key is still the account's (the user may
    have started over on another device)."""
    now = now or timezone.now()
    device = {"device__user_id": user_id, "device__device_id": device_id, "device__removed_at__isnull": True}
    current = SignedPreKey.objects.filter(is_current=True, **device).values_list("key_id", "created_at").first()
    key_id, created_at = current if current else (None, None)
    return PreKeyStatus(
        identity_key=IdentityKey.objects.filter(user_id=user_id).values_list("public_key", flat=True).first(),
        count=OneTimePreKey.objects.filter(claimed_at__isnull=True, **device).count(),
        low_threshold=ONE_TIME_PREKEYS_LOW,
        max_unused=ONE_TIME_PREKEYS_MAX_UNUSED,
        signed_prekey_id=key_id,
        signed_prekey_created_at=created_at,
        signed_prekey_age_seconds=None if created_at is None else max(0, int((now - created_at).total_seconds())),
        signed_prekey_max_age_seconds=int(signed_prekey_max_age().total_seconds()),
    )


# --- the operators' audit (manage.py audit_prekeys) ---------------------------------------

# Problem codes, in the order they are reported.
NO_ONE_TIME_PREKEYS = "no_one_time_prekeys"
ONE_TIME_PREKEYS_LOW_PROBLEM = "one_time_prekeys_low"
NO_SIGNED_PREKEY = "no_signed_prekey"
SIGNED_PREKEY_STALE = "signed_prekey_stale"
BAD_SIGNATURE = "bad_signature"
INVALID_IDENTITY_KEY = "invalid_identity_key"
DUPLICATE_KEY_IDS = "duplicate_key_ids"
DUPLICATE_PUBLIC_KEYS = "duplicate_public_keys"
PROBLEMS = (
    NO_ONE_TIME_PREKEYS,
    ONE_TIME_PREKEYS_LOW_PROBLEM,
    NO_SIGNED_PREKEY,
    SIGNED_PREKEY_STALE,
    BAD_SIGNATURE,
    INVALID_IDENTITY_KEY,
    DUPLICATE_KEY_IDS,
    DUPLICATE_PUBLIC_KEYS,
)


@dataclass
class PreKeyAudit:
    user_id: int
    email: str
    device_id: int
    unused_one_time_prekeys: int = 0
    signed_prekey_id: int | None = None
    signed_prekey_age_days: float | None = None
    problems: list[str] = field(default_factory=list)


def _signature_valid(identity_raw: bytes | None, public_key: str, signature: str) -> bool:
    if identity_raw is None:
        return False
    try:
        prekey = validation.validate_x25519_public_key(public_key, what="signed prekey")
        validation.verify_prekey_signature(identity_raw, prekey, signature)
    except InvalidKeyMaterial:
        return False
    return True


def _identity_raw(identity_key: str) -> tuple[bytes | None, bool]:
    """The identity key's raw bytes (None if it does not even decode) and whether it passes
    the full validation."""
    try:
        return validation.validate_ed25519_public_key(identity_key), True
    except InvalidKeyMaterial:
        pass
    try:
        return validation.decode_base64(identity_key, length=validation.KEY_LENGTH), False
    except InvalidKeyMaterial:
        return None, False


def prekeys_audit(*, email: str | None = None, now: datetime | None = None) -> list[PreKeyAudit]:
    """Check the stored keys of every active device of every active account that has an
    identity key (or of one account), one line per device: one-time prekey supply against
    ONE_TIME_PREKEYS_LOW, the current signed prekey's age against SIGNED_PREKEY_MAX_AGE_DAYS,
    every stored signed prekey's signature re-verified under the account's identity key (and
    the identity key re-validated), and duplicate key ids or public keys within a device (the
    constraints forbid duplicate ids; the audit checks them anyway, for databases restored from
    elsewhere). A fixed number of queries, whatever the user count.
    """
    now = now or timezone.now()
    max_age = signed_prekey_max_age()
    accounts = {"user__is_active": True, "user__identity_key__isnull": False}
    if email is not None:
        accounts["user__email"] = email
    devices = (
        Device.objects.filter(removed_at__isnull=True, **accounts)
        .select_related("user__identity_key")
        .order_by("user__email", "device_id")
    )
    audits = {}
    identity_keys = {}
    for device in devices:
        audits[device.pk] = PreKeyAudit(user_id=device.user_id, email=device.user.email, device_id=device.device_id)
        identity_keys[device.pk] = device.user.identity_key.public_key
    key_filter = {"device_id__in": list(audits)}

    unused = (
        OneTimePreKey.objects.filter(claimed_at__isnull=True, **key_filter)
        .values("device_id")
        .annotate(n=Count("id"))
        .values_list("device_id", "n")
    )
    for device_pk, count in unused:
        audits[device_pk].unused_one_time_prekeys = count

    signed = defaultdict(list)
    for row in SignedPreKey.objects.filter(**key_filter).values(
        "device_id", "key_id", "public_key", "signature", "created_at", "is_current"
    ):
        signed[row["device_id"]].append(row)

    duplicate_ids = set()
    for model in (OneTimePreKey, SignedPreKey):
        base = model.objects.filter(**key_filter)
        duplicate_ids |= set(
            base.values("device_id", "key_id")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .values_list("device_id", flat=True)
        )
    otpk_keys = OneTimePreKey.objects.filter(**key_filter).values("device_id", "public_key")
    duplicate_keys = set(otpk_keys.annotate(n=Count("id")).filter(n__gt=1).values_list("device_id", flat=True))

    for device_pk, audit in audits.items():
        problems = audit.problems
        if audit.unused_one_time_prekeys == 0:
            problems.append(NO_ONE_TIME_PREKEYS)
        elif audit.unused_one_time_prekeys < ONE_TIME_PREKEYS_LOW:
            problems.append(ONE_TIME_PREKEYS_LOW_PROBLEM)
        current = [row for row in signed[device_pk] if row["is_current"]]
        if not current:
            problems.append(NO_SIGNED_PREKEY)
        else:
            audit.signed_prekey_id = current[0]["key_id"]
            age = now - current[0]["created_at"]
            audit.signed_prekey_age_days = round(age.total_seconds() / 86400, 1)
            if age > max_age:
                problems.append(SIGNED_PREKEY_STALE)
        identity_raw, identity_valid = _identity_raw(identity_keys[device_pk])
        if not all(_signature_valid(identity_raw, row["public_key"], row["signature"]) for row in signed[device_pk]):
            problems.append(BAD_SIGNATURE)
        if not identity_valid:
            problems.append(INVALID_IDENTITY_KEY)
        if device_pk in duplicate_ids:
            problems.append(DUPLICATE_KEY_IDS)
        if device_pk in duplicate_keys:
            problems.append(DUPLICATE_PUBLIC_KEYS)
    return list(audits.values())
