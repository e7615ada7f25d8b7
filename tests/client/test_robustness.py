"""What goes wrong on real networks: both sides starting at once, redelivery, tampering, expired tokens,
being signed out, a crash between storing and sending, a receipt the server could not apply."""

import asyncio
import base64
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from messenger_client import Client, NotSignedIn, StateFileInUse, TooManyConnections
from messenger_client import receipts as receipts_module
from tests.client.conftest import PASSPHRASE, start_server
from tests.client.helpers import befriend, next_message, registered


async def test_both_sides_start_a_session_at_the_same_time_and_converge(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        # Neither has seen the other's first message yet: two X3DH runs cross.
        await asyncio.gather(alice.send(bob.email, "alice first"), bob.send(alice.email, "bob first"))
        assert [m.text for m in await bob.fetch()] == ["alice first"]
        assert [m.text for m in await alice.fetch()] == ["bob first"]
        for i in range(3):
            await alice.send(bob.email, f"a{i}")
            await bob.send(alice.email, f"b{i}")
            assert [m.text for m in await bob.fetch()] == [f"a{i}"]
            assert [m.text for m in await alice.fetch()] == [f"b{i}"]


async def test_a_redelivered_envelope_is_stored_once_and_a_tampered_one_is_dropped(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "one")
        (frame,) = (await bob.http.call("GET", "messages/?after=0"))["messages"]
        first = await bob._inbox.decrypt(frame)
        assert first.text == "one"
        # The acknowledgement was lost: the same envelope comes again and is only acknowledged again.
        assert await bob._inbox.decrypt(frame) is None
        await bob.http.call("POST", "messages/ack", {"ids": [frame["id"]]})

        await alice.send(bob.email, "two")
        (frame,) = (await bob.http.call("GET", "messages/?after=0"))["messages"]
        body = bytearray(base64.b64decode(frame["body"]))
        body[-1] ^= 1
        tampered = {**frame, "body": base64.b64encode(bytes(body)).decode()}
        message = await bob._inbox.decrypt(tampered)
        assert message.text is None
        assert message.failure == "authentication_failed"
        # The session is unharmed: later messages still decrypt.
        await bob.http.call("POST", "messages/ack", {"ids": [frame["id"]]})
        await alice.send(bob.email, "three")
        assert [m.text for m in await bob.fetch()] == ["three"]
        assert [(m.text, m.failure) for m in bob.history(alice.email)] == [
            ("one", None),
            (None, "authentication_failed"),
            ("three", None),
        ]


async def test_an_expired_access_token_is_refreshed_and_logout_closes_the_stream(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice:
        alice.http.cookies.pop("access_token")
        assert await alice.contacts() == []  # 401 -> refresh -> retry
        assert "access_token" in alice.http.cookies
        await alice.connect()
        stream = alice.messages()
        reader = asyncio.create_task(anext(stream))
        # Signing out elsewhere (here: the same session) closes the socket with 4403.
        await alice.logout()
        with pytest.raises(NotSignedIn):
            await asyncio.wait_for(reader, 10)
        with pytest.raises(NotSignedIn):
            await alice.contacts()


async def test_an_envelope_stored_but_never_confirmed_is_sent_when_the_socket_connects(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        # A crash between storing the new session and sending: the envelope waits in the outbox.
        await alice._outbox.encrypt(bob.email, "survived a crash")
        assert [m.status for m in alice.history(bob.email)] == ["pending"]
        await bob.connect()
        await alice.connect()
        assert (await next_message(bob)).text == "survived a crash"
        assert [m.status for m in alice.history(bob.email)] != ["pending"]


async def test_a_state_file_is_used_by_one_process_at_a_time(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice:
        with pytest.raises(StateFileInUse):
            Client.open(None, str(alice.store.path), PASSPHRASE)
    # Closed: free again.
    async with Client.open(None, str(alice.store.path), PASSPHRASE) as again:
        assert await again.contacts() == []


async def test_without_file_locks_two_clients_never_present_a_rotated_refresh_token(
    client_server, tmp_path, monkeypatch
):
    monkeypatch.setattr("messenger_client.store.fcntl", None)  # as on a system without flock
    alice = await registered(client_server.url, tmp_path, "alice")
    other = Client.open(None, str(alice.store.path), PASSPHRASE)
    async with alice, other:
        alice.http.cookies.pop("access_token")
        assert await alice.contacts() == []  # alice rotates the refresh token and stores the new one
        other.http.cookies.pop("access_token")
        # Refreshing with the old token would look like theft and revoke every session: the stored
        # newer cookies are used instead.
        assert await other.contacts() == []
        assert await alice.contacts() == []


class RecordingSocket:
    """Stands in for the client's WebSocket: keeps what is sent, or is closed."""

    def __init__(self):
        self.sent: list[dict] = []
        self.closed = False

    async def send(self, raw: str) -> None:
        if self.closed:
            raise ConnectionClosed(None, None)
        self.sent.append(json.loads(raw))


async def test_an_ack_or_read_the_server_could_not_apply_is_sent_again(tmp_path, monkeypatch):
    """The server's error names the failed frame and its ids (its database connection was cut):
    the client sends them again after a short backoff, reads first; with the socket gone they
    wait for the next connect. Other errors are not receipts."""
    monkeypatch.setattr(receipts_module, "RECEIPT_RETRY_FIRST", 0.01)
    client = Client.open("http://127.0.0.1:9", str(tmp_path / "state.sqlite3"), PASSPHRASE)
    async with client:
        client._socket._ws = socket = RecordingSocket()
        error = {"type": "error", "code": "server_error", "detail": "x"}
        await client._socket.dispatch({**error, "frame": "ack", "ids": [3, 4]})
        await client._socket.dispatch({**error, "frame": "read", "ids": [5]})
        await asyncio.wait_for(client._receipts._retry, 5)
        assert socket.sent == [{"type": "read", "ids": [5]}, {"type": "ack", "ids": [3, 4]}]

        socket.closed = True
        await client._socket.dispatch({**error, "frame": "ack", "ids": [6]})
        await asyncio.wait_for(client._receipts._retry, 5)
        client._socket._ws = socket = RecordingSocket()  # reconnected
        await client._receipts.send_failed()
        assert socket.sent == [{"type": "ack", "ids": [6]}]

        await client._socket.dispatch({**error, "code": "invalid_ids"})
        assert client._receipts._retry.done()
        assert socket.sent == [{"type": "ack", "ids": [6]}]


async def test_a_socket_over_the_accounts_cap_raises_too_many_connections_without_a_retry_loop(tmp_path):
    """The server closes a socket over CHAT_MAX_SOCKETS_PER_USER with 4429: connect() says so
    plainly, and the client does not hammer the server with new attempts."""
    server, stop = start_server(tmp_path, CHAT_MAX_SOCKETS_PER_USER="1")
    try:
        alice = await registered(server.url, tmp_path, "alice")
        async with alice:
            async with connect(
                alice._socket.url,
                origin=alice.server,
                additional_headers={"Cookie": alice.http.cookie_header("/ws/chat/")},
            ) as other:
                assert json.loads(await other.recv()) == {"type": "queue_empty"}  # the one place is taken
                with pytest.raises(TooManyConnections, match="too many connections"):
                    await alice.connect(timeout=10)
                assert alice._socket.task.done()  # given up: no loop
        assert server.log_text().count("WSCONNECT /ws/chat/") == 2
    finally:
        stop()
