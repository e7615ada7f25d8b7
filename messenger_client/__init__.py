"""Python client of Secured Messenger: an SDK (:class:`Client`), a command line (``python -m messenger_client``)
and, in ``messenger_client.protocol``, the end-to-end encryption protocol. Importable without Django.

A bot in a few lines::

    async with Client.open("https://chat.example.org", "bot.sqlite3", passphrase) as client:
        await client.login("bot@example.org", password)
        async for msg in client.messages():
            if msg.text is not None:  # None: an envelope that did not decrypt
                await client.send(msg.sender, "echo: " + msg.text)
"""

from .client import Client, Event, Message, SentMessage
from .errors import (
    ApiError,
    ClientError,
    DeviceRemoved,
    GroupNameNotSent,
    IdentityChanged,
    NotSetUp,
    NotSignedIn,
    TooManyConnections,
)
from .linking import LinkError, NewLink
from .store import StateFileInUse, WrongPassphrase

__all__ = [
    "ApiError",
    "Client",
    "ClientError",
    "DeviceRemoved",
    "Event",
    "GroupNameNotSent",
    "IdentityChanged",
    "LinkError",
    "Message",
    "NewLink",
    "NotSetUp",
    "NotSignedIn",
    "SentMessage",
    "StateFileInUse",
    "TooManyConnections",
    "WrongPassphrase",
]
