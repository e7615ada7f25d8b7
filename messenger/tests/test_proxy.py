"""The client address and scheme behind a reverse proxy (messenger.proxy).

The end-to-end check, through Debian's nginx in front of two daphne processes, is in
tests/deploy/test_topology.py.
"""

import pytest
from django.core.exceptions import ImproperlyConfigured

from messenger.proxy import TrustedProxyMiddleware


async def scope_seen(scope: dict, trusted=("127.0.0.1",)) -> dict:
    """The scope the application behind the middleware receives."""
    seen = {}

    async def application(scope, receive, send):
        seen.update(scope)

    await TrustedProxyMiddleware(application, trusted=trusted)(scope, None, None)
    return seen


def http(peer: str | None = "127.0.0.1", *headers: tuple[str, str], kind: str = "http") -> dict:
    scope = {
        "type": kind,
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers],
        "client": [peer, 41000] if peer else None,
    }
    if kind == "http":
        scope["scheme"] = "http"
    return scope


async def test_a_spoofed_left_entry_never_becomes_the_client():
    """What a proxy that appends passes on: the client's own list, then the real address."""
    scope = await scope_seen(http("127.0.0.1", ("X-Forwarded-For", "10.9.9.9, 127.0.0.1, 203.0.113.7")))
    assert scope["client"] == ["203.0.113.7", 0]


async def test_a_replacing_proxy_names_the_client():
    scope = await scope_seen(http("127.0.0.1", ("X-Forwarded-For", "198.51.100.4")))
    assert scope["client"] == ["198.51.100.4", 0]


async def test_the_right_most_entry_counts_even_when_it_is_a_trusted_address():
    """Skipping trusted addresses from the right (as some proxy helpers do) would hand the
    choice back to a client on a trusted address: `10.9.9.9, 127.0.0.1` would become 10.9.9.9."""
    scope = await scope_seen(http("127.0.0.1", ("X-Forwarded-For", "10.9.9.9, 127.0.0.1, 127.0.0.1")))
    assert scope["client"] == ["127.0.0.1", 0]


async def test_headers_from_an_untrusted_peer_are_ignored():
    scope = await scope_seen(
        http("192.0.2.50", ("X-Forwarded-For", "10.9.9.9"), ("X-Forwarded-Proto", "https")),
    )
    assert scope["client"] == ["192.0.2.50", 41000]
    assert scope["scheme"] == "http"


async def test_nothing_is_trusted_by_default():
    scope = await scope_seen(http("127.0.0.1", ("X-Forwarded-For", "10.9.9.9")), trusted=())
    assert scope["client"] == ["127.0.0.1", 41000]


async def test_a_connection_without_a_peer_address_is_left_alone():
    """Daphne gives no address for a Unix socket peer."""
    scope = await scope_seen(http(None, ("X-Forwarded-For", "10.9.9.9")))
    assert scope["client"] is None


@pytest.mark.parametrize("forwarded", ["", "unknown", "10.9.9.9, not-an-address", "10.9.9.9,"])
async def test_without_a_usable_right_most_entry_the_proxy_address_stands(forwarded):
    """Fail closed: such requests share the proxy's bucket, none gets a fresh one."""
    headers = [("X-Forwarded-For", forwarded)] if forwarded else []
    scope = await scope_seen(http("127.0.0.1", *headers))
    assert scope["client"] == ["127.0.0.1", 41000]


async def test_several_header_lines_are_one_list():
    scope = await scope_seen(
        http("127.0.0.1", ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "10.9.9.9, 198.51.100.4")),
    )
    assert scope["client"] == ["198.51.100.4", 0]


async def test_addresses_are_normalised_and_networks_trusted():
    scope = await scope_seen(
        http("10.1.2.3", ("X-Forwarded-For", "2001:DB8:0:0::1")),
        trusted=("10.0.0.0/8",),
    )
    assert scope["client"] == ["2001:db8::1", 0]


async def test_the_forwarded_scheme_is_taken_from_the_trusted_proxy():
    scope = await scope_seen(http("127.0.0.1", ("X-Forwarded-Proto", "https")))
    assert scope["scheme"] == "https"
    socket = await scope_seen(http("127.0.0.1", ("X-Forwarded-Proto", "https"), kind="websocket"))
    assert socket["scheme"] == "wss"
    plain = await scope_seen(http("127.0.0.1", ("X-Forwarded-Proto", "http"), kind="websocket"))
    assert plain["scheme"] == "ws"


async def test_an_unknown_forwarded_scheme_is_ignored():
    scope = await scope_seen(http("127.0.0.1", ("X-Forwarded-Proto", "gopher")))
    assert scope["scheme"] == "http"


async def test_other_scope_types_pass_through():
    scope = await scope_seen({"type": "lifespan"})
    assert scope == {"type": "lifespan"}


def test_a_malformed_trusted_proxy_setting_refuses_to_start():
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        TrustedProxyMiddleware(None, trusted=["127.0.0.1", "localhost"])
