"""Test helpers: contacts made through the public contacts API, sockets opened the way a
browser opens them (Origin and the access-token cookie), and envelopes sent through the
service."""

import json
import uuid

from channels.testing import WebsocketCommunicator
from django.conf import settings

from chat.routing import websocket_application
from tests.helpers import Account, CsrfClient

HOST = "localhost"
ORIGIN = f"http://{HOST}"


def make_contacts(a: Account, b: Account) -> None:
    """a asks b, b accepts: they are accepted contacts."""
    response = a.client.post_json("/api/v1/contacts/requests", {"email": b.email})
    assert response.status_code == 201, response.content
    response = b.client.put_json(f"/api/v1/contacts/requests/{response.json()['id']}", {"action": "accept"})
    assert response.status_code == 200, response.content


def request_contact(a: Account, b: Account) -> None:
    """a asks b; b has not answered: a pending request, not a contact."""
    response = a.client.post_json("/api/v1/contacts/requests", {"email": b.email})
    assert response.status_code == 201, response.content


def access_cookie(account: Account) -> str:
    return account.client.cookies[settings.AUTH_COOKIE_ACCESS].value


def ws_headers(token: str | None = None, origin: str | None = ORIGIN) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", HOST.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if token is not None:
        headers.append((b"cookie", f"{settings.AUTH_COOKIE_ACCESS}={token}".encode()))
    return headers


def communicator(account: Account | None = None, *, token: str | None = None, origin: str | None = ORIGIN):
    if account is not None and token is None:
        token = access_cookie(account)
    return WebsocketCommunicator(websocket_application, "/ws/chat/", headers=ws_headers(token, origin))


async def open_socket(account: Account, *, expect_backlog: int = 0) -> tuple[WebsocketCommunicator, list[dict]]:
    """A connected socket whose backlog was read up to queue_empty; returns it and the
    `message` frames of the backlog."""
    socket = communicator(account)
    connected, _ = await socket.connect()
    assert connected
    backlog = []
    while True:
        frame = await receive(socket)
        if frame["type"] == "queue_empty":
            break
        backlog.append(frame)
    assert len(backlog) == expect_backlog, backlog
    return socket, backlog


async def receive(socket: WebsocketCommunicator, timeout: float = 2) -> dict:
    return json.loads(await socket.receive_from(timeout=timeout))


async def send_frame(socket: WebsocketCommunicator, frame: dict) -> None:
    await socket.send_to(text_data=json.dumps(frame))


def send_payload(to: Account, *, body: str = "Y2lwaGVydGV4dA==", kind: str = "message", client_id=None) -> dict:
    return {"type": "send", "client_id": str(client_id or uuid.uuid4()), "to": to.email, "kind": kind, "body": body}


def second_device(account: Account, name: str = "Laptop") -> Account:
    """Another device of the account (made in the database: contacts.tests.helpers.add_device)
    and an Account signed in on it. Synchronous: wrap it in database_sync_to_async."""
    from accounts.models import User
    from contacts.tests.helpers import add_device

    user = User.objects.get(pk=account.id)
    user.device = account.keys
    device = add_device(user, name=name)
    client = CsrfClient()
    body = {"email": account.email, "password": account.password, "device_id": device.device_id}
    assert client.post_json("/api/v1/auth/login", body).json()["device"]["id"] == device.device_id
    return Account(account.email, account.password, device.keys, client, account.id)
