"""Sessions: issuing tokens, and ending every session of an account at once.

Access tokens are stateless JWTs, so "refuse every token issued before now" needs a per-user
value that each request compares with. A "valid after" timestamp compared with the token's
`iat` does not work: `iat` has whole-second resolution, so a token issued in the second of a
revocation can be neither safely kept (it may be the stolen one) nor refused (it may be the
fresh pair handed to the new device by the identity reset, in that same second). Instead each
account has a session *generation* (accounts.models.SessionGeneration): every token carries the
generation it was issued under (claim GENERATION_CLAIM, both token types), the authentication
class and the socket middleware accept only the current one, and ending every session is one
increment. Tokens issued after the increment carry the new value whatever the clock says.

`sessions_end` is the one way to end sessions: logout, refresh-token reuse, deactivation (any
save of is_active=False, the ban action), password change (any `set_password()` + `save()`) and
identity reset all call it. It bumps the generation, blacklists the outstanding refresh tokens
(so they stay dead if anything ever lowered the generation) and, after commit, tells every
socket of the account, in every process, to close (`session.revoked` with the new generation:
a socket opened with a token of that generation, the new device's, stays open).

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

from accounts.models import SessionGeneration, User
from realtime import bus

logger = logging.getLogger(__name__)

GENERATION_CLAIM = "gen"
# The channel-layer message that closes a user's sockets opened before a generation (handled
# by chat.consumers.ChatConsumer.session_revoked).
SESSION_REVOKED = "session.revoked"
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


def tokens_issue(*, user: User, generation: int | None = None) -> TokenPair:
    """A new refresh token (recorded by jti and digest) and its access token, both carrying
    `generation` (default: the current one). Token rotation passes the generation it checked,
    so a pair minted while the sessions were being ended is born revoked."""
    if generation is None:
        generation = session_generation(user_id=user.pk)
    refresh = RefreshToken()
    refresh[jwt_settings.USER_ID_CLAIM] = str(user.pk)
    refresh[GENERATION_CLAIM] = generation
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
