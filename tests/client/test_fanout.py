"""Version 2 in the Python client (docs/PROTOCOL.md sections 16, 17 and 19) against the live server:
a message encrypted once per device, our own messages on our other devices, read state shared by
the account's devices, device changes learnt from ``devices_changed`` and ``device_mismatch``."""

import pytest

from messenger_client import ApiError, Client, IdentityChanged, NotSetUp
from messenger_client.protocol import ProtocolAccount, b64encode
from tests.client.conftest import PASSPHRASE, PASSWORD
from tests.client.helpers import befriend, linked, next_event, next_message, registered
from tests.client.test_store import to_schema_1


async def history_of(client, peer):
    return [(m.direction, m.status, m.text) for m in client.history(peer)]


async def test_a_contacts_message_reaches_both_devices_and_ours_show_on_the_other(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(bob, alice)
        laptop = await linked(alice, tmp_path)
        async with laptop:
            await laptop.connect()
            await alice.connect()
            sent = await bob.send(alice.email, "to all of Alice's devices")
            on_phone, on_laptop = await next_message(alice), await next_message(laptop)
            assert on_phone.text == on_laptop.text == "to all of Alice's devices"
            assert on_phone.message_id == on_laptop.message_id == sent.id
            assert on_phone.id != on_laptop.id  # each device has its own copy
            assert (on_phone.sender, on_laptop.sender) == (bob.email, bob.email)

            # Sent from the phone: bob reads it, and the laptop files it as sent in the conversation.
            reply = await alice.send(bob.email, "sent from the phone")
            event = await next_event(laptop, "sent_elsewhere")
            assert event.data == {"to": bob.email, "id": reply.id, "text": "sent from the phone"}
            assert (await history_of(laptop, bob.email))[-1] == ("out", "sent", "sent from the phone")
            assert [m.text for m in await bob.fetch()] == ["sent from the phone"]

            # Read on the phone: the laptop hears read_elsewhere and marks it read without a receipt.
            assert (await history_of(laptop, bob.email))[0] == ("in", "received", "to all of Alice's devices")
            await alice.mark_read(on_phone)
            assert (await next_event(laptop, "read_elsewhere")).data == {"ids": [sent.id]}
            assert (await history_of(laptop, bob.email))[0] == ("in", "read", "to all of Alice's devices")
            assert (await bob.sync_receipts())["read"] == [sent.id]


async def test_a_device_that_was_offline_learns_what_another_device_read(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(bob, alice)
        laptop = await linked(alice, tmp_path)
        async with laptop:
            await bob.send(alice.email, "read elsewhere while the laptop slept")
            [on_laptop] = await laptop.fetch()
            [on_phone] = await alice.fetch()
            await alice.mark_read(on_phone)
            assert (await history_of(laptop, bob.email))[0][1] == "received"
            assert on_laptop.message_id in (await laptop.sync_receipts())["read"]
            assert (await history_of(laptop, bob.email))[0][1] == "read"


async def test_a_peer_with_two_devices_receives_on_both(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        bob_laptop = await linked(bob, tmp_path)
        async with bob_laptop:
            for text in ("first", "second"):  # X3DH with each device, then the ratchets
                await alice.send(bob.email, text)
            assert [m.text for m in await bob.fetch()] == ["first", "second"]
            assert [m.text for m in await bob_laptop.fetch()] == ["first", "second"]
            assert sorted(alice.store.session_devices(bob.email)) == [1, 2]
            # Both of bob's devices answer; alice has one session per device.
            await bob.send(alice.email, "from the phone")
            await bob_laptop.send(alice.email, "from the laptop")
            assert [m.text for m in await alice.fetch()] == ["from the phone", "from the laptop"]


async def test_an_unlinked_device_gets_nothing_after_a_device_mismatch_round(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        laptop = await linked(alice, tmp_path)
        async with laptop:
            await alice.send(bob.email, "while the laptop is linked")
            assert [m.text for m in await laptop.fetch()] == []  # its own copy is filed, not yielded
            assert (await history_of(laptop, bob.email)) == [("out", "sent", "while the laptop is linked")]
            assert alice.store.session_devices(alice.email) == [2]
            await alice.unlink_device(2)  # without a socket alice hears no devices_changed
            answers = []
            submit = alice._outbox._submit

            async def recording(frame):
                try:
                    return await submit(frame)
                except ApiError as error:
                    answers.append((error.code, error.body.get("extra")))
                    raise

            monkeypatch.setattr(alice._outbox, "_submit", recording)
            sent = await alice.send(bob.email, "after the unlink")
            assert answers == [("device_mismatch", {"to": [], "own": [2]})]
            assert alice.store.session_devices(alice.email) == []  # the removed device's sessions are gone
            assert [m.text for m in await bob.fetch()] == ["while the laptop is linked", "after the unlink"]
            assert alice.store.get_json(f"outbox:{sent.client_id}") is None
            with pytest.raises(Exception, match="unlinked"):
                await laptop.fetch()


async def test_a_device_linked_meanwhile_is_added_after_a_mismatch_and_devices_changed_drops_sessions(
    client_server, tmp_path
):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "one device")  # alice now knows bob's devices: [1]
        bob_laptop = await linked(bob, tmp_path)
        async with bob_laptop:
            await alice.send(bob.email, "two devices")  # missing {"to": [2]}: encrypted for it, sent again
            assert [m.text for m in await bob_laptop.fetch()] == ["two devices"]
            assert [m.text for m in await bob.fetch()] == ["one device", "two devices"]
            # Connected, alice hears devices_changed when bob unlinks the laptop, and drops its session.
            await alice.connect()
            await bob.unlink_device(2)
            # The event comes once the device list was asked again and the laptop's session dropped.
            assert (await next_event(alice, "devices_changed")).data == {"email": bob.email}
            assert alice.store.session_devices(bob.email) == [1]
            await alice.send(bob.email, "one device again")
            assert [m.text for m in await bob.fetch()] == ["one device again"]


async def test_a_mismatch_answered_on_the_socket_is_repaired_there(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        bob_laptop = await linked(bob, tmp_path)
        async with bob_laptop:
            await alice.connect()
            alice._outbox._device_lists[bob.email.lower()] = [1]  # as if the laptop's notice was missed
            frames = []
            send = alice._socket.send

            async def recording(frame):
                if frame.get("type") == "send":
                    frames.append(frame)
                return await send(frame)

            monkeypatch.setattr(alice._socket, "send", recording)
            sent = await alice.send(bob.email, "over the socket")
            assert [[c["device"] for c in f["copies"]] for f in frames] == [[1], [1, 2]]
            assert frames[0]["copies"][0] == frames[1]["copies"][0]  # the first copy's ciphertext reused
            assert frames[0]["client_id"] == frames[1]["client_id"] == sent.client_id
            assert [m.text for m in await bob_laptop.fetch()] == ["over the socket"]
            assert [m.text for m in await bob.fetch()] == ["over the socket"]


async def test_three_mismatches_in_a_row_fail_the_message(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        attempts = []

        async def always_mismatch(frame):
            attempts.append(frame)
            body = {"code": "device_mismatch", "missing": {"to": [], "own": []}, "extra": {"to": [], "own": []}}
            raise ApiError(409, "device_mismatch", "The recipient's or your own devices changed.", body=body)

        monkeypatch.setattr(alice._outbox, "_submit", always_mismatch)
        with pytest.raises(ApiError, match="changed 3 times in a row"):
            await alice.send(bob.email, "never delivered")
        assert len(attempts) == 3
        assert len({frame["client_id"] for frame in attempts}) == 1  # always the same client_id
        [stored] = alice.history(bob.email)
        assert (stored.status, stored.text) == ("failed", "never delivered")
        assert alice.store.pending_outgoing() == []


async def test_a_recipient_without_devices_and_a_malformed_mismatch_fail_clearly(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        call = alice.http.call

        async def no_devices(method, endpoint, body=None, **kwargs):
            answer = await call(method, endpoint, body, **kwargs)
            if endpoint == "keys/devices" and body["email"] == bob.email:
                answer = {**answer, "device_ids": []}
            return answer

        monkeypatch.setattr(alice.http, "call", no_devices)
        with pytest.raises(ApiError, match="no device"):
            await alice.send(bob.email, "nobody home")
        assert alice.history(bob.email) == []
        monkeypatch.undo()

        async def bad_mismatch(frame):
            raise ApiError(0, "device_mismatch", "changed", body={"missing": {"to": ["1"]}, "extra": {}})

        monkeypatch.setattr(alice._outbox, "_submit", bad_mismatch)
        with pytest.raises(ApiError, match="malformed"):
            await alice.send(bob.email, "bad answer")
        assert [m.status for m in alice.history(bob.email)] == ["failed"]


async def test_a_version_1_state_file_keeps_its_sessions_as_sessions_with_device_1(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with bob:
        async with alice:
            await befriend(alice, bob)
            await alice.send(bob.email, "before the upgrade")
            assert [m.text for m in await bob.fetch()] == ["before the upgrade"]
            await bob.send(alice.email, "reply")
            assert [m.text for m in await alice.fetch()] == ["reply"]
        to_schema_1(alice.store.path, PASSPHRASE)
        async with Client.open(None, str(alice.store.path), PASSPHRASE) as upgraded:
            await upgraded.login(alice.email, PASSWORD)
            assert upgraded.store.session_devices(bob.email) == [1]
            frame = await upgraded._outbox.encrypt(bob.email, "after the upgrade")
            assert [c["kind"] for c in frame["copies"]] == ["message"]  # the old session, no new X3DH
            await upgraded.resend_pending()
            assert [m.text for m in await bob.fetch()] == ["after the upgrade"]
            await bob.send(alice.email, "and back")
            assert [m.text for m in await upgraded.fetch()] == ["and back"]
            assert [m.direction for m in upgraded.history(bob.email)] == ["out", "in", "out", "in"]
            # A frame a version-1 client left in the outbox ({kind, body}: for device 1) is completed for
            # bob's new device once the server answers device_mismatch.
            bob_laptop = await linked(bob, tmp_path)
            async with bob_laptop:
                upgraded._outbox._device_lists[bob.email.lower()] = [1]
                frame = await upgraded._outbox.encrypt(bob.email, "left by version 1")
                [copy] = frame["copies"]
                v1 = {"client_id": frame["client_id"], "to": bob.email, "kind": copy["kind"], "body": copy["body"]}
                upgraded.store.put_json(f"outbox:{frame['client_id']}", v1)
                assert await upgraded.resend_pending() == 1
                assert [m.text for m in await bob.fetch()] == ["left by version 1"]
                assert [m.text for m in await bob_laptop.fetch()] == ["left by version 1"]


# -- what the server (or a stranger) cannot make a device accept --------------------------------------------


async def test_a_copy_labelled_as_ours_but_sealed_by_another_identity_is_refused(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice:
        keys = alice._account.require()
        [prekey] = keys.one_time_prekeys()[:1]
        # A stranger runs X3DH with this device's published keys; the server labels it as alice's own device 2.
        _, out = await ProtocolAccount.create().initiate_session(keys.bundle(prekey["key_id"]), b"I am you")
        frame = {
            "id": 10_001,
            "message_id": 10_001,
            "from": alice.email,
            "from_device": 2,
            "to": "victim@example.test",
            "kind": out.kind,
            "body": out.body,
        }
        message = await alice._inbox.decrypt(frame)
        assert (message.text, message.failure) == (None, "session_mismatch")
        assert alice.store.session_devices(alice.email) == []
        assert prekey in keys.one_time_prekeys()  # no one-time prekey was spent on it
        assert [(m.direction, m.status) for m in alice.history("victim@example.test")] == [("out", "failed")]


async def test_a_copy_labelled_with_another_device_does_not_touch_the_real_session(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "first")
        assert [m.text for m in await bob.fetch()] == ["first"]
        await bob.send(alice.email, "answer")  # alice's next copy is a ratchet message, not an initial one
        assert [m.text for m in await alice.fetch()] == ["answer"]
        await alice.send(bob.email, "second")
        (frame,) = (await bob.http.call("GET", "messages/?after=0"))["messages"]
        relabelled = await bob._inbox.decrypt({**frame, "from_device": 3})
        assert (relabelled.text, relabelled.failure) == (None, "session_mismatch")
        assert bob.store.session_devices(alice.email) == [1]
        malformed = await bob._inbox.decrypt({**frame, "id": frame["id"] + 10_000, "from_device": "1"})
        assert malformed.failure == "invalid_argument"
        # The genuine copy still decrypts with the session of (alice, 1).
        assert (await bob._inbox.decrypt({**frame, "id": frame["id"] + 20_000})).text == "second"


async def test_bundles_must_carry_the_trusted_key_and_own_devices_our_key(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "first: bob's key is trusted")
        impostor = b64encode(ProtocolAccount.create().identity_key)
        call = alice.http.call
        swap = {}  # (endpoint, email) -> the identity key the "server" puts in its answer

        async def substituting(method, endpoint, body=None, **kwargs):
            answer = await call(method, endpoint, body, **kwargs)
            key = swap.get((endpoint, body["email"])) if isinstance(body, dict) and "email" in body else None
            return {**answer, "identity_key": key} if key else answer

        monkeypatch.setattr(alice.http, "call", substituting)
        # Our own account announced with another identity key: its devices are not ours to encrypt for.
        swap[("keys/devices", alice.email)] = impostor
        alice._outbox._device_lists.clear()
        with pytest.raises(NotSetUp, match="another device holds this account's keys"):
            await alice.send(bob.email, "not to a fake own device")
        swap.clear()
        # The server substitutes its key in the bundle of bob's new device: nothing is encrypted to it,
        # and the change waits for the user to compare safety numbers.
        laptop = await linked(bob, tmp_path)
        async with laptop:
            swap[("keys/bundles", bob.email)] = impostor
            alice._outbox._device_lists.clear()
            with pytest.raises(IdentityChanged):
                await alice.send(bob.email, "not to the impostor")
            assert alice.store.session_devices(bob.email) == [1]
            assert alice.store.get_identity(bob.email)["changed_to"] == impostor
            assert [m.text for m in await laptop.fetch()] == []
        assert [m.text for m in alice.history(bob.email)] == ["first: bob's key is trusted"]
