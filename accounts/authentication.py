"""Authentication of API requests by the access-token cookie.

simplejwt reads only the Authorization header, and DRF's APIView is CSRF-exempt (only
SessionAuthentication re-applies the check). A cookie is sent by the browser on its own, so
any cookie-authenticated unsafe request could be forged by another site: this class runs
Django's CSRF check (double submit: the `csrftoken` cookie echoed in `X-CSRFToken`) on every
unsafe method, whether or not an access cookie is present. That covers login, register,
refresh and logout too (login CSRF would sign a victim into the attacker's account).

There is deliberately no header-based authentication: one way in, one set of rules.

Beyond simplejwt's checks (signature, expiry, type, active user), a token must carry the
account's current session generation (accounts.sessions): logout, deactivation, a password
change or a new device end every session at once, not when the 5-minute access token expires.
The generation is read in the same query as the user (a LEFT JOIN), so it costs nothing extra;
the chat socket middleware uses the same function at the handshake.

Devices (docs/PROTOCOL.md section 15): a token names its device (0: a pending session) and
carries that device's generation. The device is read in the same query (a subquery for the
active device of that number): a removed or unknown device answers 401 `device_removed`, so a
client learns at once that it was unlinked; an older device generation (that device signed
out) answers `session_revoked`. The authenticated user carries `device_id` (0 when pending);
what a pending session may do is decided by accounts.permissions.
"""

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, CSRFCheck
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.models import Device, User
from accounts.sessions import DEVICE_GENERATION_CLAIM, GENERATION_CLAIM, token_device_id

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def enforce_csrf(request) -> None:
    def dummy_get_response(request):  # pragma: no cover - never called
        return None

    check = CSRFCheck(dummy_get_response)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF failed: {reason}")


def user_for_access_token(raw: str):
    """(user, validated token) for an access token that is valid now: signed by us, not
    expired, of an active user, of the account's current session generation. Raises
    AuthenticationFailed otherwise."""
    try:
        validated = JWTAuthentication().get_validated_token(raw.encode())
    except (InvalidToken, TokenError):
        raise exceptions.AuthenticationFailed(
            "The access token is invalid or expired.", code="token_not_valid"
        ) from None
    device_id = token_device_id(validated)
    try:
        users = User.objects.annotate(current_generation=Coalesce("session_generation__value", 0))
        if device_id:
            device = Device.objects.filter(user=OuterRef("pk"), device_id=device_id, removed_at__isnull=True)
            users = users.annotate(device_generation=Subquery(device.values("generation")[:1]))
        user = users.filter(pk=int(validated[jwt_settings.USER_ID_CLAIM]), is_active=True).first()
    except (KeyError, TypeError, ValueError):
        user = None
    if user is None:
        raise exceptions.AuthenticationFailed("The account is unknown or inactive.", code="user_inactive")
    if validated.get(GENERATION_CLAIM, 0) != user.current_generation:
        raise exceptions.AuthenticationFailed("The session was ended; sign in again.", code="session_revoked")
    if device_id:
        if user.device_generation is None:
            raise exceptions.AuthenticationFailed("This device was removed from the account.", code="device_removed")
        if validated.get(DEVICE_GENERATION_CLAIM, 0) != user.device_generation:
            raise exceptions.AuthenticationFailed("The session was ended; sign in again.", code="session_revoked")
    user.device_id = device_id
    return user, validated


class CsrfOnlyAuthentication(BaseAuthentication):
    """For the routes that start or end a session (login, register, refresh, logout): the CSRF
    check of every unsafe method, but the access cookie is ignored. A revoked or expired access
    cookie the browser still holds must not make signing in again (or out) fail with 401."""

    def authenticate(self, request):
        if request.method not in SAFE_METHODS:
            enforce_csrf(request._request)
        return None


class CookieJWTAuthentication(JWTAuthentication):
    www_authenticate_realm = "api"

    def authenticate(self, request):
        if request.method not in SAFE_METHODS:
            enforce_csrf(request._request)
        raw_token = request.COOKIES.get(settings.AUTH_COOKIE_ACCESS)
        if not raw_token:
            return None
        return user_for_access_token(raw_token)

    def authenticate_header(self, request):
        # A 401 needs a WWW-Authenticate header; "Cookie" tells clients to refresh.
        return 'Cookie realm="api"'
