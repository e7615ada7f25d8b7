"""The boundary as daphne really serves it (not the test client's idea of a request): the
socket handshake's scheme, and a body over the size limit."""

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


async def handshake_status(server_url: str, origin: str, headers: dict) -> int:
    """101 when the handshake was accepted (the unauthenticated socket is then closed with
    4401 by the consumer), else the HTTP status of the refusal."""
    url = f"ws://{urlsplit(server_url).netloc}/ws/chat/"
    try:
        async with connect(url, origin=origin, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize(
    ("page", "forwarded_proto", "expected"),
    [
        ("http", None, 101),
        ("https", None, 403),  # daphne gives a socket no scheme: without the proxy's word it is ws
        ("https", "https", 101),  # a TLS-terminating proxy says the browser used wss
        ("http", "https", 403),  # an http page may not open wss
    ],
)
async def test_the_socket_origin_scheme_must_match_the_handshake_on_a_real_server(
    client_server, page, forwarded_proto, expected
):
    origin = f"{page}://{urlsplit(client_server.url).netloc}"
    headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
    assert await handshake_status(client_server.url, origin, headers) == expected


def test_an_oversized_body_is_a_json_413_on_a_real_server(client_server):
    with urllib.request.urlopen(f"{client_server.url}/api/v1/auth/csrf", timeout=30) as response:
        cookie = response.headers["Set-Cookie"].split(";")[0]
        token = json.loads(response.read())["csrf_token"]
    body = json.dumps({"email": "x@example.test", "padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}).encode()
    request = urllib.request.Request(
        f"{client_server.url}/api/v1/auth/login",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-CSRFToken": token, "Cookie": cookie},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert json.loads(refused.value.read())["code"] == "request_too_large"
