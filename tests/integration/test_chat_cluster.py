"""Two real daphne processes, MariaDB and Redis: a sender on one process reaches a recipient on
the other, in order, with receipts; nothing is lost or stored twice when a connection or a
whole server process dies mid-stream."""

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from chat.models import Envelope
from chat.tests.helpers import make_contacts
from tests.integration.servers import Client, http

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pair(make_account):
    alice, bob = make_account(), make_account()
    make_contacts(alice, bob)
    return User.objects.get(pk=alice.id), User.objects.get(pk=bob.id)


def send_frame(to: User, n: int, client_id=None) -> dict:
    return {
        "type": "send",
        "client_id": str(client_id or uuid.uuid4()),
        "to": to.email,
        "kind": "prekey" if n == 0 else "message",
        "body": f"ciphertext-{n}",
    }


async def open_client(cluster, index: int, user: User, **kwargs) -> Client:
    client = await Client(url=cluster.servers[index].url, token=cluster.token_for(user), **kwargs).open()
    await asyncio.wait_for(client.queue_empty.wait(), 10)
    return client


@sync_to_async
def stored(**filters) -> list[Envelope]:
    return list(Envelope.objects.filter(**filters).order_by("id"))


async def send_all(sender: Client, frames: list[dict]) -> None:
    for frame in frames:
        await sender.send(frame)


def unique_in_order(messages: list[dict]) -> list[int]:
    """What the client shows: messages deduplicated by id, in arrival order."""
    seen: dict[int, None] = {}
    for message in messages:
        seen.setdefault(message["id"], None)
    return list(seen)


async def test_message_crosses_processes_in_order_with_receipts(cluster, pair):
    alice, bob = pair
    sender = await open_client(cluster, 0, alice)
    recipient = await open_client(cluster, 1, bob)
    try:
        frames = [send_frame(bob, n) for n in range(20)]
        await send_all(sender, frames)
        await recipient.wait_for(lambda: len(recipient.of_type("message")) == 20)
        await sender.wait_for(lambda: sum(len(f["ids"]) for f in sender.of_type("delivered")) == 20)

        messages = recipient.of_type("message")
        sent_ids = [f["id"] for f in sender.of_type("sent")]
        assert [m["id"] for m in messages] == sent_ids == sorted(sent_ids)
        assert [m["body"] for m in messages] == [f["body"] for f in frames]
        assert {m["from"] for m in messages} == {alice.email}
        assert [m["kind"] for m in messages[:2]] == ["prekey", "message"]

        await recipient.send({"type": "read", "ids": sent_ids})
        await sender.wait_for(lambda: sender.of_type("read"))
        assert sender.of_type("read") == [{"type": "read", "ids": sent_ids}]
        rows = await stored()
        assert all(row.delivered_at and row.read_at and row.body == "" for row in rows)
    finally:
        await sender.close()
        await recipient.close()


async def test_reconnect_on_the_other_process_redelivers_what_was_not_acked(cluster, pair):
    alice, bob = pair
    sender = await open_client(cluster, 0, alice)
    recipient = await open_client(cluster, 1, bob, auto_ack=False)
    try:
        await send_all(sender, [send_frame(bob, n) for n in range(5)])
        await recipient.wait_for(lambda: len(recipient.of_type("message")) == 5)
        first_two = [m["id"] for m in recipient.of_type("message")[:2]]
        await recipient.send({"type": "ack", "ids": first_two})
        await sender.wait_for(lambda: sender.of_type("delivered"))
        await recipient.close()

        again = await open_client(cluster, 0, bob, auto_ack=False)
        redelivered = [m["id"] for m in again.of_type("message")]
        assert redelivered == [m["id"] for m in recipient.of_type("message")[2:]]
        await again.close()
    finally:
        await sender.close()
        await recipient.close()


async def test_a_sender_offline_when_its_envelopes_were_read_gets_the_receipts_on_the_other_process(cluster, pair):
    alice, bob = pair
    sender = await open_client(cluster, 0, alice)
    await send_all(sender, [send_frame(bob, n) for n in range(3)])
    await sender.wait_for(lambda: len(sender.of_type("sent")) == 3)
    ids = [f["id"] for f in sender.of_type("sent")]
    await sender.close()  # the receipts below are pushed to nobody
    recipient = await open_client(cluster, 1, bob)
    try:
        await recipient.send({"type": "read", "ids": ids[:1]})
        await recipient.send({"type": "sync"})  # answered after the receipts are stored
        await recipient.wait_for(lambda: len(recipient.of_type("queue_empty")) == 2)

        again = await open_client(cluster, 1, alice)
        await again.send({"type": "receipts", "ids": ids})
        await again.wait_for(lambda: again.of_type("receipts"))
        assert again.of_type("receipts") == [{"type": "receipts", "delivered": ids[1:], "read": ids[:1], "unknown": []}]
        await again.close()
    finally:
        await recipient.close()


async def test_recipient_connection_killed_mid_stream_loses_nothing(cluster, pair):
    alice, bob = pair
    total = 200
    sender = await open_client(cluster, 0, alice)
    recipient = await open_client(cluster, 1, bob)
    connections = [recipient]
    try:
        sending = asyncio.create_task(send_all(sender, [send_frame(bob, n) for n in range(total)]))
        await recipient.wait_for(lambda: len(recipient.of_type("message")) >= 40)
        recipient.abort()  # the network dies under the recipient
        await sending
        await sender.wait_for(lambda: len(sender.of_type("sent")) == total)

        # The client reconnects (to the other process) until it has everything.
        for attempt in range(5):
            received = {m["id"] for c in connections for m in c.of_type("message")}
            if len(received) == total:
                break
            await asyncio.sleep(0.3)
            connections.append(await open_client(cluster, attempt % 2, bob))
        await sender.wait_for(lambda: sum(len(f["ids"]) for f in sender.of_type("delivered")) == total)

        sent_ids = [f["id"] for f in sender.of_type("sent")]
        messages = [m for c in connections for m in c.of_type("message")]
        assert unique_in_order(messages) == sent_ids  # everything, in order, once shown
        # Only envelopes the dead connection received but whose ack was lost come twice.
        first_connection = {m["id"] for m in connections[0].of_type("message")}
        later = [m["id"] for c in connections[1:] for m in c.of_type("message")]
        assert len(later) == len(set(later))
        duplicates = first_connection & set(later)
        assert len(duplicates) <= 16, duplicates
        rows = await stored()
        assert len(rows) == total
        assert all(row.delivered_at for row in rows)
        receipts = [i for f in sender.of_type("delivered") for i in f["ids"]]
        assert sorted(receipts) == sent_ids  # each receipt exactly once
    finally:
        for client in [sender, *connections]:
            await client.close()


async def test_sender_resending_after_a_lost_connection_stores_each_envelope_once(cluster, pair):
    alice, bob = pair
    frames = [send_frame(bob, n) for n in range(100)]
    sender = await open_client(cluster, 0, alice)
    try:
        sending = asyncio.create_task(send_all(sender, frames))
        await sender.wait_for(lambda: len(sender.of_type("sent")) >= 20)
        sender.abort()
        sending.cancel()
        confirmed = {f["client_id"] for f in sender.of_type("sent")}
        # Resend everything not confirmed, on the other process, as the client's outbox does;
        # some of those were stored already (their `sent` was lost with the connection).
        retry = await open_client(cluster, 1, alice)
        await send_all(retry, [f for f in frames if f["client_id"] not in confirmed])
        await retry.wait_for(lambda: len(confirmed | {f["client_id"] for f in retry.of_type("sent")}) == 100)
        ids = [f["id"] for f in [*sender.of_type("sent"), *retry.of_type("sent")]]
        rows = await stored(sender_id=alice.id)
        assert len(rows) == 100
        assert {row.id for row in rows} == set(ids)
        assert [row.body for row in rows] == [f["body"] for f in frames]  # still in send order
        await retry.close()
    finally:
        await sender.close()


async def test_server_process_killed_mid_stream_loses_nothing(cluster, pair):
    alice, bob = pair
    total = 150
    sender = await open_client(cluster, 0, alice)
    recipient = await open_client(cluster, 1, bob)
    connections = [recipient]
    try:
        sending = asyncio.create_task(send_all(sender, [send_frame(bob, n) for n in range(total)]))
        await recipient.wait_for(lambda: len(recipient.of_type("message")) >= 30)
        await asyncio.to_thread(cluster.servers[1].kill)  # the recipient's process crashes
        await sending
        await sender.wait_for(lambda: len(sender.of_type("sent")) == total)
        await asyncio.to_thread(cluster.servers[1].start)  # and is restarted

        connections.append(await open_client(cluster, 1, bob))
        await connections[-1].wait_for(
            lambda: len({m["id"] for c in connections for m in c.of_type("message")}) == total
        )
        for _ in range(100):  # the last acks are being committed
            if all(row.delivered_at for row in await stored()):
                break
            await asyncio.sleep(0.05)

        sent_ids = [f["id"] for f in sender.of_type("sent")]
        messages = [m for c in connections for m in c.of_type("message")]
        assert unique_in_order(messages) == sent_ids
        rows = await stored()
        assert len(rows) == total
        assert all(row.delivered_at for row in rows)
        # Receipts are pushes too: the ones the dead process had committed but not yet
        # published are lost with it, the rest arrive once each.
        receipts = [i for f in sender.of_type("delivered") for i in f["ids"]]
        assert len(receipts) == len(set(receipts))
        assert set(receipts) <= set(sent_ids)
    finally:
        for client in [sender, *connections]:
            await client.close()


async def test_logout_on_one_process_closes_the_socket_on_the_other_and_both_refuse_the_token(cluster, pair):
    alice, _ = pair
    access, refresh = await sync_to_async(cluster.session_for)(alice)
    on_b = await Client(url=cluster.servers[1].url, token=access).open()
    await asyncio.wait_for(on_b.queue_empty.wait(), 10)
    server_a, server_b = cluster.servers
    for server in (server_a, server_b):
        assert await sync_to_async(http)(server, "GET", "/api/v1/auth/me", cookies={"access_token": access}) == 200

    cookies = {"access_token": access, "refresh_token": refresh}
    assert await sync_to_async(http)(server_a, "POST", "/api/v1/auth/logout", cookies=cookies) == 204

    await asyncio.wait_for(on_b.reader, 10)  # the server closed it
    assert on_b.ws.close_code == 4403
    for server in (server_a, server_b):
        assert await sync_to_async(http)(server, "GET", "/api/v1/auth/me", cookies={"access_token": access}) == 401
        again = await Client(url=server.url, token=access).open()
        await asyncio.wait_for(again.reader, 10)
        assert again.ws.close_code == 4401
        assert again.of_type("queue_empty") == []
