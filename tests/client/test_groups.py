"""Groups in the Python client (docs/PROTOCOL.md part III) against the live server: sender keys handed
out over pairwise sessions (also between members who are not contacts), names in settings messages,
receipts counts, a new sender key after a removal or a departure (proved with the STORED records of
the one who left), late joiners, linked devices, stale epochs and malformed copies."""

import pytest

from messenger_client import ApiError, Client, ClientError, GroupNameNotSent, IdentityChanged
from messenger_client.inbox import InvalidFrame
from messenger_client.outbox import UNREACHABLE
from messenger_client.protocol import (
    ProtocolError,
    b64encode,
    create_sender_key,
    decrypt_group_message,
    sender_key_distribution,
)
from tests.client.helpers import befriend, linked, next_event, next_message, registered


async def trio(url, tmp_path) -> tuple[Client, Client, Client]:
    """Alice has Bob and Carol as contacts; Bob and Carol are not contacts of each other."""
    alice = await registered(url, tmp_path, "alice")
    bob = await registered(url, tmp_path, "bob")
    carol = await registered(url, tmp_path, "carol")
    await befriend(alice, bob)
    await befriend(alice, carol)
    return alice, bob, carol


def texts(client: Client, group: str) -> list[tuple[str, str, str | None]]:
    """(sender, direction, text) of the group's messages (notices left out)."""
    return [(m.peer, m.direction, m.text) for m in client.history(group=group) if not m.notice]


def notices(client: Client, group: str) -> list[str]:
    return [m.text for m in client.history(group=group) if m.notice and m.text]


def submitted_frames(client: Client) -> list[dict]:
    """Every group frame ``client`` submits from now on (each attempt, a resend too), oldest first."""
    frames: list[dict] = []
    submit = client._outbox.submit

    async def capture(frame, frame_type, path):
        frames.append(frame)
        return await submit(frame, frame_type, path)

    client._outbox.submit = capture
    return frames


async def refusal(record: dict, group_id: str, sender: Client, body: str) -> str:
    """The error code a kept sender key ``record`` gives for ``body`` (from ``sender``'s device 1):
    how a member who is gone, or came late, is shown not to read it."""
    with pytest.raises(ProtocolError) as refused:
        await decrypt_group_message(
            record, group_id=group_id, sender_identity_key=sender.identity_key, sender_device=1, body=body
        )
    return refused.value.code


def records_of(client: Client, group: str, sender: Client) -> dict:
    """The sender key record ``client`` stored for ``sender``'s device 1 in ``group``."""
    return client.store.get_json(f"senderkeys:{group}:{sender.email.lower()}:1")


async def test_three_members_talk_and_learn_the_name(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Climbing 🧗", [bob.email, carol.email])
        assert (group.name, group.epoch) == ("Climbing 🧗", 1)
        assert sorted(m.email for m in group.members) == sorted([alice.email, bob.email, carol.email])
        sent = await alice.send_group(group.id, "hello both")
        # Bob and Carol (not contacts) talk through the group: bundles of co-members are served. The
        # settings message is not listed: it names the group.
        [from_alice] = await carol.fetch()
        assert (from_alice.group, from_alice.sender, from_alice.text) == (group.id, alice.email, "hello both")
        assert from_alice.message_id == sent.id
        await bob.send_group(group.id, "hi from bob")
        await carol.send_group(group.id, "hi from carol")
        got_alice = [(m.sender, m.text) for m in await alice.fetch()]
        assert got_alice == [(bob.email, "hi from bob"), (carol.email, "hi from carol")]
        assert [(m.sender, m.text) for m in await carol.fetch()] == [(bob.email, "hi from bob")]
        assert [(m.sender, m.text) for m in await bob.fetch()] == [
            (alice.email, "hello both"),
            (carol.email, "hi from carol"),
        ]
        assert texts(bob, group.id) == [  # in the order bob stored them
            (bob.email, "out", "hi from bob"),
            (alice.email, "in", "hello both"),
            (carol.email, "in", "hi from carol"),
        ]
        for member in (bob, carol):
            [seen] = [g for g in await member.groups() if g.id == group.id]
            assert seen.name == "Climbing 🧗"
            assert notices(member, group.id) == [f'{alice.email} named the group "Climbing 🧗"']
            await member.group_changes(group.id)  # missed changes become lines, once
            await member.group_changes(group.id)
            [created] = notices(member, group.id)[1:]
            assert created.startswith(f"{alice.email} created the group with ")
            assert carol.email in created
        # A second message from Alice carries no keys any more: everyone has her sender key.
        again = await alice.send_group(group.id, "second")
        assert [m.text for m in await bob.fetch()] == ["second"]
        assert again.id > sent.id

        # Renaming sends the settings again.
        await bob.rename_group(group.id, "Bouldering")
        await alice.fetch()
        assert (await alice.find_group("Bouldering")).id == group.id
        assert f'{bob.email} named the group "Bouldering"' in notices(alice, group.id)


async def test_receipts_count_members(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Receipts", [bob.email, carol.email])
        sent = await alice.send_group(group.id, "count me")
        [on_bob] = await bob.fetch()
        await alice.sync_group_receipts()
        [row] = [m for m in alice.history(group=group.id) if m.server_id == sent.id]
        assert (row.delivered_to, row.read_by, row.sent_to) == (1, 0, 2)
        await bob.mark_read(on_bob)
        await carol.fetch()
        await alice.sync_group_receipts()
        [row] = [m for m in alice.history(group=group.id) if m.server_id == sent.id]
        assert (row.delivered_to, row.read_by, row.sent_to) == (2, 1, 2)
        # Pushed over the socket too (at 1, 2, 4... members), and asked for on connect.
        await alice.connect()
        [copy_id] = [m.copy_id for m in carol.history(group=group.id) if m.server_id == sent.id]
        await carol.mark_read(copy_id)
        event = await next_event(alice, "group_receipts")
        assert {"id": sent.id, "delivered": 2, "read": 2, "of": 2} in event.data["receipts"]
        [row] = [m for m in alice.history(group=group.id) if m.server_id == sent.id]
        assert (row.delivered_to, row.read_by, row.sent_to) == (2, 2, 2)


@pytest.mark.parametrize("how", ["removed", "left"])
async def test_a_member_who_is_gone_cannot_read_what_follows(client_server, tmp_path, how):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Secrets", [bob.email, carol.email])
        await alice.send_group(group.id, "before")
        assert [m.text for m in await carol.fetch()] == ["before"]
        if how == "removed":
            await alice.remove_member(group.id, carol.email)
        else:
            await carol.leave_group(group.id)
        captured = submitted_frames(alice)
        await alice.send_group(group.id, "after")
        assert [m.text for m in await bob.fetch()] == ["before", "after"]
        assert await carol.fetch() == []
        # Carol kept every record she got; the new body does not decrypt with any of them.
        record = records_of(carol, group.id, alice)
        assert record is not None
        assert await refusal(record, group.id, alice, captured[-1]["body"]) == "unknown_sender_key"
        assert [k["email"] for k in captured[-1]["keys"]] == [bob.email]  # a new key, for bob only
        if how == "removed":
            assert f"{alice.email} removed {carol.email}" in notices(alice, group.id)


async def test_a_late_member_does_not_read_earlier_messages(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Late", [bob.email])
        captured = submitted_frames(alice)
        await alice.send_group(group.id, "before carol")
        early = captured[-1]["body"]
        await alice.add_member(group.id, carol.email)
        await alice.send_group(group.id, "after carol")
        assert [m.text for m in await carol.fetch()] == ["after carol"]
        assert (await carol.find_group(group.id)).name == "Late"  # the name was sent again for her
        assert (
            await refusal(records_of(carol, group.id, alice), group.id, alice, early) == "duplicate_message"
        )  # her record starts after it


async def test_linked_devices_get_everything_and_see_their_own(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        laptop = await linked(bob, tmp_path)
        async with laptop:
            group = await alice.create_group("Devices", [bob.email, carol.email])
            await alice.send_group(group.id, "to every device")
            assert [m.text for m in await bob.fetch()] == ["to every device"]
            assert [m.text for m in await laptop.fetch()] == ["to every device"]
            sent = await bob.send_group(group.id, "from bob's phone")
            assert await laptop.fetch() == []  # our own: in the history as sent, not listed
            assert texts(laptop, group.id)[-1] == (bob.email, "out", "from bob's phone")
            assert [m.text for m in await carol.fetch()] == ["to every device", "from bob's phone"]
            [row] = [m for m in laptop.history(group=group.id) if m.server_id == sent.id]
            assert row.status == "sent"


async def test_stale_epoch_is_repaired_with_the_same_client_id(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Stale", [bob.email])
        await alice.groups()  # cached at epoch 1
        await bob.fetch()
        # Carol joins through another admin action the cache does not know about: alice's view is stale.
        await alice.http.call("POST", "groups/members", {"group": group.id, "email": carol.email})
        frames = submitted_frames(alice)
        await alice.send_group(group.id, "after the change")
        attempts = [(f["client_id"], f["epoch"], sorted(k["email"] for k in f["keys"])) for f in frames]
        assert len(attempts) == 2
        assert attempts[0][0] == attempts[1][0]
        assert attempts[1][1] == attempts[0][1] + 1
        assert attempts[1][2] == [carol.email]  # the stored body reused, a key added for carol
        assert [m.text for m in await carol.fetch()] == ["after the change"]
        assert [m.text for m in await bob.fetch()] == ["after the change"]

        # Three stale answers in a row: failed.
        async def always_stale(frame, frame_type, path):
            raise ApiError(409, "stale_epoch", "stale")

        alice._outbox.submit = always_stale
        with pytest.raises(ApiError) as failed:
            await alice.send_group(group.id, "never")
        assert failed.value.code == "stale_epoch"
        assert texts(alice, group.id)[-1] == (alice.email, "out", "never")
        assert alice.history(group=group.id)[-1].status == "failed"


async def test_a_bad_distribution_or_body_is_refused_without_crashing(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Broken", [bob.email])
        await alice.send_group(group.id, "fine")
        await bob.fetch()
        frames = []
        submit = alice._outbox.submit

        async def tamper(frame, frame_type, path):
            frames.append(frame)
            body = frame["body"]
            bad = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
            return await submit({**frame, "body": bad}, frame_type, path)

        alice._outbox.submit = tamper
        await alice.send_group(group.id, "tampered")
        [failed] = await bob.fetch()
        assert (failed.text, failed.failure) == (None, "invalid_signature")
        alice._outbox.submit = submit
        await alice.send_group(group.id, "still fine")
        assert [m.text for m in await bob.fetch()] == ["still fine"]

        # A pairwise envelope that is not one: stored as failed, acknowledged, no record changed.
        before = records_of(bob, group.id, alice)
        frame = {
            "type": "group_message",
            "id": 10**9,
            "message_id": 10**9,
            "group": group.id,
            "epoch": 1,
            "from": alice.email,
            "from_device": 1,
            "body": frames[-1]["body"],
            "key": {"kind": "message", "body": "not an envelope"},
        }
        message = await bob._groups.read(frame)
        assert (message.text, message.failure) == (None, "malformed_envelope")
        assert records_of(bob, group.id, alice) == before
        assert await bob._groups.read(frame) is None  # a copy id already stored: only acknowledged again
        with pytest.raises(InvalidFrame):  # no id to store or acknowledge it by: an event, not a crash
            await bob._groups.read({**frame, "id": "x"})

        # A real distribution through the real session, but of another group: invalid_sender_key.
        other = await alice.create_group("Other", [bob.email])
        await bob.fetch()
        async with alice._account.peer_lock(bob.email):
            distribution = sender_key_distribution(create_sender_key(), other.id)
            [copy], sessions = await alice._outbox.encrypt_for(bob.email, [1], distribution)
            with alice.store.transaction():
                for (email, device), stored in sessions.items():
                    alice.store.put_sessions(email, device, stored)
        message = await bob._groups.read(
            {**frame, "id": 10**9 + 1, "key": {"kind": copy["kind"], "body": copy["body"]}}
        )
        assert (message.text, message.failure) == (None, "invalid_sender_key")
        assert records_of(bob, group.id, alice) == before
        alice._outbox.submit = submit
        await alice.send_group(group.id, "the group goes on")
        assert [m.text for m in await bob.fetch()] == ["the group goes on"]


async def test_live_over_the_socket_messages_changes_and_own_copies(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Live", [bob.email])
        laptop = await linked(alice, tmp_path)
        async with laptop:
            for client in (alice, bob, carol, laptop):
                await client.connect()
            sent = await bob.send_group(group.id, "over the socket")  # sent as a group_send frame
            for client in (alice, laptop):
                message = await next_message(client)
                assert (message.group, message.sender, message.text) == (group.id, bob.email, "over the socket")
                assert message.message_id == sent.id
            # Alice's own message reaches her laptop as sent, not as a message.
            mine = await alice.send_group(group.id, "from the phone")
            event = await next_event(laptop, "sent_elsewhere")
            assert event.data == {"group": group.id, "id": mine.id, "text": "from the phone"}
            assert (await next_message(bob)).text == "from the phone"

            # A change reaches every member as group_changed and becomes a line of the history.
            await alice.add_member(group.id, carol.email)
            changed = await next_event(bob, "group_changed")
            assert (changed.data["change"], changed.data["members"]) == ("added", [carol.email])
            assert f"{alice.email} added {carol.email}" in notices(bob, group.id)
            assert (await next_event(carol, "group_renamed")).data["name"] == "Live"
            assert (await carol.find_group("Live")).id == group.id
            await carol.send_group(group.id, "hello, I am new")
            for client in (alice, bob, laptop):
                assert (await next_message(client)).text == "hello, I am new"

            # The one removed hears it too; the group is gone for her (no changes to read): the event's line.
            await alice.remove_member(group.id, carol.email)
            assert (await next_event(carol, "group_changed")).data["change"] == "removed"
            assert notices(carol, group.id)[-1] == f"{alice.email} removed {carol.email}"
            with pytest.raises(ApiError) as gone:
                await carol.send_group(group.id, "still here?")
            assert gone.value.code == "group_not_found"


async def test_stale_epoch_after_a_removal_encrypts_again_with_a_new_key(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Shrinking", [bob.email, carol.email])
        old_key = alice.store.get_json(f"senderkey:{group.id}")["key"]["keyId"]
        await alice.groups()  # cached with bob
        # Bob is removed behind the cache's back: alice's first attempt is for an epoch that is gone.
        await alice.http.call("POST", "groups/remove", {"group": group.id, "email": bob.email})
        attempts = submitted_frames(alice)
        await alice.send_group(group.id, "bob is gone")
        assert len(attempts) == 2
        assert attempts[0]["client_id"] == attempts[1]["client_id"]
        assert attempts[0]["body"] != attempts[1]["body"]  # encrypted again...
        new_key = alice.store.get_json(f"senderkey:{group.id}")["key"]["keyId"]
        assert new_key != old_key  # ...with a new key, handed to carol only
        assert [k["email"] for k in attempts[1]["keys"]] == [carol.email]
        assert [m.text for m in await carol.fetch()] == ["bob is gone"]
        # Bob's records (he had the old key) do not read the body the server stored.
        await bob.fetch()
        assert (
            await refusal(records_of(bob, group.id, alice), group.id, alice, attempts[1]["body"])
            == "unknown_sender_key"
        )


async def test_a_member_whose_identity_changed_holds_the_group(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Held", [bob.email, carol.email])
        with alice.store.transaction():
            alice.store.note_identity(bob.email, b64encode(bytes(32)))  # a new key, not accepted
        with pytest.raises(IdentityChanged):
            await alice.send_group(group.id, "not while bob's key is in doubt")
        assert texts(alice, group.id) == []
        assert await carol.fetch() == []


async def test_a_frame_stored_but_never_sent_goes_out_later(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Crash", [bob.email])
        # Encrypted and stored, then "crashed" before sending: pending in the history.
        client_id = "5b1e7c52-3c4b-4b8e-9d7e-0a3c2f1e9d10"
        await alice._groups._encrypt(group.id, b"\x01stored first", client_id=client_id, text="stored first")
        assert alice.history(group=group.id)[-1].status == "pending"
        assert await alice.resend_pending() == 1  # as on every connect, with the stored frame as it is
        [received] = await bob.fetch()
        assert (received.group, received.text) == (group.id, "stored first")
        [row] = [m for m in alice.history(group=group.id) if m.text == "stored first"]
        assert (row.status, row.server_id) == ("sent", received.message_id)
        assert await alice.resend_pending() == 0


async def test_a_device_linked_later_learns_the_name_with_the_next_message(client_server, tmp_path):
    """The name travels in settings messages: a device that joins after it went (here a member's
    newly linked laptop) gets it again, alone, before the next message; nobody's history shows
    the same name twice."""
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Named once", [bob.email, carol.email])
        await bob.fetch()
        laptop = await linked(bob, tmp_path)
        async with laptop:
            await alice.groups()  # the laptop is a member device now
            await alice.send_group(group.id, "with the laptop")
            assert [m.text for m in await laptop.fetch()] == ["with the laptop"]
            assert laptop.group_name(group.id) == "Named once"
            assert [m.text for m in await bob.fetch()] == ["with the laptop"]
            assert notices(bob, group.id) == [f'{alice.email} named the group "Named once"']
            # Once the laptop has the name, it is not sent again.
            await alice.send_group(group.id, "again")
            assert [m.text for m in await laptop.fetch()] == ["again"]
            assert [line for line in notices(alice, group.id) if "named" in line] == [
                f'{alice.email} named the group "Named once"'
            ]


async def test_typing_in_a_group_reaches_the_other_members(client_server, tmp_path):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        group = await alice.create_group("Typing", [bob.email, carol.email])
        assert not await alice.typing_group(group.id)  # no socket: nothing is sent (never stored)
        for client in (alice, bob, carol):
            await client.connect()
        assert await alice.typing_group(group.id, "start")
        for client in (bob, carol):
            event = await next_event(client, "typing")
            assert event.data == {"from": alice.email, "state": "start", "group": group.id}
        assert await alice.typing_group(group.id, "stop")
        assert (await next_event(bob, "typing")).data["state"] == "stop"
        with pytest.raises(ClientError):
            await alice.typing_group(group.id, "typing")


async def test_a_name_that_could_not_be_sent_does_not_lose_the_group(client_server, tmp_path, monkeypatch):
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        # Offline after the group was made: the name's frame is stored and goes out on the next connect.
        submit = alice._outbox.submit

        async def unreachable(*args, **kwargs):
            raise ApiError(0, UNREACHABLE, "the server did not answer")

        monkeypatch.setattr(alice._outbox, "submit", unreachable)
        group = await alice.create_group("Offline", [bob.email])
        assert group.name == "Offline"
        assert alice.history(group=group.id)[-1].status == "pending"
        monkeypatch.setattr(alice._outbox, "submit", submit)
        assert await alice.resend_pending() == 1
        await bob.fetch()
        assert bob.group_name(group.id) == "Offline"

        # Refused before anything was sent (Bob's identity changed): the error names the group, which exists.
        with alice.store.transaction():
            alice.store.note_identity(bob.email, b64encode(bytes(32)))
        with pytest.raises(GroupNameNotSent) as failed:
            await alice.create_group("Held", [bob.email])
        assert "was created" in str(failed.value)
        assert failed.value.group.id in str(failed.value)
        assert isinstance(failed.value.error, IdentityChanged)
        assert failed.value.group.id in [g.id for g in await alice.groups()]
        with pytest.raises(GroupNameNotSent) as failed:
            await alice.add_member(group.id, carol.email)
        assert f"has {carol.email}" in str(failed.value)
        assert carol.email in [m.email for m in (await alice._groups.get(group.id)).members]


async def test_an_unlinked_device_cannot_read_what_follows(client_server, tmp_path):
    """Unlinking a member's device makes every sender's next message use a new sender key: the
    record the laptop held before it was unlinked (kept here as a device that does not erase its
    keys would keep it) opens nothing sent after."""
    alice, bob, carol = await trio(client_server.url, tmp_path)
    async with alice, bob, carol:
        laptop = await linked(bob, tmp_path)
        async with laptop:
            group = await alice.create_group("Unlinked", [bob.email, carol.email])
            await alice.send_group(group.id, "before")
            assert [m.text for m in await laptop.fetch()] == ["before"]
            kept = records_of(laptop, group.id, alice)
            assert kept is not None
            await bob.unlink_device(laptop.device_id)
        captured = submitted_frames(alice)
        await alice.groups()  # the group as it is now (the group_epoch nudge, over REST)
        await alice.send_group(group.id, "after")
        assert [m.text for m in await carol.fetch()] == ["before", "after"]
        assert await refusal(kept, group.id, alice, captured[-1]["body"]) == "unknown_sender_key"
        assert sorted(k["email"] for k in captured[-1]["keys"]) == sorted([bob.email, carol.email])
