"""docs/DEPLOY.md, followed by its own script: Debian's nginx with TLS in front of two daphne
processes on MariaDB + Redis, with production settings (DEBUG off, HTTPS redirect, Secure
cookies, HSTS), used over https and wss.

The tests share one topology and run in file order: the last one fills the login limit of the
test's own address on purpose.
"""

import json
import re
import secrets
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests.deploy.topology import ROOT, SERVER_NAME, insecure_tls, run_unit

pytestmark = [pytest.mark.mariadb, pytest.mark.redis]

HSTS = "max-age=31536000; includeSubDomains; preload"
JOBS = sorted(path.name for path in (ROOT / "deploy" / "systemd").glob("messenger-*.service"))


def test_the_rendered_files_have_no_placeholder_left(topology):
    rendered = [*topology.units.iterdir(), topology.nginx_dir / "sites-enabled" / "messenger"]
    for path in rendered:
        assert not re.search(r"@[A-Z_]+@", path.read_text()), path


@pytest.mark.parametrize("unit", JOBS)
def test_each_periodic_job_runs_against_the_deployed_database(topology, unit):
    job = run_unit(topology.units / unit, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = job.communicate(timeout=180)
    assert job.returncode == 0, output.decode(errors="replace")


def test_plain_http_is_redirected_to_https(topology):
    status, headers, _ = topology.get("/login?next=/", port=topology.http_port, scheme="http")
    assert status == 301
    assert headers["Location"] == f"https://{SERVER_NAME}:{topology.https_port}/login?next=/"


def test_the_application_itself_redirects_a_request_that_did_not_come_over_https(topology):
    """SECURE_SSL_REDIRECT is on in the deployed settings: without nginx's
    `X-Forwarded-Proto: https`, daphne answers with a redirect, not the page."""
    status, headers, _ = topology.get(
        "/login", port=topology.daphne_ports[0], scheme="http", headers={"Host": f"{SERVER_NAME}:{topology.https_port}"}
    )
    assert status == 301
    assert headers["Location"] == f"https://{SERVER_NAME}:{topology.https_port}/login"


def test_pages_come_with_hsts_and_the_security_headers(topology):
    status, headers, _ = topology.get("/login")
    assert status == 200
    assert headers["Strict-Transport-Security"] == HSTS
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_static_files_are_served_by_nginx_from_static_root(topology):
    """A file put into STATIC_ROOT after the servers started: only nginx knows of it."""
    probe = topology.static_root / "deploy-probe.txt"
    probe.write_text("served by nginx")
    probe.chmod(0o644)
    try:
        status, headers, body = topology.get("/static/deploy-probe.txt")
    finally:
        probe.unlink()
    assert (status, body) == (200, b"served by nginx")
    assert headers["Strict-Transport-Security"] == HSTS
    assert headers["X-Content-Type-Options"] == "nosniff"
    # ES modules load only with a JavaScript media type.
    status, headers, _ = topology.get("/static/js/main.js")
    assert status == 200
    assert headers["Content-Type"].split(";")[0] in ("application/javascript", "text/javascript")


def test_a_websocket_handshake_from_a_foreign_or_missing_origin_is_refused_through_the_proxy(topology):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"wss://{SERVER_NAME}:{topology.https_port}/ws/chat/"
    for origin in ("https://evil.example", f"https://evil.example:{topology.https_port}", None):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, ssl=insecure_tls(), origin=origin, proxy=None, open_timeout=10).close()
        assert refused.value.response.status_code == 403, origin


def test_a_websocket_handshake_from_the_own_https_origin_passes_the_proxy(topology):
    """Accepted (101), then closed with 4401 because no one is signed in: the Origin rule let it through."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = f"wss://{SERVER_NAME}:{topology.https_port}/ws/chat/"
    origin = f"https://{SERVER_NAME}:{topology.https_port}"
    with connect(url, ssl=insecure_tls(), origin=origin, proxy=None, open_timeout=10) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd.code == 4401


def test_two_people_chat_over_https_and_wss_through_nginx(topology, browser):
    """Registration, a contact request and messages both ways, each person's socket on
    whichever daphne nginx picked (they meet through Redis)."""
    from tests.browser.helpers import Person

    server = SimpleNamespace(url=topology.url, plaintexts=[])
    options = {"ignore_https_errors": True}
    alice = Person(browser=browser, server=server, name="alice", context_options=options)
    bob = Person(browser=browser, server=server, name="bob", context_options=options)
    try:
        alice.register()
        bob.register()
        alice.befriend(bob)
        alice.open_chat(bob)
        alice.send("Hello Bob, over TLS")
        bob.open_chat(alice)
        expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(["Hello Bob, over TLS"])
        bob.send("Hi Alice, over wss")
        expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(["Hi Alice, over wss"])
        expect(alice.outgoing("Hello Bob, over TLS").locator("[data-status]")).to_have_attribute("data-status", "read")

        # The page is https, so its socket is wss (a page on https may not open ws://).
        assert alice.page.url.startswith(f"https://{SERVER_NAME}:{topology.https_port}/")
        cookies = {cookie["name"]: cookie for cookie in alice.context.cookies()}
        for name in ("access_token", "refresh_token", "csrftoken"):
            assert cookies[name]["secure"], name
        assert cookies["access_token"]["httpOnly"]
        assert cookies["refresh_token"]["httpOnly"]
        assert alice.page_errors == bob.page_errors == []
    finally:
        alice.close()
        bob.close()


def login(topology, email: str, *, forwarded_for: str | None = None, port: int | None = None, **options):
    """One sign-in attempt with a wrong password, as a script would send it."""
    port = port or topology.https_port
    csrf = secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json",
        "Cookie": f"csrftoken={csrf}",
        "X-CSRFToken": csrf,
        "Origin": f"https://{SERVER_NAME}:{port}",
    }
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    body = json.dumps({"email": email, "password": "not the password"}).encode()
    status, headers, _ = topology.request(
        "POST", "/api/v1/auth/login", port=port, headers=headers, body=body, **options
    )
    return status, headers


def test_a_forged_x_forwarded_for_does_not_escape_the_per_address_login_limit(topology):
    """`X-Forwarded-For: 10.9.9.9, 127.0.0.1` (and the same with a fresh first address each
    time, and a fresh email each time so that only the per-address limit can bite) once
    escaped every per-address limit. Through nginx the client is the connection's address,
    whatever the header says, so the limit bites; it stays shut without the header, and
    through a proxy that appends the forged list instead of replacing it. Another client
    (another loopback address) still has its own allowance: the address is really the
    client's, not nginx's."""
    statuses = []
    for attempt in range(30):
        forged = "10.9.9.9, 127.0.0.1" if attempt == 0 else f"10.9.{attempt}.9, 127.0.0.1"
        status, headers = login(topology, f"nobody{attempt}@example.test", forwarded_for=forged)
        statuses.append(status)
        if status != 401:
            break
    assert statuses[-1] == 429, statuses
    # The limit of this test (LOGIN_IP_LIMIT) refills slowly: it stays shut for the checks below.
    assert int(headers["Retry-After"]) > 60

    assert login(topology, "fresh@example.test")[0] == 429
    for attempt in range(3):
        status, _ = login(
            topology,
            f"appended{attempt}@example.test",
            forwarded_for=f"10.8.{attempt}.8, 127.0.0.1",
            port=topology.appending_port,
            scheme="http",
        )
        assert status == 429

    # nginx's $remote_addr, not the header and not nginx's own address, is what the app counts.
    assert login(topology, "other@example.test", source="127.0.0.2")[0] == 401


def test_the_deployed_servers_logged_no_error(topology):
    for log in Path(topology.base).glob("daphne-*.log"):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        assert " ERROR " not in text, text[-3000:]
