"""Group messages (docs/PROTOCOL.md section 23): stored once, a copy per member device with its
sender key entry, refused for a stale epoch or a stranger, counted per member in receipts."""

import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from chat import group_messages, selectors, services, sql
from chat.errors import ClientIdReused, StaleEpoch
from chat.models import Envelope, GroupBody
from chat.tests.helpers import make_contacts, open_socket, receive, second_device, send_frame
from groups import services as groups
from groups.errors import GroupNotFound
from groups.models import Group
from keys.services import device_unlink
from realtime import bus

pytestmark = pytest.mark.django_db(transaction=True)

BODY = "Z3JvdXAgY2lwaGVydGV4dA=="


@pytest.fixture
def trio(make_account):
    """alice (admin), bob and carol in one group; alice is a contact of both, bob and carol
    are not contacts of each other."""
    alice, bob, carol = make_account(), make_account(), make_account()
    make_contacts(alice, bob)
    make_contacts(alice, carol)
    creator = User.objects.get(pk=alice.id)
    group = groups.group_create(creator=creator, emails=[bob.email, carol.email])
    return alice, bob, carol, group


def group_send(group, *, epoch=None, keys=(), client_id=None, body=BODY) -> dict:
    return {
        "type": "group_send",
        "client_id": str(client_id or uuid.uuid4()),
        "group": str(group.uid),
        "epoch": epoch or Group.objects.get(pk=group.pk).epoch,
        "body": body,
        "keys": list(keys),
    }


def key_for(account, device=1, body="a2V5IGZvcg==") -> dict:
    return {"email": account.email, "device": device, "kind": "prekey", "body": body}


async def test_a_group_message_is_stored_once_and_reaches_every_other_member_device(trio):
    alice, bob, carol, group = trio
    alice_laptop = await database_sync_to_async(second_device)(alice)
    sockets = {}
    for name, account in (("alice", alice), ("laptop", alice_laptop), ("bob", bob), ("carol", carol)):
        sockets[name], _ = await open_socket(account)
    frame = await database_sync_to_async(group_send)(group, keys=[key_for(carol)])
    await send_frame(sockets["alice"], frame)
    sent = await receive(sockets["alice"])
    assert sent == {"type": "sent", "client_id": frame["client_id"], "id": sent["id"]}
    for name in ("bob", "carol", "laptop"):
        copy = await receive(sockets[name])
        assert copy["type"] == "group_message"
        assert (copy["message_id"], copy["group"], copy["from"], copy["from_device"], copy["body"]) == (
            sent["id"],
            str(group.uid),
            alice.email,
            1,
            BODY,
        )
        assert copy.get("key") == ({"kind": "prekey", "body": "a2V5IGZvcg=="} if name == "carol" else None)
    assert await sockets["alice"].receive_nothing(timeout=0.2)
    bodies = await database_sync_to_async(list)(GroupBody.objects.values_list("message_id", "body", "recipients"))
    assert bodies == [(sent["id"], BODY, 2)]
    rows = await database_sync_to_async(list)(Envelope.objects.values_list("body", flat=True))
    assert sorted(rows) == ["", "", "a2V5IGZvcg=="]  # the group body is not repeated per copy
    for socket in sockets.values():
        await socket.disconnect()


async def test_the_backlog_carries_the_body_and_the_key(trio):
    alice, bob, _, group = trio
    sender, _ = await open_socket(alice)
    frame = await database_sync_to_async(group_send)(group, keys=[key_for(bob)])
    await send_frame(sender, frame)
    sent = await receive(sender)
    socket, backlog = await open_socket(bob, expect_backlog=1)
    [copy] = backlog
    assert (copy["type"], copy["message_id"], copy["body"], copy["key"]["body"]) == (
        "group_message",
        sent["id"],
        BODY,
        "a2V5IGZvcg==",
    )
    await socket.disconnect()
    await sender.disconnect()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("stranger", "group_not_found"),
        ("unknown_group", "group_not_found"),
        ("stale", "stale_epoch"),
        ("key_for_stranger", "invalid_keys"),
        ("key_for_own_device", "invalid_keys"),
        ("key_twice", "invalid_keys"),
        ("key_too_long", "invalid_keys"),
        ("bad_epoch", "invalid_epoch"),
        ("bad_group", "invalid_group"),
    ],
)
async def test_refused_group_messages_store_nothing(trio, make_account, change, code):
    alice, bob, _, group = trio
    stranger = await database_sync_to_async(make_account)()
    frame = await database_sync_to_async(group_send)(group)
    sender = alice
    if change == "stranger":
        sender = stranger
    elif change == "unknown_group":
        frame["group"] = str(uuid.uuid4())
    elif change == "stale":
        await database_sync_to_async(groups.member_devices_changed)(user_id=bob.id)
    elif change == "key_for_stranger":
        frame["keys"] = [key_for(stranger)]
    elif change == "key_for_own_device":
        frame["keys"] = [key_for(alice)]
    elif change == "key_twice":
        frame["keys"] = [key_for(bob), key_for(bob, body="b3RoZXI=")]
    elif change == "key_too_long":
        frame["keys"] = [key_for(bob, body="a" * 1025)]
    elif change == "bad_epoch":
        frame["epoch"] = True
    elif change == "bad_group":
        frame["group"] = 12
    socket, _ = await open_socket(sender)
    await send_frame(socket, frame)
    error = await receive(socket)
    assert (error["type"], error["code"], error["client_id"]) == ("error", code, frame["client_id"])
    if code == "stale_epoch":
        assert error["epoch"] == 2
    assert not await database_sync_to_async(Envelope.objects.exists)()
    assert not await database_sync_to_async(GroupBody.objects.exists)()
    await socket.disconnect()


async def test_a_resend_answers_the_same_id_and_stores_nothing(trio):
    alice, _, _, group = trio
    socket, _ = await open_socket(alice)
    frame = await database_sync_to_async(group_send)(group)
    await send_frame(socket, frame)
    first = await receive(socket)
    await send_frame(socket, {**frame, "body": "b3RoZXI="})
    assert await receive(socket) == first
    assert await database_sync_to_async(GroupBody.objects.count)() == 1
    await socket.disconnect()


async def test_a_member_alone_has_nobody_to_send_to(make_account):
    alice = await database_sync_to_async(make_account)()
    group = await database_sync_to_async(groups.group_create)(creator=await User.objects.aget(pk=alice.id), emails=[])
    socket, _ = await open_socket(alice)
    await send_frame(socket, await database_sync_to_async(group_send)(group))
    assert (await receive(socket))["code"] == "no_devices"
    await socket.disconnect()


async def test_receipts_count_members_not_devices_and_go_to_the_sender(trio):
    alice, bob, carol, group = trio
    bob_laptop = await database_sync_to_async(second_device)(bob)
    await database_sync_to_async(groups.member_devices_changed)(user_id=bob.id)
    sender, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    laptop_socket, _ = await open_socket(bob_laptop)
    carol_socket, _ = await open_socket(carol)
    await send_frame(sender, await database_sync_to_async(group_send)(group))
    sent = await receive(sender)
    copies = {name: await receive(socket) for name, socket in (("bob", bob_socket), ("laptop", laptop_socket))}
    carol_copy = await receive(carol_socket)

    await send_frame(bob_socket, {"type": "ack", "ids": [copies["bob"]["id"]]})
    assert await receive(sender) == {
        "type": "group_receipts",
        "receipts": [{"id": sent["id"], "delivered": 1, "read": 0, "of": 2}],
    }
    await send_frame(laptop_socket, {"type": "read", "ids": [copies["laptop"]["id"]]})
    receipt = await receive(sender)  # bob read it (on his laptop); still one member delivered
    assert receipt["receipts"] == [{"id": sent["id"], "delivered": 1, "read": 1, "of": 2}]
    assert (await receive(bob_socket))["type"] == "read_elsewhere"
    await send_frame(carol_socket, {"type": "ack", "ids": [carol_copy["id"]]})
    assert (await receive(sender))["receipts"] == [{"id": sent["id"], "delivered": 2, "read": 1, "of": 2}]
    body = await database_sync_to_async(GroupBody.objects.get)(message_id=sent["id"])
    assert (body.remaining, body.body) == (0, "")  # every copy delivered: the body is erased

    await send_frame(sender, {"type": "group_receipts", "ids": [sent["id"], 999_999]})
    assert (await receive(sender))["receipts"] == [{"id": sent["id"], "delivered": 2, "read": 1, "of": 2}]
    await send_frame(carol_socket, {"type": "group_receipts", "ids": [sent["id"]]})
    assert (await receive(carol_socket))["receipts"] == []  # only the sender learns the counts
    for socket in (sender, bob_socket, laptop_socket, carol_socket):
        await socket.disconnect()


async def test_a_removed_member_gets_nothing_sent_after_the_removal(trio):
    alice, bob, carol, group = trio
    await database_sync_to_async(groups.member_remove)(
        actor=await User.objects.aget(pk=alice.id), uid=group.uid, email=carol.email
    )
    sender, _ = await open_socket(alice)
    await send_frame(sender, await database_sync_to_async(group_send)(group))
    await receive(sender)
    assert await database_sync_to_async(list)(Envelope.objects.values_list("recipient_id", flat=True)) == [bob.id]
    await sender.disconnect()


async def test_unlinking_a_device_drops_its_undelivered_group_copies(trio):
    alice, bob, _, group = trio
    bob_laptop = await database_sync_to_async(second_device)(bob)
    await database_sync_to_async(groups.member_devices_changed)(user_id=bob.id)
    sender, _ = await open_socket(alice)
    await send_frame(sender, await database_sync_to_async(group_send)(group))
    sent = await receive(sender)
    assert (await database_sync_to_async(GroupBody.objects.get)(message_id=sent["id"])).remaining == 3
    await database_sync_to_async(device_unlink)(user=await User.objects.aget(pk=bob.id), device_id=2)
    assert (await database_sync_to_async(GroupBody.objects.get)(message_id=sent["id"])).remaining == 2
    assert not await database_sync_to_async(Envelope.objects.filter(recipient_device=2).exists)()
    assert bob_laptop  # its copy is gone with it
    await sender.disconnect()


def test_rest_sends_a_group_message_and_answers_a_stale_epoch_with_the_current_one(trio):
    alice, bob, _, group = trio
    frame = group_send(group)
    del frame["type"]
    response = alice.client.post_json("/api/v1/groups/messages", frame)
    assert response.status_code == 201, response.content
    again = alice.client.post_json("/api/v1/groups/messages", frame)
    assert (again.status_code, again.json()) == (200, response.json())
    groups.member_devices_changed(user_id=bob.id)
    stale = alice.client.post_json("/api/v1/groups/messages", {**frame, "client_id": str(uuid.uuid4())})
    assert (stale.status_code, stale.json()["code"], stale.json()["epoch"]) == (409, "stale_epoch", 2)
    receipts = alice.client.post_json("/api/v1/groups/receipts", {"ids": [response.json()["id"]]}).json()
    assert receipts["receipts"] == [{"id": response.json()["id"], "delivered": 0, "read": 0, "of": 2}]
    outsider = bob.client.post_json("/api/v1/groups/receipts", {"ids": [response.json()["id"]]}).json()
    assert outsider["receipts"] == []


def test_the_purge_erases_group_bodies_nobody_waits_for_and_those_past_retention(trio, settings):
    alice, _, _, group = trio
    frame = group_send(group)
    del frame["type"]
    message_id = alice.client.post_json("/api/v1/groups/messages", frame).json()["id"]
    assert services.envelopes_purge().bodies_erased == 0  # two copies still wait
    later = timezone.now() + timedelta(days=settings.MESSAGE_RETENTION_DAYS + 1)
    result = services.envelopes_purge(now=later)
    assert (result.bodies_erased, result.expired_deleted) == (1, 2)
    assert GroupBody.objects.get(message_id=message_id).body == ""


@pytest.mark.parametrize(
    ("before", "after", "total", "told"),
    [
        (0, 1, 99, True),
        (1, 2, 99, True),
        (2, 3, 99, False),
        (3, 4, 99, True),
        (5, 7, 99, False),
        (7, 9, 99, True),
        (64, 98, 99, False),
        (98, 99, 99, True),
        (4, 4, 99, False),
    ],
)
def test_the_sender_hears_of_counts_at_powers_of_two_and_at_everyone(before, after, total, told):
    from chat.group_messages import _milestone

    assert _milestone(before, after, total) is told


async def test_typing_in_a_group_reaches_the_other_members_only(trio, make_account):
    alice, bob, carol, group = trio
    sockets = {
        name: (await open_socket(account))[0] for name, account in (("alice", alice), ("bob", bob), ("carol", carol))
    }
    await send_frame(sockets["bob"], {"type": "typing", "group": str(group.uid), "state": "start"})
    expected = {"type": "typing", "from": bob.email, "state": "start", "group": str(group.uid)}
    assert await receive(sockets["alice"]) == expected
    assert await receive(sockets["carol"]) == expected
    assert await sockets["bob"].receive_nothing(timeout=0.2)
    stranger = await database_sync_to_async(make_account)()
    outsider, _ = await open_socket(stranger)
    await send_frame(outsider, {"type": "typing", "group": str(group.uid), "state": "start"})
    assert (await receive(outsider))["code"] == "group_not_found"
    assert await sockets["alice"].receive_nothing(timeout=0.2)
    for socket in (*sockets.values(), outsider):
        await socket.disconnect()


@pytest.mark.mariadb
def test_sends_racing_a_removal_are_stored_for_the_members_of_before_or_refused(trio):
    from chat.errors import StaleEpoch
    from contacts.tests.helpers import run_concurrently

    alice, bob, carol, group = trio
    sender = User.objects.get(pk=bob.id)

    def send():
        request = group_messages_request(sender, group, epoch=1)
        return services.envelope_send(request)

    def remove():
        return groups.member_remove(actor=User.objects.get(pk=alice.id), uid=group.uid, email=carol.email)

    results = run_concurrently([remove, *([send] * 6)])
    assert isinstance(results[0], Group)
    sent = [r for r in results[1:] if not isinstance(r, StaleEpoch)]
    assert all(hasattr(r, "id") for r in sent), results  # nothing but stored or stale_epoch
    for result in sent:  # each went to everyone who was a member when it was stored: carol too
        recipients = set(
            Envelope.objects.filter(Q(id=result.id) | Q(message_id=result.id)).values_list("recipient_id", flat=True)
        )
        assert recipients == {alice.id, carol.id}


def group_messages_request(sender, group, *, epoch):
    from chat.group_messages import GroupSendRequest

    return GroupSendRequest(sender.pk, sender.email, 1, uuid.uuid4(), group.uid, epoch, BODY)


def _batch(requests: list) -> list:
    """One socket batch: `envelopes_apply` in one transaction, its events collected."""
    with transaction.atomic(), bus.collecting([]):
        return services.envelopes_apply(requests)


def test_a_batch_of_group_sends_reads_once_and_stores_each_message_in_three_statements(trio):
    """chat.sql's group path: the batch's reads are one statement each, every new message
    is its first copy, its other copies in one INSERT and its body; everything is stored, the
    key entry in its own copy only; a resend (in the batch or later) answers the same id."""
    alice, bob, carol, group = trio
    second_device(alice)
    sender = User.objects.get(pk=alice.id)

    def request(client_id, *, epoch=1, keys=()):
        return group_messages.GroupSendRequest(alice.id, sender.email, 1, client_id, group.uid, epoch, BODY, keys)

    first, second = uuid.uuid4(), uuid.uuid4()
    carol_key = group_messages.GroupKey(carol.email.upper(), 1, "prekey", "a2V5IGZvcg==")
    with CaptureQueriesContext(connection) as queries:
        results = _batch(
            [request(first, keys=(carol_key,)), request(second), request(first), request(uuid.uuid4(), epoch=2)]
        )
    # groups, members with devices, earlier sends, quota counters; 3 per new message; the counters.
    statements = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("SELECT", "INSERT", "UPDATE"))]
    assert len(statements) == 4 + 3 * 2 + 1
    assert [r.created for r in results[:3]] == [True, True, False]
    assert results[2].id == results[0].id
    assert isinstance(results[3], StaleEpoch)
    copies = list(Envelope.objects.filter(Q(id=results[0].id) | Q(message_id=results[0].id)).order_by("id"))
    assert [(c.recipient_id, c.recipient_device, c.copy_index) for c in copies] == [
        (bob.id, 1, 0),
        (carol.id, 1, 1),
        (alice.id, 2, 2),
    ]
    assert [(c.kind, c.body, c.size) for c in copies] == [
        ("message", "", len(BODY)),
        ("prekey", "a2V5IGZvcg==", len(BODY) + 12),
        ("message", "", len(BODY)),
    ]
    assert {c.group_id for c in copies} == {group.pk}
    assert copies[2].peer_id == alice.id
    body = GroupBody.objects.get(message_id=results[0].id)
    assert (body.group_id, body.sender_id, body.client_id, body.epoch, body.body) == (
        group.pk,
        alice.id,
        first,
        1,
        BODY,
    )
    assert (body.size, body.recipients, body.remaining, body.delivered) == (len(BODY), 2, 3, 0)
    again = _batch([request(first), request(second)])
    assert [(r.id, r.created) for r in again] == [(results[0].id, False), (results[1].id, False)]
    assert GroupBody.objects.count() == 2


def test_a_client_id_used_by_a_one_to_one_message_or_another_group_is_refused(trio):
    alice, bob, carol, group = trio
    sender = User.objects.get(pk=alice.id)
    other = groups.group_create(creator=sender, emails=[bob.email])
    client_id = uuid.uuid4()
    [sent] = services.envelopes_send(
        [
            services.send_request_parse(
                {"client_id": str(client_id), "to": bob.email, "kind": "message", "body": BODY},
                sender=sender,
                sender_device=1,
            )
        ]
    )
    assert sent.created
    reused = _batch([group_messages.GroupSendRequest(alice.id, sender.email, 1, client_id, group.uid, 1, BODY)])
    assert isinstance(reused[0], ClientIdReused)
    fresh = uuid.uuid4()
    results = _batch(
        [
            group_messages.GroupSendRequest(alice.id, sender.email, 1, fresh, group.uid, 1, BODY),
            group_messages.GroupSendRequest(alice.id, sender.email, 1, fresh, other.uid, 1, BODY),
            group_messages.GroupSendRequest(carol.id, carol.email, 1, uuid.uuid4(), other.uid, 1, BODY),
            group_messages.GroupSendRequest(alice.id, sender.email, 1, uuid.uuid4(), uuid.uuid4(), 1, BODY),
        ]
    )
    assert results[0].created
    assert isinstance(results[1], ClientIdReused)
    assert isinstance(results[2], GroupNotFound)  # carol is not in the other group
    assert isinstance(results[3], GroupNotFound)
    assert GroupBody.objects.count() == 1


def test_a_backlog_of_group_copies_is_read_in_two_statements_with_bodies_and_keys(trio):
    """chat.sql's queue reads (a socket that fell behind reads its backlog page by page): the
    ids and sizes, then the copies that fit with their group, body, epoch and key entry."""
    alice, _, carol, group = trio
    sender = User.objects.get(pk=alice.id)
    carol_key = group_messages.GroupKey(carol.email, 1, "prekey", "a2V5IGZvcg==")
    sent = _batch(
        [
            group_messages.GroupSendRequest(alice.id, sender.email, 1, uuid.uuid4(), group.uid, 1, BODY, keys)
            for keys in ((carol_key,), (), ())
        ]
    )
    with CaptureQueriesContext(connection) as queries:
        window = selectors.envelopes_pending_within(user_id=carol.id, after=0, room=10**6)
    assert len(queries) == 2
    assert window.drained
    copies = {c.id: c for c in Envelope.objects.filter(recipient_id=carol.id)}
    assert [e["message_id"] for e in window.events] == [r.id for r in sent]
    assert [e.get("key") for e in window.events] == [{"kind": "prekey", "body": "a2V5IGZvcg=="}, None, None]
    for event in window.events:
        stored = copies[event["id"]]
        assert (event["type"], event["group"], event["epoch"], event["body"]) == (
            "group_message",
            str(group.uid),
            1,
            BODY,
        )
        assert (event["from"], event["from_device"], event["client_id"]) == (alice.email, 1, str(stored.client_id))
        assert event["sent_at"] == stored.created_at.isoformat().replace("+00:00", "Z")
        assert window.size[event["id"]] == stored.size


def test_the_counters_of_a_batch_of_receipts_are_added_in_one_statement(trio):
    alice, _, _, group = trio
    sender = User.objects.get(pk=alice.id)
    first, second = (
        r.id
        for r in _batch(
            [
                group_messages.GroupSendRequest(alice.id, sender.email, 1, uuid.uuid4(), group.uid, 1, BODY)
                for _ in range(2)
            ]
        )
    )
    with CaptureQueriesContext(connection) as queries:
        sql.group_counts_add({first: (1, 0, 1), second: (2, 1, 2)}, erase=True)
    assert len(queries) == 1
    counts = {b.message_id: (b.delivered, b.read, b.remaining, b.body) for b in GroupBody.objects.all()}
    # Two copies each (bob, carol): the second has none waiting any more, its body is erased.
    assert counts == {first: (1, 0, 1, BODY), second: (2, 1, 0, "")}
