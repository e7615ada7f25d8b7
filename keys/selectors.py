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

from contacts.selectors import related_by_email
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
    return OneTimePreKey.objects.filter(user=user, claimed_at__isnull=True).count()


def identity_key_of(*, user_id: int) -> str | None:
    return IdentityKey.objects.filter(user_id=user_id).values_list("public_key", flat=True).first()


def identity_key_for(*, viewer_id: int, email: str) -> str | None:
    """The identity key of the user with this email, if `viewer_id` is a contact or has a
    pending request with them (contacts.selectors.are_related); else None, whatever the
    reason, so the lookup reveals nothing about strangers."""
    other = related_by_email(user_id=viewer_id, email=email)
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


def prekey_status(*, user_id: int, now: datetime | None = None) -> PreKeyStatus:
    """What a client needs to decide whether to upload one-time prekeys or rotate its signed
    prekey, and whether its identity key is still the account's (another browser may have
    replaced it)."""
    now = now or timezone.now()
    current = SignedPreKey.objects.filter(user_id=user_id, is_current=True).values_list("key_id", "created_at").first()
    key_id, created_at = current if current else (None, None)
    return PreKeyStatus(
        identity_key=IdentityKey.objects.filter(user_id=user_id).values_list("public_key", flat=True).first(),
        count=OneTimePreKey.objects.filter(user_id=user_id, claimed_at__isnull=True).count(),
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
    """Check the stored keys of every active account that has device keys (or of one account):
    one-time prekey supply against ONE_TIME_PREKEYS_LOW, the current signed prekey's age
    against SIGNED_PREKEY_MAX_AGE_DAYS, every stored signed prekey's signature re-verified
    under the identity key (and the identity key re-validated), and duplicate key ids or
    public keys (the constraints forbid duplicate ids; the audit checks them anyway, for
    databases restored from elsewhere). A fixed number of queries, whatever the user count.
    """
    now = now or timezone.now()
    max_age = signed_prekey_max_age()
    identities = IdentityKey.objects.filter(user__is_active=True).select_related("user").order_by("user__email")
    user_filter = {"user__is_active": True}
    if email is not None:
        identities = identities.filter(user__email=email)
        user_filter["user__email"] = email
    identities = list(identities)
    audits = {row.user_id: PreKeyAudit(user_id=row.user_id, email=row.user.email) for row in identities}
    identity_keys = {row.user_id: row.public_key for row in identities}

    unused = (
        OneTimePreKey.objects.filter(claimed_at__isnull=True, **user_filter)
        .values("user_id")
        .annotate(n=Count("id"))
        .values_list("user_id", "n")
    )
    for user_id, count in unused:
        if user_id in audits:
            audits[user_id].unused_one_time_prekeys = count

    signed = defaultdict(list)
    for row in SignedPreKey.objects.filter(**user_filter).values(
        "user_id", "key_id", "public_key", "signature", "created_at", "is_current"
    ):
        signed[row["user_id"]].append(row)

    duplicate_ids = set()
    duplicate_keys = set()
    for model in (OneTimePreKey, SignedPreKey):
        base = model.objects.filter(**user_filter)
        duplicate_ids |= set(
            base.values("user_id", "key_id").annotate(n=Count("id")).filter(n__gt=1).values_list("user_id", flat=True)
        )
    otpk_keys = OneTimePreKey.objects.filter(**user_filter).values("user_id", "public_key")
    duplicate_keys |= set(otpk_keys.annotate(n=Count("id")).filter(n__gt=1).values_list("user_id", flat=True))

    for user_id, audit in audits.items():
        problems = audit.problems
        if audit.unused_one_time_prekeys == 0:
            problems.append(NO_ONE_TIME_PREKEYS)
        elif audit.unused_one_time_prekeys < ONE_TIME_PREKEYS_LOW:
            problems.append(ONE_TIME_PREKEYS_LOW_PROBLEM)
        current = [row for row in signed[user_id] if row["is_current"]]
        if not current:
            problems.append(NO_SIGNED_PREKEY)
        else:
            audit.signed_prekey_id = current[0]["key_id"]
            age = now - current[0]["created_at"]
            audit.signed_prekey_age_days = round(age.total_seconds() / 86400, 1)
            if age > max_age:
                problems.append(SIGNED_PREKEY_STALE)
        identity_raw, identity_valid = _identity_raw(identity_keys[user_id])
        if not all(_signature_valid(identity_raw, row["public_key"], row["signature"]) for row in signed[user_id]):
            problems.append(BAD_SIGNATURE)
        if not identity_valid:
            problems.append(INVALID_IDENTITY_KEY)
        if user_id in duplicate_ids:
            problems.append(DUPLICATE_KEY_IDS)
        if user_id in duplicate_keys:
            problems.append(DUPLICATE_PUBLIC_KEYS)
    return list(audits.values())
