"""Writes of key material: registration, starting over, devices, uploads, rotation, bundle
claims and purging.

The account has one identity key; each device (accounts.models.Device) has its own signed
prekey and one-time prekeys (docs/PROTOCOL.md sections 14 and 16). A device uploads and rotates
only its own keys: the device comes from the caller's token, never from the request body.

Every input here was validated by `keys.serializers` (canonical base64, point checks, the
registration signature); the services enforce the rules that need the database, and verify
again whatever depends on stored state (a rotated signed prekey is verified under the stored
identity key).

Per account, writes are serialised on the account's IdentityKey row (`select_for_update`), so
an upload, a rotation, an unlink and a start-over never interleave; bundle claims lock only the
one-time prekey rows they hand out (`skip_locked`), so concurrent fetches of one account's
bundles run in parallel and each gets different keys.

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
from accounts.devices import device_active, device_create, devices_active, devices_removed
from accounts.errors import DeviceNotFound
from accounts.models import Device, User, normalize_email
from accounts.ratelimit import rate_limit_hit
from accounts.services import user_build, user_create
from accounts.sessions import TokenPair, device_revoked_publish, sessions_end, tokens_issue
from contacts.selectors import contact_by_email, contact_ids, pending_counterparty_ids
from groups.selectors import co_member_by_email
from groups.services import member_devices_changed
from keys import events, links, validation
from keys.errors import (
    ContactNotFound,
    IdentityKeyMismatch,
    KeyIdReused,
    LinkNotOffered,
    NoDeviceKeys,
    TooManyPreKeys,
    WrongPassword,
)
from keys.models import (
    ONE_TIME_PREKEYS_LOW,
    ONE_TIME_PREKEYS_MAX_UNUSED,
    DeviceLink,
    IdentityKey,
    OneTimePreKey,
    SignedPreKey,
)
from realtime import bus

logger = logging.getLogger(__name__)

IDENTITY_RESET_LOG_MESSAGE = "identity key reset"


@dataclass(frozen=True)
class PreKeyBundle:
    identity_key: str
    signed_prekey: dict
    one_time_prekey: dict | None


@dataclass(frozen=True)
class DeviceBundle:
    device_id: int
    signed_prekey: dict
    one_time_prekey: dict | None


@dataclass(frozen=True)
class DeviceBundles:
    identity_key: str
    devices: list[DeviceBundle]


@dataclass(frozen=True)
class DeviceIds:
    identity_key: str
    device_ids: list[int]


@dataclass(frozen=True)
class IdentityResetResult:
    count: int  # unused one-time prekeys
    tokens: TokenPair  # the new device's session
    device: Device


@dataclass(frozen=True)
class PurgeResult:
    one_time_prekeys: int
    signed_prekeys: int


# --- events (keys.events, published through realtime.bus) ----------------------------------


def _announce_prekeys_low(*, owner_id: int, device_id: int, remaining: int) -> None:
    bus.publish_on_commit([owner_id], events.prekeys_low_event(device_id=device_id, remaining=remaining))


def _announce_devices_changed(*, user: User) -> None:
    """The account's own sockets and every contact's learn that its device set changed."""
    user_ids = sorted({user.id, *contact_ids(user_id=user.id)})
    bus.publish_on_commit(user_ids, events.devices_changed_event(email=user.email))


def _announce_identity_changed(*, user: User, identity_key: str, user_ids: list[int]) -> None:
    if user_ids:
        event = events.identity_changed_event(email=user.email, identity_key=identity_key)
        bus.publish_on_commit(user_ids, event)


# --- device keys ---------------------------------------------------------------------------


def _lock_identity(user_id: int) -> None:
    """Serialise this user's key writes; refuse them when there is no identity key yet."""
    if IdentityKey.objects.select_for_update().filter(user_id=user_id).values_list("id", flat=True).first() is None:
        raise NoDeviceKeys()


def _device_of(*, user_id: int, device_id: int) -> Device:
    """The caller's device: its token named it and authentication checked it was active; a
    removal committed in between makes it NoDeviceKeys."""
    device = device_active(user_id=user_id, device_id=device_id)
    if device is None:
        raise NoDeviceKeys()
    return device


def _device_prekeys_delete(device_pks: list[int]) -> None:
    SignedPreKey.objects.filter(device_id__in=device_pks).delete()
    OneTimePreKey.objects.filter(device_id__in=device_pks).delete()


@transaction.atomic
def device_keys_set(
    *,
    user,
    device_name: str | None = None,
    identity_key: str,
    signed_prekey: dict,
    one_time_prekeys: Iterable[dict],
) -> Device:
    """Install the account's identity key and a new device with its keys (registration, or
    starting over), and return the device.

    A new identity replaces the old one completely: every other device of the account is
    removed (a tombstone keeps its number) with all its prekeys, because their private halves
    and sessions belong to the old identity. Replacing an identity (whatever calls this) also
    ends every session of the account, in the same transaction: every device that held the
    old keys is signed out (every token refused, sockets closed) if and only if the keys
    changed. And it is recorded in the admin history of the account, by the account itself,
    so operators see every reset.
    """
    _, created = IdentityKey.objects.update_or_create(
        user=user, defaults={"public_key": identity_key, "created_at": timezone.now()}
    )
    if not created:
        sessions_end(user_id=user.id, reason="identity key reset")
        account_change_log(user=user, actor_id=user.id, message=IDENTITY_RESET_LOG_MESSAGE)
    old = devices_active(user_id=user.id)
    now = timezone.now()
    Device.objects.filter(pk__in=[d.pk for d in old]).update(removed_at=now)
    _device_prekeys_delete([d.pk for d in old])
    # Their sockets close with every other socket of the account (sessions_end above).
    if old:
        devices_removed.send(sender=Device, user_id=user.id, device_ids=[d.device_id for d in old])
    device = device_create(user=user, name=device_name, cap=False)
    SignedPreKey.objects.create(
        user=user,
        device=device,
        key_id=signed_prekey["key_id"],
        public_key=signed_prekey["public_key"],
        signature=signed_prekey["signature"],
    )
    one_time_prekeys_add(user=user, device_id=device.device_id, one_time_prekeys=one_time_prekeys)
    return device


def identity_reset(
    *,
    user: User,
    password: str,
    identity_key: str,
    signed_prekey: dict,
    one_time_prekeys: Iterable[dict],
    device_name: str | None = None,
) -> IdentityResetResult:
    """Start over (docs/PROTOCOL.md section 15): a new identity key and a new device replace
    every device of the account. Needs the password (a stolen session alone must not be able
    to swap the keys every contact encrypts to), is rate limited per user, and tells every
    contact and pending counterparty, after the commit, that the identity key changed
    (clients show it; safety numbers change).

    One transaction ends every session of the account, removes the other devices and records
    the reset (device_keys_set), and issues the new device's tokens, of the new session
    generation: the old devices are signed out and the new one signed in by the same commit,
    never one without the other."""
    # Outside the transaction: a wrong password must still consume a token.
    rate_limit_hit("identity_reset", str(user.id))
    if not user.check_password(password):
        logger.warning("identity reset with a wrong password user=%s", user.id)
        raise WrongPassword()
    with transaction.atomic():
        device = device_keys_set(
            user=user,
            device_name=device_name,
            identity_key=identity_key,
            signed_prekey=signed_prekey,
            one_time_prekeys=one_time_prekeys,
        )
        notified = sorted(set(contact_ids(user_id=user.id)) | set(pending_counterparty_ids(user_id=user.id)))
        _announce_identity_changed(user=user, identity_key=identity_key, user_ids=notified)
        tokens = tokens_issue(user=user, device=device)
        count = OneTimePreKey.objects.filter(device=device, claimed_at__isnull=True).count()
    logger.info("identity key reset user=%s device=%s; %s users notified", user.id, device.device_id, len(notified))
    return IdentityResetResult(count=count, tokens=tokens, device=device)


# --- registration --------------------------------------------------------------------------


def registration_rate_limit(*, email: str, ip: str) -> None:
    """Count a registration attempt per client address and per email (normalised)."""
    rate_limit_hit("register_ip", ip)
    rate_limit_hit("register_email", normalize_email(email))


def account_register(
    *,
    email: str,
    password: str,
    identity_key: str,
    signed_prekey: dict,
    one_time_prekeys: list[dict],
    device_name: str | None = None,
) -> tuple[User, Device]:
    """Create an account with its first device (number 1) and their public keys in one
    transaction: either all exist or none does. The password is hashed before that
    transaction starts (see accounts.services.user_build)."""
    user = user_build(email=email, password=password)
    with transaction.atomic():
        user_create(user=user)
        device = device_keys_set(
            user=user,
            device_name=device_name,
            identity_key=identity_key,
            signed_prekey=signed_prekey,
            one_time_prekeys=one_time_prekeys,
        )
    logger.info("user registered id=%s", user.id)
    return user, device


# --- one-time prekeys ----------------------------------------------------------------------


def one_time_prekeys_add(*, user, device_id: int, one_time_prekeys: Iterable[dict]) -> int:
    """Store new one-time prekeys of one device. A key id this device ever uploaded (claimed
    or not, as long as the row exists) refuses the whole upload, never silently overwritten
    (the seed overwrote private keys by reusing ids); so does going above
    ONE_TIME_PREKEYS_MAX_UNUSED unused keys of the device. Returns the number of unused
    one-time prekeys of the device afterwards."""
    with transaction.atomic():
        _lock_identity(user.id)
        device = _device_of(user_id=user.id, device_id=device_id)
        rows = [
            OneTimePreKey(user=user, device=device, key_id=k["key_id"], public_key=k["public_key"])
            for k in one_time_prekeys
        ]
        ids = [row.key_id for row in rows]
        if OneTimePreKey.objects.filter(device=device, key_id__in=ids).exists():
            raise KeyIdReused()
        unused = OneTimePreKey.objects.filter(device=device, claimed_at__isnull=True).count()
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
def one_time_prekey_claim(*, device_pk: int) -> tuple[OneTimePreKey | None, int]:
    """Hand out a device's oldest unused one-time prekey, at most once ever, and return it
    with the number of unused keys left. None when there is none left.

    On MariaDB the row is taken with SELECT ... FOR UPDATE SKIP LOCKED: a concurrent claim
    skips a row another transaction is handing out and takes the next one, so N concurrent
    claims get N distinct keys without waiting on each other (the prototype handed 20
    concurrent claims 11 distinct keys). SQLite has no row locks; its IMMEDIATE transactions
    serialise the whole claim instead. The conditional UPDATE is a second guard: a row that
    someone else claimed in between is never handed out twice.
    """
    now = timezone.now()
    unclaimed = OneTimePreKey.objects.filter(device_id=device_pk, claimed_at__isnull=True)
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


def _key_owner(*, requester: User, email: str) -> User:
    """The account whose keys `requester` asks for: an accepted contact, a member of a group
    the requester is in (members hand each other their sender keys over pairwise sessions,
    docs/PROTOCOL.md section 22, whether or not they are contacts), or the requester itself
    (to open sessions with its own other devices). Anyone else is the same 404 as an unknown
    email, before any rate limit is consulted."""
    if normalize_email(email) == requester.email:
        return requester
    owner = contact_by_email(user_id=requester.id, email=email) or co_member_by_email(user_id=requester.id, email=email)
    if owner is None:
        raise ContactNotFound()
    return owner


def prekey_bundle_claim(*, requester: User, email: str) -> PreKeyBundle:
    """The version-1 bundle (docs/PROTOCOL.md section 3): that of the contact's
    lowest-numbered active device, which is the contact's only device for as long as it has
    one. Same rules as `prekey_bundles_claim`."""
    owner = contact_by_email(user_id=requester.id, email=email)
    if owner is None:
        raise ContactNotFound()
    rate_limit_hit("prekey_bundle", f"{requester.id}:{owner.id}")
    bundles = _bundles_claim(owner_id=owner.id, devices=devices_active(user_id=owner.id)[:1])
    if not bundles.devices:
        raise ContactNotFound()  # no device keys (an operator account): nothing to hand out
    device = bundles.devices[0]
    return PreKeyBundle(
        identity_key=bundles.identity_key, signed_prekey=device.signed_prekey, one_time_prekey=device.one_time_prekey
    )


def prekey_bundles_claim(*, requester: User, requester_device_id: int, email: str, device_ids=None) -> DeviceBundles:
    """The bundles a requester needs to start sessions with the devices of a contact (or of
    its own other devices; docs/PROTOCOL.md section 16): the account's identity key and, per
    active device (or per listed one that is active), its current signed prekey and one
    one-time prekey, claimed for good (or none when the device has none left: X3DH then runs
    without DH4).

    Only accepted contacts (and the account itself) get them: anyone else gets the same 404
    as for an unknown email, before the rate limit is consulted. Fetches are rate limited per
    (requester, owner) pair with Signal's bucket, one hit per request whatever the number of
    devices, so one contact cannot drain another's one-time prekeys. A device's owner is told
    (`prekeys_low`) whenever a fetch leaves it fewer than ONE_TIME_PREKEYS_LOW unused.
    """
    owner = _key_owner(requester=requester, email=email)
    rate_limit_hit("prekey_bundle", f"{requester.id}:{owner.id}")
    devices = devices_active(user_id=owner.id)
    if owner.id == requester.id:
        devices = [d for d in devices if d.device_id != requester_device_id]
    if device_ids is not None:
        wanted = set(device_ids)
        devices = [d for d in devices if d.device_id in wanted]
    bundles = _bundles_claim(owner_id=owner.id, devices=devices)
    if not bundles.identity_key:
        raise ContactNotFound()
    return bundles


def device_ids_of(*, requester: User, email: str) -> DeviceIds:
    """The identity key and active device ids of a contact (or of the requester's own
    account, its own device included); claims nothing. Same access rule as the bundles."""
    owner = _key_owner(requester=requester, email=email)
    identity_key = IdentityKey.objects.filter(user_id=owner.id).values_list("public_key", flat=True).first()
    if identity_key is None:
        raise ContactNotFound()
    return DeviceIds(identity_key=identity_key, device_ids=[d.device_id for d in devices_active(user_id=owner.id)])


@transaction.atomic
def _bundles_claim(*, owner_id: int, devices: list[Device]) -> DeviceBundles:
    # The one-time prekeys are claimed first: their row locks make a concurrent unlink or
    # start-over (which delete prekeys) wait for this transaction, so the identity and signed
    # prekeys read next belong to the same devices as the one-time keys.
    claimed = {}
    for device in devices:
        one_time, remaining = one_time_prekey_claim(device_pk=device.pk)
        claimed[device.pk] = one_time
        if remaining < ONE_TIME_PREKEYS_LOW:
            _announce_prekeys_low(owner_id=owner_id, device_id=device.device_id, remaining=remaining)
    identity_key = IdentityKey.objects.filter(user_id=owner_id).values_list("public_key", flat=True).first()
    current = {
        device_pk: (key_id, public_key, signature)
        for device_pk, key_id, public_key, signature in SignedPreKey.objects.filter(
            device_id__in=list(claimed), is_current=True, device__removed_at__isnull=True
        ).values_list("device_id", "key_id", "public_key", "signature")
    }
    bundles = []
    for device in devices:
        if device.pk not in current or identity_key is None:
            continue  # removed meanwhile, or no current signed prekey: nothing to hand out
        key_id, public_key, signature = current[device.pk]
        one_time = claimed[device.pk]
        bundles.append(
            DeviceBundle(
                device_id=device.device_id,
                signed_prekey={"key_id": key_id, "public_key": public_key, "signature": signature},
                one_time_prekey=None
                if one_time is None
                else {"key_id": one_time.key_id, "public_key": one_time.public_key},
            )
        )
    return DeviceBundles(identity_key=identity_key or "", devices=bundles)


# --- signed prekeys ------------------------------------------------------------------------


@transaction.atomic
def signed_prekey_rotate(*, user: User, device_id: int, key_id: int, public_key: str, signature: str) -> SignedPreKey:
    """Make a new signed prekey of the caller's device current. Its signature is verified
    under the stored identity
    key (a key the identity did not sign would let the server, or whoever holds a session,
    substitute a key). The previous current key is retired, not deleted: first messages
    already encrypted to it may still arrive, and clients keep its private half for the same
    grace period (SIGNED_PREKEY_GRACE_DAYS); retired keys past it are deleted here. A key id
    still on record for this device is refused, never overwritten."""
    identity = IdentityKey.objects.select_for_update().filter(user_id=user.id).values_list("public_key", flat=True)
    identity_key = identity.first()
    if identity_key is None:
        raise NoDeviceKeys()
    device = _device_of(user_id=user.id, device_id=device_id)
    validation.verify_prekey_signature(
        validation.decode_base64(identity_key, length=validation.KEY_LENGTH),
        validation.decode_base64(public_key, length=validation.KEY_LENGTH, what="signed prekey"),
        signature,
    )
    now = timezone.now()
    grace = timedelta(days=settings.SIGNED_PREKEY_GRACE_DAYS)
    SignedPreKey.objects.filter(device=device, retired_at__lt=now - grace).delete()
    if SignedPreKey.objects.filter(device=device, key_id=key_id).exists():
        raise KeyIdReused()
    SignedPreKey.objects.filter(device=device, is_current=True).update(is_current=None, retired_at=now)
    try:
        with transaction.atomic():
            signed = SignedPreKey.objects.create(
                user=user, device=device, key_id=key_id, public_key=public_key, signature=signature, created_at=now
            )
    except IntegrityError:
        raise KeyIdReused() from None
    logger.info("signed prekey rotated user=%s device=%s", user.id, device_id)
    return signed


# --- devices -------------------------------------------------------------------------------


def device_unlink(*, user: User, device_id: int) -> None:
    """Remove a device of the account (docs/PROTOCOL.md section 19), the caller's own
    included: a tombstone keeps its number (never reused), its prekeys are deleted so no
    contact can start a session with it, its tokens are refused from the commit on
    (accounts.authentication: `device_removed`) and its sockets are closed. The account and
    its contacts are told (`devices_changed`); clients drop their sessions with it. Another
    account's device, a removed one and an unknown number are the same 404."""
    with transaction.atomic():
        _lock_identity(user.id)
        device = device_active(user_id=user.id, device_id=device_id)
        if device is None:
            raise DeviceNotFound()
        Device.objects.filter(pk=device.pk).update(removed_at=timezone.now())
        _device_prekeys_delete([device.pk])
        devices_removed.send(sender=Device, user_id=user.id, device_ids=[device_id])
        device_revoked_publish(user_id=user.id, device_id=device_id, generation=device.generation, removed=True)
        _announce_devices_changed(user=user)
    logger.info("device unlinked user=%s device=%s", user.id, device_id)


@dataclass(frozen=True)
class LinkedDevice:
    device: Device
    tokens: TokenPair  # the new device's session


def device_link_complete(
    *,
    user: User,
    link_id: str,
    device_name: str | None,
    identity_key: str,
    signed_prekey: dict,
    one_time_prekeys: Iterable[dict],
) -> LinkedDevice:
    """The last step of linking (docs/PROTOCOL.md section 18): the new device, holding the
    identity key it received through the link, becomes a device of the account with its own
    prekeys, and its session is bound to it.

    Refused unless the account's link was answered by one of its devices (the answer is what
    shows that an existing device took part: the password alone must not add a device) and the
    keys are signed by the account's own identity key (`identity_key_mismatch`: the new device
    would hold another account's key). The link is used up, the cap on devices holds
    (`too_many_devices`), the account's sockets and its contacts are told
    (`devices_changed`), and its groups get a new epoch. The device's keys were validated like
    a registration's (signature under `identity_key`)."""
    with transaction.atomic():
        _lock_identity(user.id)
        link = links.link_of(user_id=user.id, link_id=link_id)
        if link.offered_at is None:
            raise LinkNotOffered()
        stored_identity = IdentityKey.objects.filter(user=user).values_list("public_key", flat=True).first()
        if stored_identity != identity_key:
            raise IdentityKeyMismatch()
        device = device_create(user=user, name=device_name)
        SignedPreKey.objects.create(user=user, device=device, **signed_prekey)
        one_time_prekeys_add(user=user, device_id=device.device_id, one_time_prekeys=one_time_prekeys)
        DeviceLink.objects.filter(pk=link.pk).delete()
        _announce_devices_changed(user=user)
        member_devices_changed(user_id=user.id)  # its groups' senders hand their keys to it too
        tokens = tokens_issue(user=user, device=device)
    logger.info("device linked user=%s device=%s", user.id, device.device_id)
    return LinkedDevice(device=device, tokens=tokens)


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
