"""Sockets and ended sessions: a socket of an ended session is closed with 4403 at once, its
access token cannot open a new one, and the new device's sockets (tokens of the new session
generation) stay open."""

from http.cookies import SimpleCookie

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from accounts.models import User
from accounts.sessions import SESSION_REVOKED, sessions_end
from chat.consumers import ChatConsumer
from chat.tests.helpers import access_cookie, communicator, open_socket, receive
from realtime import bus
from tests.helpers import CsrfClient, DeviceKeys

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_REVOKED = {"type": "websocket.close", "code": 4403}
CLOSED_UNAUTHENTICATED = {"type": "websocket.close", "code": 4401}


async def handshake_with(token: str) -> dict:
    socket = communicator(token=token)
    await socket.connect(timeout=10)
    output = await socket.receive_output(timeout=10)
    await socket.disconnect()
    return output


async def test_after_logout_the_old_access_token_opens_no_socket(alice):
    token = access_cookie(alice)
    socket, _ = await open_socket(alice)
    assert (await sync_to_async(alice.client.post_json)("/api/v1/auth/logout")).status_code == 204
    assert await socket.receive_output(timeout=10) == CLOSED_REVOKED
    await socket.disconnect()
    assert await handshake_with(token) == CLOSED_UNAUTHENTICATED


@sync_to_async
def change_password(user_id: int) -> None:
    user = User.objects.get(pk=user_id)
    user.set_password("a brand new passphrase")
    user.save()


async def test_a_password_change_closes_every_socket(alice):
    token = access_cookie(alice)
    socket, _ = await open_socket(alice)
    await change_password(alice.id)
    assert await socket.receive_output(timeout=10) == CLOSED_REVOKED
    await socket.disconnect()
    assert await handshake_with(token) == CLOSED_UNAUTHENTICATED


async def test_identity_reset_closes_the_old_browser_and_keeps_the_new_device_connected(alice):
    old_socket, _ = await open_socket(alice)
    new_device = CsrfClient()
    new_device.cookies = SimpleCookie({name: morsel.value for name, morsel in alice.client.cookies.items()})
    payload = {"password": alice.password, **DeviceKeys().registration_keys(5)}
    response = await sync_to_async(new_device.put_json)("/api/v1/keys/identity", payload)
    assert response.status_code == 200
    assert await old_socket.receive_output(timeout=10) == CLOSED_REVOKED
    await old_socket.disconnect()

    new_socket = communicator(token=response.cookies["access_token"].value)
    assert (await new_socket.connect(timeout=10))[0]
    assert await receive(new_socket) == {"type": "queue_empty"}
    # A late `session.revoked` of the generation the new token already carries closes nothing.
    generation = await sync_to_async(lambda: User.objects.get(pk=alice.id).session_generation.value)()
    group = bus.user_group(alice.id)
    await get_channel_layer().group_send(group, {"type": SESSION_REVOKED, "generation": generation})
    # A marker sent after it arrives after it (one channel's messages keep their order): the
    # notice was handled by then, and the socket is still open.
    marker = {"type": "test_marker"}
    await get_channel_layer().group_send(group, {"type": bus.PUSH_EVENT, "event": marker})
    assert await receive(new_socket) == marker
    await new_socket.disconnect()


async def test_sessions_ended_between_the_handshake_check_and_the_group_join_still_close(alice, monkeypatch):
    """The revocation push went to the user's group before this socket was in it: the check
    after joining catches it."""
    check_after_join = ChatConsumer._session_still_current

    async def sessions_end_first(self):
        await sync_to_async(sessions_end)(user_id=alice.id, reason="test")
        return await check_after_join(self)

    monkeypatch.setattr(ChatConsumer, "_session_still_current", sessions_end_first)
    socket = communicator(alice)
    await socket.connect(timeout=10)
    assert await socket.receive_output(timeout=10) == CLOSED_REVOKED
    await socket.disconnect()
