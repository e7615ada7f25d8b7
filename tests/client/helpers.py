"""Shared helpers of the client tests: people with their own state files, on one server."""

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from messenger_client import Client, Event, Message, NotSetUp
from messenger_client.protocol import ProtocolAccount
from messenger_client.store import Store
from tests.client.conftest import PASSPHRASE, PASSWORD, Server
from tests.live_server import ROOT

_numbers = itertools.count(1)


def new_email(name: str) -> str:
    return f"{name}{next(_numbers)}-{os.getpid()}@example.test"


async def registered(server_url: str, tmp_path, name: str) -> Client:
    email = new_email(name)
    client = Client.open(server_url, str(tmp_path / f"{email}.sqlite3"), PASSPHRASE)
    await client.register(email, PASSWORD)
    return client


async def befriend(a: Client, b: Client) -> None:
    await a.add_contact(b.email)
    await b.answer_request(a.email)


async def next_message(client: Client, timeout: float = 10.0) -> Message:
    """The next message from the client's live stream."""
    stream = client.messages()
    try:
        return await asyncio.wait_for(anext(stream), timeout)
    finally:
        await stream.aclose()


async def next_event(client: Client, kind: str, timeout: float = 10.0) -> Event:
    """The next event of type ``kind`` from the client's event stream (others are skipped)."""

    async def wait() -> Event:
        async for event in client.events():
            if event.type == kind:
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(wait(), timeout)


def add_device(
    server: Server, tmp_path: Path, email: str, account: dict, *, name: str = "Phone", one_time_prekeys: int = 10
) -> Path:
    """Another device of ``email``'s account, with a state file of its own (returned, not signed in):
    the account's identity seed taken from ``account`` (a state file's sealed ``account``), its own
    signed prekey and one-time prekeys, registered in the server's database (device_maker.py): what
    linking (docs/PROTOCOL.md section 18, ``linked`` below) makes, without its round trips."""
    seed = ProtocolAccount.from_json(account).identity_seed
    keys = ProtocolAccount.from_linked_seed(seed, one_time_prekeys=one_time_prekeys)
    request = {
        "email": email,
        "name": name,
        "signed_prekey": keys.signed_prekey(),
        "one_time_prekeys": keys.one_time_prekeys(),
    }
    made = subprocess.run(
        [sys.executable, "-m", "tests.client.device_maker"],
        input=json.dumps(request),
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    device_id = int(made.stdout.strip())
    path = tmp_path / f"{email}-device{device_id}.sqlite3"
    store = Store(path, PASSPHRASE)
    try:
        with store.transaction():
            store.put_json("account", keys.to_json())
            store.set_meta("email", email)
            store.set_meta("server", server.url)
            store.set_meta("device_id", str(device_id))
            store.set_meta("signed_prekey_created_at", str(time.time()))
    finally:
        store.close()
    return path


def stored_account(state: Path) -> dict:
    """The sealed ``account`` of a state file no client has open."""
    store = Store(state, PASSPHRASE)
    try:
        return store.get_json("account")
    finally:
        store.close()


async def linked(existing: Client, tmp_path: Path, name: str = "Laptop") -> Client:
    """A new device of ``existing``'s account, linked through the real link flow (docs/PROTOCOL.md
    section 18) with a state file of its own; signed in as that device."""
    new = Client.open(existing.server, str(tmp_path / f"{existing.email}-{name}-{next(_numbers)}.sqlite3"), PASSPHRASE)
    try:
        with pytest.raises(NotSetUp):  # no keys here: a pending sign-in
            await new.login(existing.email, PASSWORD)
        link = await new.open_link()
        offer = await existing.accept_link(link.code)
        opening = await new.wait_for_link_offer(link)
        assert opening.verification_code == offer.verification_code
        await new.complete_link(link, opening, device_name=name)
    except BaseException:
        await new.close()
        raise
    return new
