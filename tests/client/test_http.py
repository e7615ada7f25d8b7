"""The REST transport (messenger_client/http.py) against real HTTP servers on loopback: a small
scripted one for what the messenger server never does (redirects, HTML errors, a slow answer, a
self-signed certificate), and the real one for the log."""

import datetime
import http.server
import json
import logging
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings

from messenger_client import ApiError
from messenger_client import http as http_module
from messenger_client.http import HttpApi
from tests.client.helpers import befriend, next_message, registered


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from ``server.routes``: path -> (status, headers, body); records every request."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append((self.command, self.path, self.headers, self.rfile.read(length)))
        status, headers, body = self.server.routes.get(self.path.split("?")[0], (404, [], b""))
        if callable(body):
            body = body()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args) -> None:
        pass


def serve(tls: ssl.SSLContext | None = None) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.routes, server.seen = {}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    return server


@pytest.fixture
def scripted():
    server = serve()
    yield server
    server.shutdown()
    server.server_close()


def json_body(payload: dict) -> bytes:
    return json.dumps(payload).encode()


CSRF = (200, [("Set-Cookie", "csrftoken=csrf123; Path=/; SameSite=Lax")], json_body({"csrf_token": "csrf123"}))


async def test_cookies_are_scoped_by_path_and_the_csrf_token_goes_in_a_header(scripted):
    scripted.routes.update(
        {
            "/api/v1/auth/csrf": CSRF,
            "/api/v1/auth/login": (
                200,
                [
                    ("Set-Cookie", "access_token=acc1; Path=/; Max-Age=300; HttpOnly"),
                    ("Set-Cookie", "refresh_token=ref1; Path=/api/v1/auth/; Max-Age=3000; HttpOnly"),
                ],
                json_body({"email": "a@example.test"}),
            ),
            "/api/v1/contacts/requests": (201, [], json_body({"ok": True})),
        }
    )
    api = HttpApi(scripted.url)
    try:
        assert await api.call("POST", "auth/login", {"email": "a@example.test"}, auth=False) == {
            "email": "a@example.test"
        }
        assert await api.call("POST", "contacts/requests", {"email": "b@example.test"}) == {"ok": True}
        method, path, headers, body = scripted.seen[-1]
        assert (method, path, body) == ("POST", "/api/v1/contacts/requests", b'{"email": "b@example.test"}')
        assert sorted(headers["Cookie"].split("; ")) == ["access_token=acc1", "csrftoken=csrf123"]
        assert headers["X-CSRFToken"] == "csrf123"
        assert headers["Origin"] == scripted.url
        assert headers["Referer"] == scripted.url + "/"
        assert headers["Content-Type"] == "application/json"
        # The refresh token goes only where its path says; the socket gets the jar's cookies too.
        assert "refresh_token=ref1" in api.cookie_header("/api/v1/auth/refresh")
        assert "refresh_token" not in api.cookie_header("/ws/chat/")
        # What the state file keeps brings the same cookies back.
        again = HttpApi(scripted.url, load_cookies=api.export_cookies)
        assert again.cookie_header("/api/v1/auth/refresh") == api.cookie_header("/api/v1/auth/refresh")
        await again.aclose()
    finally:
        await api.aclose()


async def test_redirects_are_not_followed(scripted):
    scripted.routes["/api/v1/auth/me"] = (302, [("Location", scripted.url + "/elsewhere")], b"")
    api = HttpApi(scripted.url)
    try:
        await api.call("GET", "auth/me")
    finally:
        await api.aclose()
    assert [path for _, path, _, _ in scripted.seen] == ["/api/v1/auth/me"]


async def test_errors_map_to_api_errors_with_code_detail_and_retry_after(scripted):
    scripted.routes.update(
        {
            "/api/v1/auth/csrf": CSRF,
            "/api/v1/messages/": (
                429,
                [("Retry-After", "7"), ("Content-Type", "application/json")],
                json_body({"code": "rate_limited", "detail": "slow down"}),
            ),
            "/api/v1/auth/me": (502, [("Content-Type", "text/html")], b"<html>Bad gateway</html>"),
        }
    )
    api = HttpApi(scripted.url)
    try:
        with pytest.raises(ApiError) as limited:
            await api.call("POST", "messages/", {"to": "b@example.test"})
        assert (limited.value.status, limited.value.code, limited.value.retry_after) == (429, "rate_limited", 7)
        assert str(limited.value) == "slow down (rate_limited, HTTP 429); retry after 7 s"
        with pytest.raises(ApiError) as gateway:
            await api.call("GET", "auth/me")
        assert (gateway.value.status, gateway.value.code, gateway.value.detail) == (
            502,
            "http_502",
            "<html>Bad gateway</html>",
        )
    finally:
        await api.aclose()


async def test_an_unreachable_server_and_a_timeout_are_server_unreachable(scripted, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    api = HttpApi(f"http://127.0.0.1:{closed_port}")
    with pytest.raises(ApiError) as refused:
        await api.call("GET", "auth/me")
    await api.aclose()
    assert (refused.value.status, refused.value.code) == (0, "server_unreachable")
    assert str(refused.value) == (
        f"cannot reach http://127.0.0.1:{closed_port}: [Errno 111] Connection refused (server_unreachable)"
    )

    answered = threading.Event()
    scripted.routes["/api/v1/auth/me"] = (200, [], lambda: answered.wait(10) and b"{}")
    monkeypatch.setattr(http_module, "TIMEOUT", 0.5)
    api = HttpApi(scripted.url)
    try:
        with pytest.raises(ApiError) as slow:
            await api.call("GET", "auth/me")
    finally:
        answered.set()
        await api.aclose()
    assert str(slow.value) == f"cannot reach {scripted.url}: timed out (server_unreachable)"


def self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


async def test_tls_certificates_are_verified(tmp_path):
    """A certificate the system does not trust is refused before anything is sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(tmp_path))
    server = serve(context)
    api = HttpApi(server.url.replace("127.0.0.1", "localhost"))
    try:
        with pytest.raises(ApiError) as refused:
            await api.call("GET", "auth/me")
    finally:
        await api.aclose()
        server.shutdown()
        server.server_close()
    assert refused.value.code == "server_unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    assert server.seen == []


async def test_no_cookie_value_reaches_the_debug_log(client_server, tmp_path, caplog):
    """httpcore logs response headers at DEBUG and websockets the handshake's: the session's cookies
    (bearer tokens) are taken out."""
    caplog.set_level(logging.DEBUG)
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        secrets = {cookie.value for client in (alice, bob) for cookie in client.http.cookies.jar}
        await bob.connect()
        alice.http.cookies.delete("access_token")
        await alice.send(bob.email, "hello")  # 401 -> refresh -> retry
        assert (await next_message(bob)).text == "hello"
        secrets |= {cookie.value for client in (alice, bob) for cookie in client.http.cookies.jar}
    assert len(secrets) >= 7  # a new access token for alice
    assert "receive_response_headers.complete" in caplog.text  # the log was on
    assert "> Cookie: [hidden]" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text


async def test_an_oversized_body_is_refused_with_the_servers_reason(client_server):
    api = HttpApi(client_server.url)
    body = {"email": "x@example.test", "password": "x", "padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    try:
        with pytest.raises(ApiError) as refused:
            await api.call("POST", "auth/login", body, auth=False)
    finally:
        await api.aclose()
    assert (refused.value.status, refused.value.code) == (413, "request_too_large")
