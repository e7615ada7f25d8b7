"""The mailbox of device linking (docs/PROTOCOL.md section 18).

The new device opens a link; an existing device of the same account leaves its answer (an
ephemeral public key and an encrypted box holding the identity key); the new device reads it.
What the server must guarantee is small, because it never holds a key that opens the box:
- a link belongs to the account that opened it: every read, answer and cancel of another
  account is the same 404 as an unknown link, so a link id seen by someone else is worthless;
- only a session bound to a device answers a link (accounts.permissions: a pending session
  holds no identity key to give);
- one answer per link: the first one wins (a conditional UPDATE), a second is refused, so an
  answer cannot be swapped under the new device while its user compares codes;
- links expire after LINK_LIFETIME_SECONDS, and an account has at most LINKS_OPEN_MAX open.
What makes linking safe against the server itself is the verification code both users compare:
a key the server substituted changes it.

Expired links are deleted when their account opens a new one, and are never answered or shown.
Nothing here logs a key, a box or a link id: only user ids.
"""

import base64
import logging
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from keys.errors import LinkAlreadyOffered, LinkNotFound, TooManyLinks
from keys.models import LINK_LIFETIME_SECONDS, LINKS_OPEN_MAX, DeviceLink

logger = logging.getLogger(__name__)


@transaction.atomic
def link_open(*, user: User) -> DeviceLink:
    """A new link of `user`'s account with a fresh random id (16 bytes from the OS's CSPRNG).
    Serialised per account on the account's row, so concurrent opens cannot pass the cap
    together."""
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
    now = timezone.now()
    DeviceLink.objects.filter(user=user, expires_at__lte=now).delete()
    if DeviceLink.objects.filter(user=user).count() >= LINKS_OPEN_MAX:
        raise TooManyLinks()
    link = DeviceLink.objects.create(
        link_id=base64.b64encode(secrets.token_bytes(16)).decode("ascii"),
        user=user,
        created_at=now,
        expires_at=now + timedelta(seconds=LINK_LIFETIME_SECONDS),
    )
    logger.info("device link opened user=%s", user.pk)
    return link


def _open_links(*, user_id: int, link_id: str):
    return DeviceLink.objects.filter(user_id=user_id, link_id=link_id, expires_at__gt=timezone.now())


def link_of(*, user_id: int, link_id: str) -> DeviceLink:
    """The account's unexpired link with this id, with its answer if it has one."""
    link = _open_links(user_id=user_id, link_id=link_id).first()
    if link is None:
        raise LinkNotFound()
    return link


def link_offer(*, user_id: int, link_id: str, ephemeral_key: str, ciphertext: str) -> None:
    """Leave the existing device's answer in the account's link: the first answer wins."""
    answered = _open_links(user_id=user_id, link_id=link_id).filter(offered_at__isnull=True)
    updated = answered.update(offer_ephemeral_key=ephemeral_key, offer_ciphertext=ciphertext, offered_at=timezone.now())
    if updated == 0:
        link_of(user_id=user_id, link_id=link_id)  # LinkNotFound when there is no such link
        raise LinkAlreadyOffered()
    logger.info("device link answered user=%s", user_id)


def link_cancel(*, user_id: int, link_id: str) -> None:
    deleted, _ = _open_links(user_id=user_id, link_id=link_id).delete()
    if not deleted:
        raise LinkNotFound()
