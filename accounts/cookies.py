"""Setting and clearing the auth cookies.

Both tokens are HttpOnly (page scripts, and so an XSS, cannot read them) and SameSite=Strict
(never sent on cross-site requests). The refresh token is additionally scoped to the auth
routes, so it travels only to refresh and logout, not with every API call. Secure is on
unless AUTH_COOKIE_SECURE is off (plain-http development).
"""

from django.conf import settings
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.services import TokenPair


def set_auth_cookies(response, pair: TokenPair) -> None:
    common = {"httponly": True, "samesite": "Strict", "secure": settings.AUTH_COOKIE_SECURE}
    response.set_cookie(
        settings.AUTH_COOKIE_ACCESS,
        pair.access,
        max_age=int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
        path="/",
        **common,
    )
    response.set_cookie(
        settings.AUTH_COOKIE_REFRESH,
        pair.refresh,
        max_age=int(jwt_settings.REFRESH_TOKEN_LIFETIME.total_seconds()),
        path=settings.AUTH_COOKIE_REFRESH_PATH,
        **common,
    )


def clear_auth_cookies(response) -> None:
    response.delete_cookie(settings.AUTH_COOKIE_ACCESS, path="/", samesite="Strict")
    response.delete_cookie(settings.AUTH_COOKIE_REFRESH, path=settings.AUTH_COOKIE_REFRESH_PATH, samesite="Strict")
