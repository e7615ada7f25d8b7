"""Writes of key material. Every input here was validated by `keys.serializers` (canonical
base64, point checks, signatures); the services enforce the rules that need the database."""

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from keys.errors import KeyIdReused
from keys.models import IdentityKey, OneTimePreKey, SignedPreKey


@transaction.atomic
def device_keys_set(*, user, identity_key: str, signed_prekey: dict, one_time_prekeys: Iterable[dict]) -> None:
    """Install a full set of device keys for `user` (registration, or a new device).

    A new identity replaces the old one completely: the old signed prekeys and every
    one-time prekey of the old identity are dropped, because their private halves belong to
    a device that is no longer the account's. Claimed one-time prekey ids stay reserved only
    within one identity; a new device starts its own id space.
    """
    IdentityKey.objects.update_or_create(
        user=user, defaults={"public_key": identity_key, "created_at": timezone.now()}
    )
    SignedPreKey.objects.filter(user=user).delete()
    OneTimePreKey.objects.filter(user=user).delete()
    SignedPreKey.objects.create(
        user=user,
        key_id=signed_prekey["key_id"],
        public_key=signed_prekey["public_key"],
        signature=signed_prekey["signature"],
    )
    one_time_prekeys_add(user=user, one_time_prekeys=one_time_prekeys)


def one_time_prekeys_add(*, user, one_time_prekeys: Iterable[dict]) -> int:
    """Store new one-time prekeys; a key id this user ever uploaded (claimed or not) is
    refused as a whole upload, never silently overwritten (the seed overwrote private keys
    by reusing ids). Returns the number of unused one-time prekeys afterwards."""
    rows = [OneTimePreKey(user=user, key_id=k["key_id"], public_key=k["public_key"]) for k in one_time_prekeys]
    ids = [row.key_id for row in rows]
    with transaction.atomic():
        if OneTimePreKey.objects.filter(user=user, key_id__in=ids).exists():
            raise KeyIdReused()
        try:
            with transaction.atomic():
                OneTimePreKey.objects.bulk_create(rows)
        except IntegrityError:
            # A concurrent upload took one of the ids between our check and the insert.
            raise KeyIdReused() from None
        return OneTimePreKey.objects.filter(user=user, claimed_at__isnull=True).count()
