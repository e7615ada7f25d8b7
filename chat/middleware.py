"""The WebSocket handshake's two gates: the Origin, then the access-token cookie.

Origin: a browser sends cookies with a WebSocket handshake to any site that asks, so without
this check any web page could open a socket as the signed-in user (cross-site WebSocket
hijacking; the prototype accepted any Origin). Channels' `AllowedHostsOriginValidator` reuses
ALLOWED_HOSTS, where `*` would accept every Origin, and lets a missing Origin through; here the
Origin must be present, of the scheme that matches the handshake's (an https page opens wss, an
http page ws), the very host and port the handshake was sent to (its Host header), and that host
must match an ALLOWED_HOSTS entry other than `*` (or the origin must be listed in
CSRF_TRUSTED_ORIGINS). A refused handshake gets HTTP 403.

Authentication: channels' AuthMiddlewareStack is session based. The access-token cookie is
validated by the very function the REST API uses (accounts.authentication: signature, expiry,
token type, active user, current session generation), in the chat database thread (realtime.db)
because loading the user is an ORM query, once per handshake. The consumer closes an
unauthenticated socket with 4401, schedules a close at the token's expiry, and closes it with
4403 when the account's sessions are ended (`session.revoked`, through the channel layer, so in
every process) or its device's (`device.revoked`: logout or unlink of that device): no check per
frame is needed. A pending session (no device, docs/PROTOCOL.md section 15) gets no socket.
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
from accounts.sessions import DEVICE_GENERATION_CLAIM, GENERATION_CLAIM, token_device_id
from realtime.db import run_in_db_thread


def handshake_is_secure(scope: dict) -> bool:
    """Whether the browser opened this socket over TLS (wss).

    daphne does not put a scheme into a WebSocket scope (only HTTP scopes get one, even with
    --proxy-headers), so the rule is Django's `request.is_secure()` for HTTP requests: the
    SECURE_PROXY_SSL_HEADER that the TLS-terminating proxy sets decides when it is present;
    otherwise the scope's scheme, "ws" when the server does not say (the ASGI default).
    Trusting the header costs nothing here: the Origin check protects browsers, and a page
    cannot add headers to a WebSocket handshake."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        wanted = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
        for name, value in scope.get("headers", ()):
            if name.lower() == wanted:
                return value.decode("latin1").split(",", 1)[0].strip() == secure_value
    return scope.get("scheme", "ws") == "wss"


def origin_allowed(origin: str | None, host: str | None = None, *, secure: bool = False) -> bool:
    """Same origin only: the Origin's scheme must match the handshake's (https for wss, http
    for ws), its host and port must be those the request was sent to (its Host header), and
    that host must be allowed. A page on another port of the same host is another origin but
    the same *site*, so SameSite cookies alone would let it in; so is the http page of an
    https host (port 80 against 443 leaves the Host header alike), which anyone on the
    network path can write, and wss would carry the Secure cookies to it. Origins listed in
    CSRF_TRUSTED_ORIGINS are admitted as the operator said (e.g. a proxy that rewrites Host),
    with the same scheme rule."""
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme != ("https" if secure else "http") or not hostname:
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
            secure = handshake_is_secure(scope)
            if not origin_allowed(origin and origin.decode("latin1"), host and host.decode("latin1"), secure=secure):
                denier = WebsocketDenier()
                return await denier(scope, receive, send)
        return await self.application(scope, receive, send)


def _from_token(raw: str) -> dict:
    """The scope entries of an access token valid now (see
    accounts.authentication.user_for_access_token): the user, the expiry as a Unix time, the
    session generation, the device and its generation; an AnonymousUser otherwise."""
    try:
        user, validated = user_for_access_token(raw)
    except AuthenticationFailed:
        return {"user": AnonymousUser()}
    return {
        "user": user,
        "token_exp": float(validated["exp"]),
        "token_generation": validated.get(GENERATION_CLAIM, 0),
        "token_device": token_device_id(validated),
        "token_device_generation": validated.get(DEVICE_GENERATION_CLAIM, 0),
    }


class JWTCookieAuthMiddleware(BaseMiddleware):
    """Sets scope["user"] (AnonymousUser when the cookie is missing or invalid) and, from the
    access-token cookie, scope["token_exp"], ["token_generation"], ["token_device"] and
    ["token_device_generation"]. Needs CookieMiddleware outside it."""

    async def __call__(self, scope, receive, send):
        raw = scope.get("cookies", {}).get(settings.AUTH_COOKIE_ACCESS)
        entries = {"user": AnonymousUser()}
        if raw:
            entries = await run_in_db_thread(_from_token, raw)
        scope = {
            **scope,
            "token_exp": None,
            "token_generation": None,
            "token_device": None,
            "token_device_generation": None,
            **entries,
        }
        return await super().__call__(scope, receive, send)


def websocket_stack(application):
    return StrictOriginValidator(CookieMiddleware(JWTCookieAuthMiddleware(application)))
