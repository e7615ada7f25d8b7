"""Linking a device with the Python client (docs/PROTOCOL.md section 18), both roles, against the
live server: the SDK, the command line, and the ways a link fails with a clear message."""

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys

import pytest

from messenger_client import Client, LinkError, NotSetUp
from messenger_client.cli import _confirm_code
from messenger_client.protocol import ProtocolAccount, ProtocolError, b64encode, create_link_request
from tests.client.conftest import PASSPHRASE, PASSWORD
from tests.client.helpers import linked, registered
from tests.live_server import ROOT


async def test_a_new_state_file_is_linked_and_becomes_an_ordinary_device(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice:
        laptop = await linked(alice, tmp_path, "Laptop")
        async with laptop:
            assert laptop.device_id == 2
            assert laptop.identity_key == alice.identity_key  # one identity key per account
            assert (await laptop.me())["device"]["id"] == 2  # the sign-in is bound to the new device
            assert [(d["id"], d["current"]) for d in await laptop.devices()] == [(1, False), (2, True)]
            assert (await laptop.devices())[1]["name"] == "Laptop"
            assert laptop.store.get_meta("device_id") == "2"
            # The seed is sealed in the state file, never in the clear.
            seed = laptop._account.require().identity_seed
            raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(alice.email))
            assert seed not in raw
            assert b64encode(seed).encode() not in raw
            # An ordinary device: its own prekeys on the server, a socket, and no second link from it.
            await laptop.connect()
            assert (await laptop.maintain_keys())["uploaded"] == 0
            with pytest.raises(LinkError, match="already device 2"):
                await laptop.open_link()
        # A link the server does not know (used, cancelled, expired or made up) is a clear error.
        unknown = create_link_request(b64encode(secrets.token_bytes(16))).code
        with pytest.raises(LinkError, match="expired, was cancelled or was already used"):
            await alice.accept_link(unknown)


async def test_the_code_is_read_from_the_qr_url_and_a_declined_link_is_cancelled(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice, Client.open(client_server.url, str(tmp_path / "new.sqlite3"), PASSPHRASE) as new:
        with pytest.raises(NotSetUp):
            await new.login(alice.email, PASSWORD)
        link = await new.open_link()
        offer = await alice.accept_link(f"  https://chat.example.org/#link={link.code}\n")
        opening = await new.wait_for_link_offer(link)
        assert opening.verification_code == offer.verification_code
        assert len(offer.verification_code) == 7
        assert offer.verification_code[3] == " "
        # The user says the codes differ: the box is never opened and the link is cancelled.
        opening.discard()
        await new.cancel_link(link.link_id)
        await asyncio.wait_for(alice.wait_for_link_closed(link.link_id), 10)
        with pytest.raises(ProtocolError):
            await new.complete_link(link, opening)  # the opening was discarded
        assert new.device_id is None
        assert len(await alice.devices()) == 1


async def test_link_failures_are_clear(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice, Client.open(client_server.url, str(tmp_path / "new.sqlite3"), PASSPHRASE) as new:
        with pytest.raises(ProtocolError, match="not a link code"):
            await alice.accept_link("sm-link:2:abc")
        with pytest.raises(ProtocolError, match="canonical base64"):
            await alice.accept_link("sm-link:1:not base64:AAAA")
        with pytest.raises(NotSetUp):
            await new.login(alice.email, PASSWORD)
        # A pending sign-in cannot answer a link (it holds no key to give).
        with pytest.raises(NotSetUp):
            await new.accept_link("sm-link:1:" + b64encode(bytes(16)) + ":" + b64encode(bytes(32)))
        links = [await new.open_link() for _ in range(3)]
        with pytest.raises(LinkError, match="3 open links"):
            await new.open_link()
        for link in links[1:]:
            await new.cancel_link(link.link_id)
        link = links[0]
        # A box sealed with an identity key that is not the account's (another account's device, or a
        # bug): the new device refuses it and nothing is linked.
        stranger = ProtocolAccount.create()
        monkeypatch.setattr(alice._account, "require", lambda: stranger)
        offer = await alice.accept_link(link.code)
        monkeypatch.undo()
        opening = await new.wait_for_link_offer(link)
        assert opening.verification_code == offer.verification_code
        with pytest.raises(LinkError, match="not this account's"):
            await new.complete_link(link, opening)
        assert new.device_id is None
        assert new.store.get_json("account") is None
        assert len(await alice.devices()) == 1
        # The other device answering a link that is gone, and the new device waiting for one.
        await new.cancel_link(link.link_id)
        with pytest.raises(LinkError, match="expired, was cancelled"):
            await alice.accept_link(link.code)
        with pytest.raises(LinkError, match="expired, was cancelled"):
            await new.wait_for_link_offer(link)


async def test_too_many_devices_is_a_clear_error(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice:
        devices = [await linked(alice, tmp_path, f"Device {n}") for n in range(2, 6)]
        try:
            with pytest.raises(LinkError, match="as many devices as the server allows"):
                await linked(alice, tmp_path, "One too many")
        finally:
            for device in devices:
                await device.close()


def _cli(state, *argv, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "MESSENGER_PASSPHRASE": PASSPHRASE, "MESSENGER_PASSWORD": PASSWORD}
    env.pop("MESSENGER_LINK_CODE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "messenger_client", "--state", str(state), *argv],
        cwd=ROOT,
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def _line_with(process: subprocess.Popen, text: str) -> str:
    for line in process.stdout:
        if text in line:
            return line.strip()
    raise AssertionError(f"no line with {text!r}; stderr: {process.stderr.read()}")


async def test_two_terminals_link_with_the_command_line(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    email, existing_state = alice.email, alice.store.path
    await alice.close()
    new_state = tmp_path / "new.sqlite3"
    new = _cli(new_state, "--server", client_server.url, "link", email, "--device-name", "Second terminal")
    try:
        _line_with(new, "link a new device with this code")
        code = new.stdout.readline().strip()
        assert code.startswith("sm-link:1:")
        existing = _cli(existing_state, "link", "accept", code)
        try:
            shown_there = _line_with(existing, "Verification code:")
            assert _line_with(new, "Verification code:") == shown_there
            out, err = new.communicate("y\n", timeout=60)
            assert new.returncode == 0, err
            assert f"Linked: this state file is device 2 of {email}." in out
            out, err = existing.communicate(timeout=60)
            assert existing.returncode == 0, err
            assert "Linked device 2 (Second terminal)." in out
        finally:
            existing.kill()
    finally:
        new.kill()
    # The new terminal is a device: it lists the account's devices as device 2.
    listing = subprocess.run(
        [sys.executable, "-m", "messenger_client", "--state", str(new_state), "devices"],
        cwd=ROOT,
        env={**os.environ, "MESSENGER_PASSPHRASE": PASSPHRASE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Second terminal  (this device)" in listing.stdout


async def test_a_declined_code_on_the_command_line_links_nothing(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    email, existing_state = alice.email, alice.store.path
    await alice.close()
    new = _cli(tmp_path / "new.sqlite3", "--server", client_server.url, "link", email)
    try:
        _line_with(new, "link a new device with this code")
        code = new.stdout.readline().strip()
        existing = _cli(existing_state, "link", "accept", code)
        try:
            _line_with(existing, "Verification code:")
            _line_with(new, "Verification code:")
            out, err = new.communicate("n\n", timeout=60)
            assert new.returncode == 1
            assert "error: the verification codes were not confirmed: nothing was linked" in err
            out, err = existing.communicate(timeout=60)
            assert existing.returncode == 0, err
            assert "The link closed without a new device" in out
        finally:
            existing.kill()
    finally:
        new.kill()


async def test_ctrl_c_on_the_existing_device_cancels_the_link(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    email, existing_state = alice.email, alice.store.path
    await alice.close()
    async with Client.open(client_server.url, str(tmp_path / "new.sqlite3"), PASSPHRASE) as new:
        with pytest.raises(NotSetUp):
            await new.login(email, PASSWORD)
        link = await new.open_link()
        existing = _cli(existing_state, "link", "accept", link.code)
        try:
            shown_there = _line_with(existing, "Verification code:")
            opening = await new.wait_for_link_offer(link)
            assert shown_there.endswith(opening.verification_code)
            existing.send_signal(signal.SIGINT)
            assert existing.wait(timeout=60) == 130
        finally:
            existing.kill()
        with pytest.raises(LinkError, match="expired, was cancelled"):
            await new.complete_link(link, opening)
        assert new.device_id is None


async def test_a_script_confirms_only_the_code_the_other_device_shows(monkeypatch):
    monkeypatch.setenv("MESSENGER_LINK_CODE", "012345")
    assert await _confirm_code("012 345")
    monkeypatch.setenv("MESSENGER_LINK_CODE", "012 346")
    assert not await _confirm_code("012 345")
    monkeypatch.setenv("MESSENGER_LINK_CODE", "y")  # not a blanket yes
    assert not await _confirm_code("012 345")


async def test_a_tampered_box_aborts_the_link(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice, Client.open(client_server.url, str(tmp_path / "new.sqlite3"), PASSPHRASE) as new:
        with pytest.raises(NotSetUp):
            await new.login(alice.email, PASSWORD)
        link = await new.open_link()
        call = alice.http.call

        async def tampering(method, endpoint, body=None, **kwargs):
            if endpoint == "devices/links/offer":
                box = bytearray(base64.b64decode(body["ciphertext"]))
                box[0] ^= 1
                body = {**body, "ciphertext": base64.b64encode(bytes(box)).decode()}
            return await call(method, endpoint, body, **kwargs)

        monkeypatch.setattr(alice.http, "call", tampering)
        offer = await alice.accept_link(link.code)
        opening = await new.wait_for_link_offer(link)
        assert opening.verification_code == offer.verification_code  # the code binds the keys, not the box
        with pytest.raises(ProtocolError, match="authentication failed"):
            await new.complete_link(link, opening)
        await asyncio.wait_for(alice.wait_for_link_closed(link.link_id), 10)  # cancelled
        assert new.store.get_json("account") is None
