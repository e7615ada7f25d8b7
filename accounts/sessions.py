"""Sessions: issuing tokens, and ending the sessions of an account or of one of its devices at once.

Access tokens are stateless JWTs, so "refuse every token issued before now" needs a per-user
value that each request compares with. A "valid after" timestamp compared with the token's
`iat` does not work: `iat` has whole-second resolution, so a token issued in the second of a
revocation can be neither safely kept (it may be the stolen one) nor refused (it may be the
fresh pair handed to the new device by the identity reset, in that same second). Instead each
account has a session *generation* (accounts.models.SessionGeneration): every token carries the
generation it was issued under (claim GENERATION_CLAIM, both token types), the authentication
class and the socket middleware accept only the current one, and ending every session is one
increment. Tokens issued after the increment carry the new value whatever the clock says.

`sessions_end` ends every session of an account: refresh-token reuse, deactivation (any save
of is_active=False, the ban action), password change (any `set_password()` + `save()`) and
starting over all call it. It bumps the generation, blacklists the outstanding refresh tokens
(so they stay dead if anything ever lowered the generation) and, after commit, tells every
socket of the account, in every process, to close (`session.revoked` with the new generation:
a socket opened with a token of that generation, the new device's, stays open).

Devices (docs/PROTOCOL.md section 15): every token also names its device (claim DEVICE_CLAIM,
0 for a pending session that has no device yet) and carries that device's generation
(DEVICE_GENERATION_CLAIM, accounts.models.Device.generation). `device_sessions_end` ends one
device's sessions the same way (logout); a removed device's tokens are refused whatever their
generations (accounts.authentication), and its sockets are closed (`device.revoked`).

Refresh tokens are stored in OutstandingToken (simplejwt's table, needed for rotation and
blacklisting) as a SHA-256 only: the rows are keyed by `jti`, which is all verification needs,
and a database reader or an operator in the admin must not be able to copy a working session.
"""

import hashlib
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import Device, SessionGeneration, User
from realtime import bus

logger = logging.getLogger(__name__)

GENERATION_CLAIM = "gen"
DEVICE_CLAIM = "dev"
DEVICE_GENERATION_CLAIM = "dgen"
# The device of a pending session (docs/PROTOCOL.md section 15): the password was right, but
# this client is not a device of the account (yet).
PENDING_DEVICE = 0
# The channel-layer message that closes a user's sockets opened before a generation (handled
# by chat.consumers.ChatConsumer.session_revoked).
SESSION_REVOKED = "session.revoked"
# Closes the sockets of one device (chat.consumers.ChatConsumer.device_revoked): its logout
# (sockets of older device generations) or its removal (all of them).
DEVICE_REVOKED = "device.revoked"
TOKEN_DIGEST_PREFIX = "sha256:"


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


def token_digest(raw: str) -> str:
    """What OutstandingToken.token holds instead of the token itself."""
    if raw.startswith(TOKEN_DIGEST_PREFIX):
        return raw
    return TOKEN_DIGEST_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def session_generation(*, user_id: int) -> int:
    value = SessionGeneration.objects.filter(user_id=user_id).values_list("value", flat=True).first()
    return value or 0


def token_device_id(payload) -> int:
    """The device a token names. Tokens issued before devices existed name none: they were
    issued to the account's one device, which the migration made device 1."""
    return payload.get(DEVICE_CLAIM, 1)


def tokens_issue(
    *,
    user: User,
    device: Device | None,
    generation: int | None = None,
    device_generation: int | None = None,
) -> TokenPair:
    """A new refresh token (recorded by jti and digest) and its access token, both naming
    `device` (None: a pending session) and carrying the account's session `generation` and
    the device's (default: the current ones). Token rotation passes the generations it
    checked, so a pair minted while the sessions were being ended is born revoked."""
    if generation is None:
        generation = session_generation(user_id=user.pk)
    if device_generation is None:
        device_generation = 0 if device is None else device.generation
    refresh = RefreshToken()
    refresh[jwt_settings.USER_ID_CLAIM] = str(user.pk)
    refresh[GENERATION_CLAIM] = generation
    refresh[DEVICE_CLAIM] = PENDING_DEVICE if device is None else device.device_id
    refresh[DEVICE_GENERATION_CLAIM] = device_generation
    raw = str(refresh)
    OutstandingToken.objects.create(
        user=user,
        jti=refresh[jwt_settings.JTI_CLAIM],
        token=token_digest(raw),
        created_at=refresh.current_time,
        expires_at=datetime_from_epoch(refresh["exp"]),
    )
    return TokenPair(access=str(refresh.access_token), refresh=raw)


def tokens_revoke_all(*, user_id: int) -> int:
    """Blacklist every outstanding refresh token of a user."""
    outstanding = OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
    rows = [BlacklistedToken(token=token) for token in outstanding]
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def session_revoked_publish(*, user_id: int, generation: int) -> None:
    """Close every socket of a user opened with a token older than session `generation`
    (`sessions_end`: logout, deactivation, password change, new device), after the commit."""
    bus.message_on_commit([user_id], {"type": SESSION_REVOKED, "generation": generation})


@transaction.atomic
def sessions_end(*, user_id: int, reason: str) -> int:
    """End every session of the account: tokens of the current generation are refused from
    the commit on, refresh tokens are blacklisted, and every open socket is closed after the
    commit. Returns the new generation (tokens issued from now on carry it)."""
    # Ensure the row, then increment in SQL: two concurrent calls both take effect.
    SessionGeneration.objects.bulk_create([SessionGeneration(user_id=user_id, value=0)], ignore_conflicts=True)
    SessionGeneration.objects.filter(user_id=user_id).update(value=F("value") + 1)
    generation = session_generation(user_id=user_id)
    revoked = tokens_revoke_all(user_id=user_id)
    session_revoked_publish(user_id=user_id, generation=generation)
    logger.info("sessions ended user=%s reason=%s refresh_tokens_revoked=%s", user_id, reason, revoked)
    return generation


def device_revoked_publish(*, user_id: int, device_id: int, generation: int, removed: bool) -> None:
    """Close the sockets of one device after the commit: those opened before its session
    `generation` (logout), or all of them when it was removed."""
    message = {"type": DEVICE_REVOKED, "device_id": device_id, "generation": generation, "removed": removed}
    bus.message_on_commit([user_id], message)


@transaction.atomic
def device_sessions_end(*, user_id: int, device_id: int, reason: str) -> int:
    """End the sessions of one device (its logout): its tokens are refused from the commit on
    and its sockets closed; the account's other devices stay signed in. Returns the device's
    new generation."""
    Device.objects.filter(user_id=user_id, device_id=device_id).update(generation=F("generation") + 1)
    generation = (
        Device.objects.filter(user_id=user_id, device_id=device_id).values_list("generation", flat=True).first() or 0
    )
    device_revoked_publish(user_id=user_id, device_id=device_id, generation=generation, removed=False)
    logger.info("device sessions ended user=%s device=%s reason=%s", user_id, device_id, reason)
    return generation
