"""The WebSocket handshake's two gates: the Origin, then the access-token cookie.

Origin: a browser sends cookies with a WebSocket handshake to any site that asks, so without
this check any web page could open a socket as the signed-in user (cross-site WebSocket
hijacking; the prototype accepted any Origin). Channels' `AllowedHostsOriginValidator` reuses
ALLOWED_HOSTS, where `*` would accept every Origin, and lets a missing Origin through; here the
Origin must be present, http(s), the very host and port the handshake was sent to (its Host
header), and that host must match an ALLOWED_HOSTS entry other than `*` (or the origin must be
listed in CSRF_TRUSTED_ORIGINS). A refused handshake gets HTTP 403.

Authentication: channels' AuthMiddlewareStack is session based. The access-token cookie is
validated by the very function the REST API uses (accounts.authentication: signature, expiry,
token type, active user, current session generation), in the chat database thread (chat.db)
because loading the user is an ORM query, once per handshake. The consumer closes an
unauthenticated socket with 4401, schedules a close at the token's expiry, and closes it with
4403 when the account's sessions are ended (`session.revoked`, through the channel layer, so in
every process): no check per frame is needed.
"""

from urllib.parse import urlsplit

from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import user_for_access_token
from accounts.sessions import GENERATION_CLAIM
from chat.db import run_in_db_thread


def origin_allowed(origin: str | None, host: str | None = None) -> bool:
    """Same origin only: the Origin's host and port must be those the request was sent to
    (its Host header), and that host must be allowed. A page on another port of the same
    host is another origin but the same *site*, so SameSite cookies alone would let it in.
    Origins listed in CSRF_TRUSTED_ORIGINS are admitted as the operator said (e.g. a proxy
    that rewrites Host)."""
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not hostname:
        return False
    normalised = f"{parts.scheme}://{parts.netloc}".lower()
    if normalised in (o.rstrip("/").lower() for o in settings.CSRF_TRUSTED_ORIGINS):
        return True
    if not host or parts.netloc.lower() != host.lower():
        return False
    # ALLOWED_HOSTS patterns name hosts, not ports (like Django's own host check).
    bare_host = f"[{hostname}]" if ":" in hostname else hostname
    patterns = [pattern for pattern in settings.ALLOWED_HOSTS if pattern != "*"]
    return validate_host(bare_host, patterns)


class StrictOriginValidator:
    """Refuse a WebSocket handshake without an allowed Origin header."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            headers = dict(scope.get("headers", ()))
            origin, host = headers.get(b"origin"), headers.get(b"host")
            if not origin_allowed(origin and origin.decode("latin1"), host and host.decode("latin1")):
                denier = WebsocketDenier()
                return await denier(scope, receive, send)
        return await self.application(scope, receive, send)


def _user_from_token(raw: str):
    """(user, expiry as a Unix time, session generation) for an access token valid now (see
    accounts.authentication.user_for_access_token), else (AnonymousUser, None, None)."""
    try:
        user, validated = user_for_access_token(raw)
    except AuthenticationFailed:
        return AnonymousUser(), None, None
    return user, float(validated["exp"]), validated.get(GENERATION_CLAIM, 0)


class JWTCookieAuthMiddleware(BaseMiddleware):
    """Sets scope["user"] (AnonymousUser when the cookie is missing or invalid),
    scope["token_exp"] and scope["token_generation"] from the access-token cookie. Needs
    CookieMiddleware outside it."""

    async def __call__(self, scope, receive, send):
        raw = scope.get("cookies", {}).get(settings.AUTH_COOKIE_ACCESS)
        user, exp, generation = AnonymousUser(), None, None
        if raw:
            user, exp, generation = await run_in_db_thread(_user_from_token, raw)
        scope = {**scope, "user": user, "token_exp": exp, "token_generation": generation}
        return await super().__call__(scope, receive, send)


def websocket_stack(application):
    return StrictOriginValidator(CookieMiddleware(JWTCookieAuthMiddleware(application)))
