"""Shared helpers of the client tests: people with their own state files, on one server."""

import asyncio
import itertools
import os

from messenger_client import Client, Message
from tests.client.conftest import PASSPHRASE, PASSWORD

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
