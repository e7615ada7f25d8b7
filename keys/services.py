"""Writes of key material: registration, device set-up, uploads, rotation, bundle claims and
purging.

Every input here was validated by `keys.serializers` (canonical base64, point checks, the
registration signature); the services enforce the rules that need the database, and verify
again whatever depends on stored state (a rotated signed prekey is verified under the stored
identity key).

Per user, writes are serialised on the user's IdentityKey row (`select_for_update`), so an
upload, a rotation and a device reset never interleave; bundle claims lock only the one-time
prekey row they hand out (`skip_locked`), so concurrent fetches of one user's bundle run in
parallel and each gets a different key.

Nothing here logs a key: only user ids and counts.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import account_change_log
from accounts.models import User, normalize_email
from accounts.ratelimit import rate_limit_hit
from accounts.services import user_build, user_create
from accounts.sessions import TokenPair, sessions_end, tokens_issue
from contacts.selectors import contact_by_email, contact_ids, pending_counterparty_ids
from keys import events, validation
from keys.errors import ContactNotFound, KeyIdReused, NoDeviceKeys, TooManyPreKeys, WrongPassword
from keys.models import ONE_TIME_PREKEYS_LOW, ONE_TIME_PREKEYS_MAX_UNUSED, IdentityKey, OneTimePreKey, SignedPreKey
from realtime import bus

logger = logging.getLogger(__name__)

IDENTITY_RESET_LOG_MESSAGE = "identity key reset"


@dataclass(frozen=True)
class PreKeyBundle:
    identity_key: str
    signed_prekey: dict
    one_time_prekey: dict | None


@dataclass(frozen=True)
class IdentityResetResult:
    count: int  # unused one-time prekeys
    tokens: TokenPair  # the new device's session


@dataclass(frozen=True)
class PurgeResult:
    one_time_prekeys: int
    signed_prekeys: int


# --- events (keys.events, published through realtime.bus) ----------------------------------


def _announce_prekeys_low(*, owner_id: int, remaining: int) -> None:
    bus.publish_on_commit([owner_id], events.prekeys_low_event(remaining=remaining))


def _announce_identity_changed(*, user: User, identity_key: str, user_ids: list[int]) -> None:
    if user_ids:
        event = events.identity_changed_event(email=user.email, identity_key=identity_key)
        bus.publish_on_commit(user_ids, event)


# --- device keys ---------------------------------------------------------------------------


def _lock_identity(user_id: int) -> None:
    """Serialise this user's key writes; refuse them when there is no identity key yet."""
    if IdentityKey.objects.select_for_update().filter(user_id=user_id).values_list("id", flat=True).first() is None:
        raise NoDeviceKeys()


@transaction.atomic
def device_keys_set(*, user, identity_key: str, signed_prekey: dict, one_time_prekeys: Iterable[dict]) -> None:
    """Install a full set of device keys for `user` (registration, or a new device).

    A new identity replaces the old one completely: the old signed prekeys and every
    one-time prekey of the old identity are dropped, because their private halves belong to
    a device that is no longer the account's. Claimed one-time prekey ids stay reserved only
    within one identity; a new device starts its own id space.

    Replacing an identity (whatever calls this) also ends every session of the account, in
    the same transaction: the browser that held the old keys is signed out (every token
    refused, sockets closed) if and only if the keys changed. And it is recorded in the admin
    history of the account, by the account itself, so operators see every reset.
    """
    _, created = IdentityKey.objects.update_or_create(
        user=user, defaults={"public_key": identity_key, "created_at": timezone.now()}
    )
    if not created:
        sessions_end(user_id=user.id, reason="identity key reset")
        account_change_log(user=user, actor_id=user.id, message=IDENTITY_RESET_LOG_MESSAGE)
    SignedPreKey.objects.filter(user=user).delete()
    OneTimePreKey.objects.filter(user=user).delete()
    SignedPreKey.objects.create(
        user=user,
        key_id=signed_prekey["key_id"],
        public_key=signed_prekey["public_key"],
        signature=signed_prekey["signature"],
    )
    one_time_prekeys_add(user=user, one_time_prekeys=one_time_prekeys)


def identity_reset(
    *, user: User, password: str, identity_key: str, signed_prekey: dict, one_time_prekeys: Iterable[dict]
) -> IdentityResetResult:
    """Replace the account's device keys with those of a new browser. Needs the password
    (a stolen session alone must not be able to swap the keys every contact encrypts to),
    is rate limited per user, and tells every contact and pending counterparty, after the
    commit, that the identity key changed (clients show it; safety numbers change).

    One transaction ends every session of the account and records the reset
    (device_keys_set), and issues the new browser's tokens, of the new session generation:
    the old browser is signed out and the new one signed in by the same commit, never one
    without the other."""
    # Outside the transaction: a wrong password must still consume a token.
    rate_limit_hit("identity_reset", str(user.id))
    if not user.check_password(password):
        logger.warning("identity reset with a wrong password user=%s", user.id)
        raise WrongPassword()
    with transaction.atomic():
        device_keys_set(
            user=user, identity_key=identity_key, signed_prekey=signed_prekey, one_time_prekeys=one_time_prekeys
        )
        notified = sorted(set(contact_ids(user_id=user.id)) | set(pending_counterparty_ids(user_id=user.id)))
        _announce_identity_changed(user=user, identity_key=identity_key, user_ids=notified)
        tokens = tokens_issue(user=user)
        count = OneTimePreKey.objects.filter(user=user, claimed_at__isnull=True).count()
    logger.info("identity key reset user=%s; %s users notified", user.id, len(notified))
    return IdentityResetResult(count=count, tokens=tokens)


# --- registration --------------------------------------------------------------------------


def registration_rate_limit(*, email: str, ip: str) -> None:
    """Count a registration attempt per client address and per email (normalised)."""
    rate_limit_hit("register_ip", ip)
    rate_limit_hit("register_email", normalize_email(email))


def account_register(
    *, email: str, password: str, identity_key: str, signed_prekey: dict, one_time_prekeys: list[dict]
) -> User:
    """Create an account with its public device keys in one transaction: either both exist
    or neither does. The password is hashed before that transaction starts (see
    accounts.services.user_build)."""
    user = user_build(email=email, password=password)
    with transaction.atomic():
        user_create(user=user)
        device_keys_set(
            user=user, identity_key=identity_key, signed_prekey=signed_prekey, one_time_prekeys=one_time_prekeys
        )
    logger.info("user registered id=%s", user.id)
    return user


# --- one-time prekeys ----------------------------------------------------------------------


def one_time_prekeys_add(*, user, one_time_prekeys: Iterable[dict]) -> int:
    """Store new one-time prekeys. A key id this user ever uploaded (claimed or not, as long
    as the row exists) refuses the whole upload, never silently overwritten (the seed
    overwrote private keys by reusing ids); so does going above ONE_TIME_PREKEYS_MAX_UNUSED
    unused keys. Returns the number of unused one-time prekeys afterwards."""
    rows = [OneTimePreKey(user=user, key_id=k["key_id"], public_key=k["public_key"]) for k in one_time_prekeys]
    ids = [row.key_id for row in rows]
    with transaction.atomic():
        _lock_identity(user.id)
        if OneTimePreKey.objects.filter(user=user, key_id__in=ids).exists():
            raise KeyIdReused()
        unused = OneTimePreKey.objects.filter(user=user, claimed_at__isnull=True).count()
        if unused + len(rows) > ONE_TIME_PREKEYS_MAX_UNUSED:
            raise TooManyPreKeys(
                f"At most {ONE_TIME_PREKEYS_MAX_UNUSED} unused one-time prekeys may be stored; "
                f"you have {unused}, so at most {max(0, ONE_TIME_PREKEYS_MAX_UNUSED - unused)} more fit."
            )
        try:
            with transaction.atomic():
                OneTimePreKey.objects.bulk_create(rows)
        except IntegrityError:
            # A concurrent upload took one of the ids between our check and the insert.
            raise KeyIdReused() from None
        return unused + len(rows)


@transaction.atomic
def one_time_prekey_claim(*, owner_id: int) -> tuple[OneTimePreKey | None, int]:
    """Hand out the owner's oldest unused one-time prekey, at most once ever, and return it
    with the number of unused keys left. None when there is none left.

    On MariaDB the row is taken with SELECT ... FOR UPDATE SKIP LOCKED: a concurrent claim
    skips a row another transaction is handing out and takes the next one, so N concurrent
    claims get N distinct keys without waiting on each other (the prototype handed 20
    concurrent claims 11 distinct keys). SQLite has no row locks; its IMMEDIATE transactions
    serialise the whole claim instead. The conditional UPDATE is a second guard: a row that
    someone else claimed in between is never handed out twice.
    """
    now = timezone.now()
    unclaimed = OneTimePreKey.objects.filter(user_id=owner_id, claimed_at__isnull=True)
    claimed = None
    for _ in range(3):
        candidate = unclaimed.select_for_update(skip_locked=True).order_by("id").first()
        if candidate is None:
            break
        if OneTimePreKey.objects.filter(pk=candidate.pk, claimed_at__isnull=True).update(claimed_at=now) == 1:
            candidate.claimed_at = now
            claimed = candidate
            break
    return claimed, unclaimed.count()


def prekey_bundle_claim(*, requester: User, email: str) -> PreKeyBundle:
    """The key bundle a requester needs to start a session with one of their contacts:
    identity key, current signed prekey and one one-time prekey (claimed for good), or no
    one-time prekey when the owner has none left (X3DH then runs without DH4).

    Only accepted contacts get one: anyone else gets the same 404 as for an unknown email,
    before the rate limit is consulted. Fetches are rate limited per (requester, owner) pair
    with Signal's bucket, so one contact cannot drain another's one-time prekeys. The owner
    is told (`prekeys_low`) whenever a fetch leaves fewer than ONE_TIME_PREKEYS_LOW unused.
    """
    owner = contact_by_email(user_id=requester.id, email=email)
    if owner is None:
        raise ContactNotFound()
    rate_limit_hit("prekey_bundle", f"{requester.id}:{owner.id}")
    return _bundle_claim(owner_id=owner.id)


@transaction.atomic
def _bundle_claim(*, owner_id: int) -> PreKeyBundle:
    # The one-time prekey is claimed first: its row lock makes a concurrent device reset
    # (which deletes the owner's one-time prekeys) wait for this transaction, so the
    # identity and signed prekey read next belong to the same device as the one-time key.
    # They are read in one statement, so they are consistent with each other in any case.
    one_time, remaining = one_time_prekey_claim(owner_id=owner_id)
    current = (
        SignedPreKey.objects.filter(user_id=owner_id, is_current=True)
        .values_list("key_id", "public_key", "signature", "user__identity_key__public_key")
        .first()
    )
    if current is None or current[3] is None:
        raise ContactNotFound()  # no device keys (an operator account): nothing to hand out
    key_id, public_key, signature, identity_key = current
    if remaining < ONE_TIME_PREKEYS_LOW:
        _announce_prekeys_low(owner_id=owner_id, remaining=remaining)
    return PreKeyBundle(
        identity_key=identity_key,
        signed_prekey={"key_id": key_id, "public_key": public_key, "signature": signature},
        one_time_prekey=None if one_time is None else {"key_id": one_time.key_id, "public_key": one_time.public_key},
    )


# --- signed prekeys ------------------------------------------------------------------------


@transaction.atomic
def signed_prekey_rotate(*, user: User, key_id: int, public_key: str, signature: str) -> SignedPreKey:
    """Make a new signed prekey current. Its signature is verified under the stored identity
    key (a key the identity did not sign would let the server, or whoever holds a session,
    substitute a key). The previous current key is retired, not deleted: first messages
    already encrypted to it may still arrive, and clients keep its private half for the same
    grace period (SIGNED_PREKEY_GRACE_DAYS); retired keys past it are deleted here. A key id
    still on record for this user is refused, never overwritten."""
    identity = IdentityKey.objects.select_for_update().filter(user_id=user.id).values_list("public_key", flat=True)
    identity_key = identity.first()
    if identity_key is None:
        raise NoDeviceKeys()
    validation.verify_prekey_signature(
        validation.decode_base64(identity_key, length=validation.KEY_LENGTH),
        validation.decode_base64(public_key, length=validation.KEY_LENGTH, what="signed prekey"),
        signature,
    )
    now = timezone.now()
    grace = timedelta(days=settings.SIGNED_PREKEY_GRACE_DAYS)
    SignedPreKey.objects.filter(user_id=user.id, retired_at__lt=now - grace).delete()
    if SignedPreKey.objects.filter(user_id=user.id, key_id=key_id).exists():
        raise KeyIdReused()
    SignedPreKey.objects.filter(user_id=user.id, is_current=True).update(is_current=None, retired_at=now)
    try:
        with transaction.atomic():
            signed = SignedPreKey.objects.create(
                user=user, key_id=key_id, public_key=public_key, signature=signature, created_at=now
            )
    except IntegrityError:
        raise KeyIdReused() from None
    logger.info("signed prekey rotated user=%s", user.id)
    return signed


# --- operators -----------------------------------------------------------------------------


def prekeys_purge(*, older_than_days: int, dry_run: bool = False, now: datetime | None = None) -> PurgeResult:
    """Delete one-time prekeys claimed, and signed prekeys retired, more than
    `older_than_days` ago. The server never needs them again (a claimed key is never handed
    out twice; a retired one is never in a bundle); the rows only record which ids were used,
    so after a purge those ids are no longer refused on upload."""
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    one_time = OneTimePreKey.objects.filter(claimed_at__lt=cutoff)
    signed = SignedPreKey.objects.filter(retired_at__lt=cutoff)
    if dry_run:
        return PurgeResult(one_time_prekeys=one_time.count(), signed_prekeys=signed.count())
    with transaction.atomic():
        one_time_deleted, _ = one_time.delete()
        signed_deleted, _ = signed.delete()
    logger.info("purged %s one-time and %s signed prekeys", one_time_deleted, signed_deleted)
    return PurgeResult(one_time_prekeys=one_time_deleted, signed_prekeys=signed_deleted)
