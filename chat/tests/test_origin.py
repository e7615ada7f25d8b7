"""The socket's Origin check compares the scheme too: an https page may open only wss, an http
page only ws. The handshake's scheme is the proxy's X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER)
when present, else the scope's (daphne reports none for sockets: "ws")."""

import pytest
from channels.testing import WebsocketCommunicator

from chat.middleware import StrictOriginValidator, handshake_is_secure
from chat.routing import websocket_application
from chat.tests.helpers import HOST, access_cookie, receive, ws_headers

pytestmark = pytest.mark.django_db(transaction=True)


def scope(origin: str, *, scheme: str | None = None, forwarded_proto: str | None = None) -> dict:
    headers = [(b"host", HOST.encode()), (b"origin", origin.encode())]
    if forwarded_proto is not None:
        headers.append((b"x-forwarded-proto", forwarded_proto.encode()))
    result = {"type": "websocket", "path": "/ws/chat/", "headers": headers}
    if scheme is not None:
        result["scheme"] = scheme
    return result


async def admitted(handshake: dict) -> bool:
    """Whether StrictOriginValidator passes the handshake on to the application."""
    reached = []

    async def application(scope, receive, send):
        reached.append(scope)

    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def send(message):
        pass

    async def receive():
        return incoming.pop(0)

    await StrictOriginValidator(application)(handshake, receive, send)
    return bool(reached)


@pytest.mark.parametrize(
    ("origin", "handshake", "expected"),
    [
        ("http://localhost", {}, True),
        ("https://localhost", {}, False),  # an https page on a plain ws handshake
        ("http://localhost", {"scheme": "ws"}, True),
        ("https://localhost", {"scheme": "wss"}, True),
        ("http://localhost", {"scheme": "wss"}, False),  # an http page opening wss
        ("https://localhost", {"forwarded_proto": "https"}, True),
        ("http://localhost", {"forwarded_proto": "https"}, False),
        ("https://localhost", {"forwarded_proto": "http"}, False),
        ("http://localhost", {"forwarded_proto": "http", "scheme": "wss"}, True),  # the proxy's word wins
    ],
)
async def test_the_origin_scheme_must_match_the_handshake_scheme(origin, handshake, expected):
    assert await admitted(scope(origin, **handshake)) is expected


def test_the_forwarded_proto_header_follows_django_rules(settings):
    assert handshake_is_secure(scope("https://x", forwarded_proto="https, http"))
    assert not handshake_is_secure(scope("https://x", forwarded_proto="http, https"))
    settings.SECURE_PROXY_SSL_HEADER = None
    assert not handshake_is_secure(scope("https://x", forwarded_proto="https"))
    assert handshake_is_secure(scope("https://x", scheme="wss"))


@pytest.mark.parametrize(
    ("origin", "forwarded_proto", "expected"),
    [("https://chat.example.org", "https", True), ("https://chat.example.org", None, False)],
)
async def test_a_trusted_origin_follows_the_scheme_rule_too(alice, settings, origin, forwarded_proto, expected):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.org"]
    assert await admitted(scope(origin, forwarded_proto=forwarded_proto)) is expected


async def test_socket_from_an_https_page_behind_a_tls_proxy_is_admitted(alice):
    headers = [*ws_headers(access_cookie(alice), f"https://{HOST}"), (b"x-forwarded-proto", b"https")]
    socket = WebsocketCommunicator(websocket_application, "/ws/chat/", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    assert await receive(socket) == {"type": "queue_empty"}
    await socket.disconnect()


async def test_socket_from_an_http_page_over_tls_is_refused(alice):
    """A page on the plain-http side of an https host (which anyone on the network path can
    write) must not open wss: the browser would send the Secure cookies with it."""
    headers = [*ws_headers(access_cookie(alice), f"http://{HOST}"), (b"x-forwarded-proto", b"https")]
    socket = WebsocketCommunicator(websocket_application, "/ws/chat/", headers=headers)
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()
