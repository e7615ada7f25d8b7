"""The devices of an account (docs/PROTOCOL.md sections 14 and 15): numbering, the cap, which
device a sign-in binds to, and renaming. Removing a device takes its keys with it, so that
use case is keys.services.device_unlink.

Device numbers are never reused: the next one is one more than the highest the account ever
had, tombstones included. New devices of one account are serialised on the account's row
(`select_for_update`), so two concurrent additions can neither take one number nor both slip
under the cap; the unique constraint on (user, device_id) is the second guard.
"""

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.dispatch import Signal
from django.utils import timezone

from accounts.errors import DeviceNotFound, TooManyDevices
from accounts.models import DEVICE_NAME_MAX_LENGTH, MAX_DEVICE_ID, MIN_DEVICE_ID, Device, User

DEFAULT_DEVICE_NAME = "Device"

# Sent inside the transaction that removes devices of an account (unlinking, starting over),
# with `user_id` and `device_ids`: apps above this one drop what was addressed to them (the
# chat app deletes their undelivered copies), in the same commit.
devices_removed = Signal()
# A login that does not say which device it is (a version-1 client) is told apart from one
# that says "none" (null).
DEVICE_ID_ABSENT = object()


@dataclass(frozen=True)
class DeviceInfo:
    id: int
    name: str
    created_at: datetime
    last_seen_at: datetime | None
    current: bool


def device_name_clean(name: str | None) -> str:
    """A device name as stored: trimmed, 1 to DEVICE_NAME_MAX_LENGTH characters, no control or
    format characters (they could reorder or hide the text around the name in a list).
    ValueError with the reason otherwise; None or blank is the default name."""
    if name is None or not name.strip():
        return DEFAULT_DEVICE_NAME
    name = name.strip()
    if len(name) > DEVICE_NAME_MAX_LENGTH:
        raise ValueError(f"A device name has at most {DEVICE_NAME_MAX_LENGTH} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for ch in name):
        raise ValueError("A device name may not contain control or invisible characters.")
    return name


def devices_active(*, user_id: int) -> list[Device]:
    return list(Device.objects.filter(user_id=user_id, removed_at__isnull=True).order_by("device_id"))


def device_active(*, user_id: int, device_id: int) -> Device | None:
    # A number outside the column's range (a path segment of 30 digits) is simply no device.
    if not MIN_DEVICE_ID <= device_id <= MAX_DEVICE_ID:
        return None
    return Device.objects.filter(user_id=user_id, device_id=device_id, removed_at__isnull=True).first()


def devices_list(*, user_id: int, current_device_id: int) -> list[DeviceInfo]:
    return [
        DeviceInfo(
            id=device.device_id,
            name=device.name,
            created_at=device.created_at,
            last_seen_at=device.last_seen_at,
            current=device.device_id == current_device_id,
        )
        for device in devices_active(user_id=user_id)
    ]


@transaction.atomic
def device_create(*, user: User, name: str | None, cap: bool = True) -> Device:
    """A new device of `user` with the next number. TooManyDevices when the account already
    has DEVICES_PER_ACCOUNT_MAX active devices (`cap=False`: start over, which removes every
    other device in the same transaction)."""
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
    devices = Device.objects.filter(user=user)
    if cap and devices.filter(removed_at__isnull=True).count() >= settings.DEVICES_PER_ACCOUNT_MAX:
        raise TooManyDevices()
    highest = devices.aggregate(highest=Max("device_id"))["highest"] or 0
    return Device.objects.create(user=user, device_id=highest + 1, name=device_name_clean(name))


def device_for_login(*, user: User, device_id) -> Device | None:
    """The device a sign-in binds to (docs/PROTOCOL.md section 15): the named device if it is
    an active device of the account; for a client that names none (DEVICE_ID_ABSENT, a
    version-1 client) the account's only active device when it has exactly one; else None, a
    pending session. A removed or unknown number is not an error: the client learns from
    `device: null` that it was unlinked."""
    if device_id is DEVICE_ID_ABSENT:
        active = list(Device.objects.filter(user=user, removed_at__isnull=True)[:2])
        return active[0] if len(active) == 1 else None
    if device_id is None:
        return None
    return device_active(user_id=user.pk, device_id=device_id)


def device_rename(*, user_id: int, device_id: int, name: str) -> Device:
    device = device_active(user_id=user_id, device_id=device_id)
    if device is None:
        raise DeviceNotFound()
    device.name = device_name_clean(name)
    device.save(update_fields=["name"])
    return device


def device_seen(*, user_id: int, device_id: int) -> None:
    """Record that a device used the server now (at every token refresh: a few times an hour
    while it is open, which is as precise as "last seen" needs to be)."""
    if device_id:
        Device.objects.filter(user_id=user_id, device_id=device_id).update(last_seen_at=timezone.now())
