"""The client's address and scheme behind a reverse proxy: one ASGI middleware for HTTP and
WebSockets, so every part of the application (REMOTE_ADDR, the rate limits, the socket scope)
sees the same answer.

Rate limits are kept per client address, so whoever chooses the address the application sees
chooses which bucket is charged. An `X-Forwarded-For` header is a list that anyone can start:
a client sends `X-Forwarded-For: 10.9.9.9, 127.0.0.1` and a proxy that appends (nginx's
`$proxy_add_x_forwarded_for`) passes it on with the real address added at the end. Daphne's
`--proxy-headers` takes the left-most entry, the one the client wrote, and trusts the header
from any peer: behind such a proxy each request could name a fresh address and never meet a
per-address limit. So daphne runs without `--proxy-headers`, and this middleware decides:

- the headers are believed only when the connection comes from an address listed in
  TRUSTED_PROXIES (the reverse proxy on this machine, usually 127.0.0.1); from anyone else
  they are ignored and the peer address stands;
- the client is the right-most entry of `X-Forwarded-For`: the one the trusted proxy itself
  added, never one it passed on. A proxy that replaces the header (our nginx site sets it to
  `$remote_addr`) and one that appends give the same answer;
- a trusted request without a usable entry keeps the proxy's address (every such request then
  shares one bucket: limits fail closed, never open);
- `X-Forwarded-Proto` from the trusted proxy sets the scheme (`https` makes a WebSocket's
  scope `wss`), so the application knows the browser's connection was TLS.
"""

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Parse TRUSTED_PROXIES (addresses or networks such as 10.0.0.0/8)."""
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())
    except ValueError as error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {error}") from None


def _address(text: str) -> str | None:
    """`text` as a normalised IP address, or None when it is not one."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _header_values(headers, name: bytes) -> list[str]:
    return [value.decode("latin1") for key, value in headers if key.lower() == name]


class TrustedProxyMiddleware:
    """Sets scope["client"] and scope["scheme"] from the headers of a trusted reverse proxy."""

    def __init__(self, application, trusted: Iterable[str] | None = None):
        self.application = application
        self.trusted = trusted_networks(settings.TRUSTED_PROXIES if trusted is None else trusted)

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and self._from_trusted_proxy(scope):
            scope = self._forwarded(scope)
        return await self.application(scope, receive, send)

    def _from_trusted_proxy(self, scope) -> bool:
        peer = _address(scope["client"][0]) if scope.get("client") else None
        return peer is not None and any(ipaddress.ip_address(peer) in network for network in self.trusted)

    def _forwarded(self, scope) -> dict:
        scope = dict(scope)
        headers = scope.get("headers", ())
        # Several header lines are one list, in order (RFC 9110, section 5.3).
        forwarded_for = ",".join(_header_values(headers, b"x-forwarded-for")).split(",")
        client = _address(forwarded_for[-1])
        if client is not None:
            scope["client"] = [client, 0]
        protos = _header_values(headers, b"x-forwarded-proto")
        proto = protos[-1].strip().lower() if protos else ""
        if proto in ("http", "https"):
            secure = proto == "https"
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = proto
        return scope
