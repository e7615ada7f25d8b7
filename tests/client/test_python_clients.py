"""Two Python clients talk through a real server: X3DH, the ratchet, receipts, offline delivery."""

import asyncio
import contextlib
import sqlite3

import pytest

from messenger_client import ApiError, Client, IdentityChanged, NotSetUp, WrongPassphrase
from tests.client.conftest import PASSPHRASE, PASSWORD
from tests.client.helpers import befriend, next_message, registered


async def test_first_message_reply_and_many_turns_over_the_socket(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.connect()
        await bob.connect()
        sent = await alice.send(bob.email, "hello bob")
        first = await next_message(bob)
        assert (first.sender, first.text, first.id, first.failure) == (alice.email, "hello bob", sent.id, None)
        await bob.send(alice.email, "hi alice")
        assert (await next_message(alice)).text == "hi alice"
        for i in range(5):
            await alice.send(bob.email, f"ping {i}")
            assert (await next_message(bob)).text == f"ping {i}"
            await bob.send(alice.email, f"pong {i}")
            assert (await next_message(alice)).text == f"pong {i}"
        # Delivered and read receipts come back to the sender.
        await bob.mark_read(first)
        for _ in range(50):
            statuses = {m.server_id: m.status for m in alice.history(bob.email) if m.direction == "out"}
            if statuses[sent.id] == "read":
                break
            await asyncio.sleep(0.1)
        assert statuses[sent.id] == "read"
        assert all(s in ("delivered", "read") for s in statuses.values())
        # Both sides compute the same safety number.
        assert (await alice.safety_number(bob.email))["safety_number"] == (await bob.safety_number(alice.email))[
            "safety_number"
        ]


async def test_offline_recipient_gets_messages_later_over_rest_and_history_survives_reopen(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    bob_path, bob_email = bob.store.path, bob.email
    async with alice:
        async with bob:
            await befriend(alice, bob)
        # Bob is offline: no socket, state file closed. Alice sends over REST.
        for i in range(3):
            await alice.send(bob_email, f"while you were away {i}")
        async with Client.open(None, str(bob_path), PASSPHRASE) as bob:
            received = await bob.fetch()
            assert [m.text for m in received] == [f"while you were away {i}" for i in range(3)]
            assert await bob.fetch() == []  # acknowledged: not delivered again
            await bob.send(alice.email, "back now")
        received = await alice.fetch()
        assert [m.text for m in received] == ["back now"]
        # The session survives closing the state file: the ratchet goes on.
        async with Client.open(None, str(bob_path), PASSPHRASE) as bob:
            await alice.send(bob_email, "still works")
            assert [m.text for m in await bob.fetch()] == ["still works"]
            texts = [m.text for m in bob.history(alice.email)]
            assert texts[-2:] == ["back now", "still works"]


async def test_receipts_missed_while_offline_arrive_on_the_next_connect_or_over_rest(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        # Alice has no socket: whatever Bob's receipts push now reaches nobody.
        read = await alice.send(bob.email, "to be read")
        delivered = await alice.send(bob.email, "to be delivered")
        received = await bob.fetch()
        await bob.mark_read(received[0])

        def statuses():
            return {m.server_id: m.status for m in alice.history(bob.email) if m.direction == "out"}

        assert statuses() == {read.id: "sent", delivered.id: "sent"}
        answer = await alice.sync_receipts()  # the REST question
        assert (answer["read"], answer["delivered"]) == ([read.id], [delivered.id])
        assert statuses() == {read.id: "read", delivered.id: "delivered"}

        await bob.mark_read(received[1])
        await alice.connect()  # the socket asks on connect
        for _ in range(50):
            if statuses()[delivered.id] == "read":
                break
            await asyncio.sleep(0.1)
        assert statuses() == {read.id: "read", delivered.id: "read"}
        assert alice.store.awaiting_receipts(10) == []


async def test_state_file_keeps_secrets_sealed_and_needs_the_passphrase(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "a very secret sentence")
        await bob.fetch()
        private = alice.store.get_json("account")["x3dh"]
    raw = alice.store.path.read_bytes() + bob.store.path.read_bytes()
    for path in (alice.store.path, bob.store.path):
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            raw += wal.read_bytes()
    assert b"a very secret sentence" not in raw
    assert b"access_token" not in raw
    assert str(private)[:40].encode() not in raw
    with sqlite3.connect(alice.store.path) as db:
        assert db.execute("SELECT count(*) FROM secrets").fetchone()[0] >= 2
    with pytest.raises(WrongPassphrase):
        Client.open(None, str(alice.store.path), "not the passphrase")


async def test_api_errors_are_clear(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    alice_email = alice.email
    async with alice:
        with pytest.raises(ApiError) as error:
            await alice.add_contact("nobody-here@example.test")
        assert error.value.code == "user_not_found"
        with pytest.raises(ApiError) as error:
            await alice.send("nobody-here@example.test", "hi")
        assert error.value.status == 404
    other = Client.open(client_server.url, str(tmp_path / "other.sqlite3"), PASSPHRASE)
    async with other:
        with pytest.raises(ApiError) as error:
            await other.login(alice_email, "wrong password!!")
        assert error.value.status == 401
        # The right password but no keys here: a clear hint, not a silent new identity.
        with pytest.raises(NotSetUp):
            await other.login(alice_email, PASSWORD)


async def test_new_device_changes_the_safety_number_and_sending_waits_for_acceptance(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    alice_email = alice.email
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "before")
        await bob.fetch()
        old = (await bob.safety_number(alice.email))["safety_number"]
    # Alice moves to a new device (a new state file).
    async with Client.open(client_server.url, str(tmp_path / "alice-new.sqlite3"), PASSPHRASE) as alice2:
        await alice2.login(alice_email, PASSWORD, new_device=True)
        async with Client.open(None, str(bob.store.path), PASSPHRASE) as bob:
            await bob.connect()
            for _ in range(50):
                if (await bob.safety_number(alice_email))["changed"]:
                    break
                await asyncio.sleep(0.1)
            number = await bob.safety_number(alice_email)
            assert number["changed"]
            assert number["safety_number"] == old
            assert number["new_safety_number"] != old
            with pytest.raises(IdentityChanged):
                await bob.send(alice_email, "to whom?")
            assert await bob.accept_identity(alice_email)
            await bob.send(alice_email, "hello new device")
        assert [m.text for m in await alice2.fetch()] == ["hello new device"]


async def test_prekeys_are_refilled_and_the_signed_prekey_rotated(client_server, tmp_path, monkeypatch):
    bob = await registered(client_server.url, tmp_path, "bob")
    async with bob:
        for _ in range(3):
            sender = await registered(client_server.url, tmp_path, "s")
            async with sender:
                await befriend(sender, bob)
                await sender.send(bob.email, "hi")
        assert [m.text for m in await bob.fetch()] == ["hi", "hi", "hi"]
        assert (await bob.http.call("GET", "keys/prekeys/count"))["count"] == 97
        # Below the minimum, the client tops the server up with new ids (never reused).
        monkeypatch.setattr("messenger_client.keys.ONE_TIME_PREKEY_MIN", 99)
        # (Also what the client does by itself after a session consumed a one-time prekey.)
        await bob.maintain_keys()
        assert (await bob.http.call("GET", "keys/prekeys/count"))["count"] == 100
        await bob.rotate_signed_prekey()
        assert (await bob.http.call("GET", "keys/prekeys/count"))["signed_prekey_id"] == 2
        # A first message made with the new signed prekey (and a refilled one-time prekey) decrypts.
        late = await registered(client_server.url, tmp_path, "late")
        async with late:
            await befriend(late, bob)
            await late.send(bob.email, "after rotation")
            assert [m.text for m in await bob.fetch()] == ["after rotation"]


async def test_the_readme_echo_bot(client_server, tmp_path):
    bot = await registered(client_server.url, tmp_path, "bot")
    bot_email = bot.email
    await bot.close()
    user = await registered(client_server.url, tmp_path, "user")

    async def echo_bot() -> None:
        # As in the README.
        async with Client.open(client_server.url, str(tmp_path / f"{bot_email}.sqlite3"), PASSPHRASE) as client:
            await client.login(bot_email, PASSWORD)
            async for msg in client.messages():
                if msg.text is not None:  # None: an envelope that did not decrypt
                    await client.send(msg.sender, "echo: " + msg.text)

    async with user:
        await user.add_contact(bot_email)
        async with Client.open(None, str(tmp_path / f"{bot_email}.sqlite3"), PASSPHRASE) as client:
            await client.answer_request(user.email)
        task = asyncio.create_task(echo_bot())
        try:
            await user.connect()
            await user.send(bot_email, "hello bot")
            assert (await next_message(user)).text == "echo: hello bot"
            await user.send(bot_email, "again")
            assert (await next_message(user)).text == "echo: again"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.mariadb
@pytest.mark.redis
async def test_clients_on_two_server_processes_talk_through_redis(client_server, second_process, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(second_process, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.connect()
        await bob.connect()
        for i in range(3):
            await alice.send(bob.email, f"across processes {i}")
            assert (await next_message(bob)).text == f"across processes {i}"
            await bob.send(alice.email, f"and back {i}")
            assert (await next_message(alice)).text == f"and back {i}"
