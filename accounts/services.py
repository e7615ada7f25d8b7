"""Accounts: registration, sign-in and the refresh-token family.

Token rotation is written here rather than taken from simplejwt's TokenRefreshView: that view
checks the blacklist with `.exists()` and then blacklists with `get_or_create`, so two
concurrent refreshes with one token both succeed, and reuse of an old token goes unnoticed.
Here the blacklist row is inserted first, inside a transaction; the unique constraint on
BlacklistedToken.token makes exactly one of two concurrent refreshes win. A refresh token
that is already blacklisted is treated as stolen (a legitimate client only ever holds the
newest one): every outstanding refresh token of that user is revoked. One exception: a token
blacklisted only REFRESH_REUSE_GRACE_SECONDS ago is the loser of a benign race (two tabs
refreshing at once); it gets a 401 but does not log the user out everywhere.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.errors import EmailTaken, InvalidCredentials, InvalidRefreshToken
from accounts.models import User, normalize_email
from accounts.ratelimit import rate_limit_hit
from chat.events import session_revoked_publish
from keys.services import device_keys_set

logger = logging.getLogger(__name__)

REFRESH_REUSE_GRACE_SECONDS = 10


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


def user_register(
    *, email: str, password: str, identity_key: str, signed_prekey: dict, one_time_prekeys: list[dict]
) -> User:
    """Create the account and its public keys in one transaction: either both exist or
    neither does.

    The password is hashed BEFORE the transaction starts. On SQLite a transaction holds the
    database's single write lock from its first statement (IMMEDIATE), and PBKDF2 takes about
    half a second (seconds on a loaded machine): hashing inside the transaction made every
    other writer of the process queue behind each registration, and SQLite's busy wait is not
    first come first served, so under 8 concurrent registrations one waiter could exceed the
    20 s busy timeout and answer 500 "database is locked". Outside, the lock is held for a
    few inserts."""
    user = User.objects.make_user(email, password)
    with transaction.atomic():
        if User.objects.filter(email=user.email).exists():
            raise EmailTaken()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            raise EmailTaken() from None
        device_keys_set(
            user=user, identity_key=identity_key, signed_prekey=signed_prekey, one_time_prekeys=one_time_prekeys
        )
    logger.info("user registered id=%s", user.id)
    return user


def registration_rate_limit(*, email: str, ip: str) -> None:
    rate_limit_hit("register_ip", ip)
    rate_limit_hit("register_email", normalize_email(email))


def user_authenticate(*, email: str, password: str, ip: str, request=None) -> User:
    """Check a password, rate limited per IP and per email. The same error answers an
    unknown email and a wrong password (Django's ModelBackend also runs the hasher for an
    unknown email, so timing does not tell them apart either)."""
    rate_limit_hit("login_ip", ip)
    rate_limit_hit("login_email", normalize_email(email))
    user = authenticate(request, username=normalize_email(email), password=password)
    if user is None:
        raise InvalidCredentials()
    return user


def tokens_issue(*, user: User) -> TokenPair:
    refresh = RefreshToken.for_user(user)  # also records the OutstandingToken row
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def _decode_refresh(raw: str) -> dict:
    """Signature and expiry only: the blacklist is checked by the callers, atomically."""
    try:
        payload = token_backend.decode(raw, verify=True)
    except TokenBackendError:
        raise InvalidRefreshToken() from None
    if payload.get(jwt_settings.TOKEN_TYPE_CLAIM) != "refresh" or not payload.get(jwt_settings.JTI_CLAIM):
        raise InvalidRefreshToken()
    return payload


def tokens_revoke_all(*, user_id: int) -> int:
    """Blacklist every outstanding refresh token of a user (stolen token, new device, ban)."""
    outstanding = OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
    rows = [BlacklistedToken(token=token) for token in outstanding]
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def sessions_replace(*, user: User) -> TokenPair:
    """End every session of an account and start a fresh one for the caller (a new device
    took over the account's keys: the old browser must not keep running on keys that are no
    longer the account's). Refresh tokens are revoked, sockets closed after commit, and the
    returned pair goes to the device that asked."""
    tokens_revoke_all(user_id=user.id)
    session_revoked_publish(user_id=user.id)
    return tokens_issue(user=user)


@transaction.atomic
def user_deactivate(*, user_id: int) -> None:
    """Ban an account. is_active=False already refuses sign-in, refresh and every access
    token at its next use; revoking the refresh tokens as well keeps them dead if the account
    is ever reactivated, and the open sockets (authenticated once, at connect) are closed
    after commit rather than when their access token expires."""
    User.objects.filter(pk=user_id).update(is_active=False)
    tokens_revoke_all(user_id=user_id)
    session_revoked_publish(user_id=user_id)
    logger.info("user deactivated id=%s", user_id)


def tokens_rotate(*, refresh: str) -> tuple[User, TokenPair]:
    """Exchange a refresh token for a new pair; the old one can never be used again."""
    payload = _decode_refresh(refresh)
    jti = payload[jwt_settings.JTI_CLAIM]
    reused = False
    with transaction.atomic():
        outstanding = OutstandingToken.objects.filter(jti=jti).first()
        # simplejwt writes the user id claim as a string.
        if outstanding is None or str(outstanding.user_id) != str(payload.get(jwt_settings.USER_ID_CLAIM)):
            raise InvalidRefreshToken()
        user_id = outstanding.user_id
        try:
            with transaction.atomic():
                BlacklistedToken.objects.create(token=outstanding)
        except IntegrityError:
            blacklisted_at = BlacklistedToken.objects.get(token=outstanding).blacklisted_at
            if timezone.now() - blacklisted_at < timedelta(seconds=REFRESH_REUSE_GRACE_SECONDS):
                raise InvalidRefreshToken() from None
            reused = True
        if not reused:
            user = User.objects.filter(id=user_id, is_active=True).first()
            if user is None:
                raise InvalidRefreshToken()
            pair = tokens_issue(user=user)
    if reused:
        # Outside the failed transaction so the revocation is committed.
        revoked = tokens_revoke_all(user_id=user_id)
        logger.warning("refresh token reuse detected user=%s; revoked %s tokens", user_id, revoked)
        raise InvalidRefreshToken()
    return user, pair


def tokens_blacklist(*, refresh: str) -> int | None:
    """Logout: blacklist this refresh token if it is one of ours. Returns its user id."""
    try:
        payload = _decode_refresh(refresh)
    except InvalidRefreshToken:
        return None
    outstanding = OutstandingToken.objects.filter(jti=payload[jwt_settings.JTI_CLAIM]).first()
    if outstanding is None:
        return None
    BlacklistedToken.objects.get_or_create(token=outstanding)
    return outstanding.user_id
