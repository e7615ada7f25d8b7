"""Authentication of API requests by the access-token cookie.

simplejwt reads only the Authorization header, and DRF's APIView is CSRF-exempt (only
SessionAuthentication re-applies the check). A cookie is sent by the browser on its own, so
any cookie-authenticated unsafe request could be forged by another site: this class runs
Django's CSRF check (double submit: the `csrftoken` cookie echoed in `X-CSRFToken`) on every
unsafe method, whether or not an access cookie is present. That covers login, register,
refresh and logout too (login CSRF would sign a victim into the attacker's account).

There is deliberately no header-based authentication: one way in, one set of rules.
"""

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import CSRFCheck
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def enforce_csrf(request) -> None:
    def dummy_get_response(request):  # pragma: no cover - never called
        return None

    check = CSRFCheck(dummy_get_response)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF failed: {reason}")


class CookieJWTAuthentication(JWTAuthentication):
    www_authenticate_realm = "api"

    def authenticate(self, request):
        if request.method not in SAFE_METHODS:
            enforce_csrf(request._request)
        raw_token = request.COOKIES.get(settings.AUTH_COOKIE_ACCESS)
        if not raw_token:
            return None
        try:
            validated = self.get_validated_token(raw_token.encode())
        except (InvalidToken, TokenError):
            raise exceptions.AuthenticationFailed(
                "The access token is invalid or expired.", code="token_not_valid"
            ) from None
        return self.get_user(validated), validated

    def authenticate_header(self, request):
        # A 401 needs a WWW-Authenticate header; "Cookie" tells clients to refresh.
        return 'Cookie realm="api"'
