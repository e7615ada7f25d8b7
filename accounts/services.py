"""Accounts: creating one (registration itself, with the device keys, is
keys.services.account_register), sign-in, logout and the refresh-token family.

Token rotation is written here rather than taken from simplejwt's TokenRefreshView: that view
checks the blacklist with `.exists()` and then blacklists with `get_or_create`, so two
concurrent refreshes with one token both succeed, and reuse of an old token goes unnoticed.
Here the blacklist row is inserted first, inside a transaction; the unique constraint on
BlacklistedToken.token makes exactly one of two concurrent refreshes win. A refresh token
that is already blacklisted is treated as stolen (a legitimate client only ever holds the
newest one): every session of that user ends (accounts.sessions.sessions_end). One exception: a token
blacklisted only REFRESH_REUSE_GRACE_SECONDS ago is the loser of a benign race (two tabs
refreshing at once); it gets a 401 but does not log the user out everywhere.

A refresh token of an older session generation (accounts.sessions) is simply refused: its
sessions were already ended, and ending them again each time it is presented would let
whoever holds an old token keep signing the owner out.
"""

import logging
from datetime import timedelta

from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.devices import device_active, device_for_login, device_seen
from accounts.errors import EmailTaken, InvalidCredentials, InvalidRefreshToken
from accounts.models import Device, User, normalize_email
from accounts.sessions import (
    DEVICE_GENERATION_CLAIM,
    GENERATION_CLAIM,
    PENDING_DEVICE,
    TokenPair,
    device_sessions_end,
    session_generation,
    sessions_end,
    token_device_id,
    tokens_issue,
)

logger = logging.getLogger(__name__)

REFRESH_REUSE_GRACE_SECONDS = 10


def user_build(*, email: str, password: str) -> User:
    """A new account, not saved yet, with its password hashed; `user_create` saves it.

    Hash BEFORE the transaction that saves the account starts. On SQLite a transaction holds
    the database's single write lock from its first statement (IMMEDIATE), and PBKDF2 takes
    about half a second (seconds on a loaded machine): hashing inside the transaction made
    every other writer of the process queue behind each registration, and SQLite's busy wait
    is not first come first served, so under 8 concurrent registrations one waiter could
    exceed the 20 s busy timeout and answer 500 "database is locked". Outside, the lock is
    held for a few inserts."""
    return User.objects.make_user(email, password)


@transaction.atomic
def user_create(*, user: User) -> None:
    """Save an account made by `user_build`; EmailTaken when the address is in use. Joins the
    caller's transaction: registration saves the account and its device keys together
    (keys.services.account_register)."""
    if User.objects.filter(email=user.email).exists():
        raise EmailTaken()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise EmailTaken() from None


def session_login(*, user: User, device_id) -> tuple[Device | None, TokenPair]:
    """The tokens of a sign-in, bound to the device `device_id` names
    (accounts.devices.device_for_login), or pending when none."""
    device = device_for_login(user=user, device_id=device_id)
    if device is not None:
        device_seen(user_id=user.pk, device_id=device.device_id)
    return device, tokens_issue(user=user, device=device)


def user_authenticate(*, email: str, password: str, request) -> User:
    """Check a password (throttled by accounts.backends: RateLimited when a limit is hit).
    The same error answers an unknown email and a wrong password (Django's ModelBackend also
    runs the hasher for an unknown email, so timing does not tell them apart either)."""
    user = authenticate(request, username=normalize_email(email), password=password)
    if user is None:
        raise InvalidCredentials()
    return user


def _decode_refresh(raw: str) -> dict:
    """Signature and expiry only: the blacklist is checked by the callers, atomically."""
    try:
        payload = token_backend.decode(raw, verify=True)
    except TokenBackendError:
        raise InvalidRefreshToken() from None
    if payload.get(jwt_settings.TOKEN_TYPE_CLAIM) != "refresh" or not payload.get(jwt_settings.JTI_CLAIM):
        raise InvalidRefreshToken()
    return payload


def _current_session(payload: dict, user_id: int) -> tuple[bool, Device | None]:
    """Whether a token was issued under the account's current session generation (tokens
    from before generations existed carry none: generation 0) and, for a device's token,
    under the device's current generation, the device still active; and that device (None
    for a pending session)."""
    if payload.get(GENERATION_CLAIM, 0) != session_generation(user_id=user_id):
        return False, None
    device_id = token_device_id(payload)
    if device_id == PENDING_DEVICE:
        return True, None
    device = device_active(user_id=user_id, device_id=device_id)
    return device is not None and device.generation == payload.get(DEVICE_GENERATION_CLAIM, 0), device


def user_deactivate(*, user_id: int) -> None:
    """Ban an account. is_active=False already refuses sign-in, refresh and every access
    token at its next use; ending the sessions as well keeps the tokens dead if the account
    is ever reactivated, and closes the open sockets (authenticated once, at connect) at once
    rather than when their access token expires. (`QuerySet.update` sends no signal, so this
    calls sessions_end itself; a `save()` does it through accounts.signals.)"""
    with transaction.atomic():
        User.objects.filter(pk=user_id).update(is_active=False)
        sessions_end(user_id=user_id, reason="deactivated")
    logger.info("user deactivated id=%s", user_id)


def tokens_rotate(*, refresh: str) -> tuple[User, Device | None, TokenPair]:
    """Exchange a refresh token for a new pair; the old one can never be used again. The new
    pair names the same device, which must still be active and of the same device generation
    (a removed device, or one signed out, gets no new tokens)."""
    payload = _decode_refresh(refresh)
    jti = payload[jwt_settings.JTI_CLAIM]
    reused = False
    with transaction.atomic():
        outstanding = OutstandingToken.objects.filter(jti=jti).first()
        # simplejwt writes the user id claim as a string.
        if outstanding is None or str(outstanding.user_id) != str(payload.get(jwt_settings.USER_ID_CLAIM)):
            raise InvalidRefreshToken()
        user_id = outstanding.user_id
        current, device = _current_session(payload, user_id)
        if not current:
            raise InvalidRefreshToken()
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
            # The generations checked above, not a fresh read: if the sessions are being
            # ended concurrently, the new pair belongs to the ended generation.
            pair = tokens_issue(
                user=user,
                device=device,
                generation=payload.get(GENERATION_CLAIM, 0),
                device_generation=payload.get(DEVICE_GENERATION_CLAIM, 0),
            )
            if device is not None:
                device_seen(user_id=user_id, device_id=device.device_id)
    if reused:
        # Outside the failed transaction so the revocation is committed.
        logger.warning("refresh token reuse detected user=%s", user_id)
        sessions_end(user_id=user_id, reason="refresh token reuse")
        raise InvalidRefreshToken()
    return user, device, pair


def session_logout(*, refresh: str) -> int | None:
    """Logout ends the sessions of this device (its tabs share the cookies; an access token
    elsewhere must not outlive the sign-out) and no other device's: the device's generation
    goes up and its sockets close (accounts.sessions.device_sessions_end). A pending session
    has no device: its refresh token is blacklisted, and its access token, which may only
    look at the account (accounts.permissions), lives out its few minutes. Identified by the
    refresh cookie; a token that is not ours, or of an already ended generation, ends
    nothing. Returns the user id whose session ended, if any."""
    try:
        payload = _decode_refresh(refresh)
    except InvalidRefreshToken:
        return None
    outstanding = OutstandingToken.objects.filter(jti=payload[jwt_settings.JTI_CLAIM]).first()
    if outstanding is None or outstanding.user_id is None:
        return None
    current, device = _current_session(payload, outstanding.user_id)
    if not current:
        return None
    with transaction.atomic():
        BlacklistedToken.objects.bulk_create([BlacklistedToken(token=outstanding)], ignore_conflicts=True)
        if device is not None:
            device_sessions_end(user_id=outstanding.user_id, device_id=device.device_id, reason="logout")
    return outstanding.user_id
