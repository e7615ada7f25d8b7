"""The chat socket's batch (chat.services.envelopes_apply) in the engine (realtime.batching):
one transaction per batch of sends and receipts, and the thread's connection left in a state
where everything else commits as usual. The engine on its own: realtime/tests/test_batching.py."""

import asyncio
import time
import uuid

import pytest
from django.db import IntegrityError, OperationalError, connection, connections, transaction

from chat import services
from chat.models import Envelope
from chat.tests.helpers import make_contacts
from realtime import batching, bus, db

pytestmark = pytest.mark.django_db(transaction=True)


def run(function, *args, batch=False):
    """Run `function` in the chat database thread, as the consumer and the batcher do."""
    runner = db.run_batch_in_db_thread if batch else db.run_in_db_thread

    async def main():
        try:
            return await runner(function, *args)
        finally:
            await db.close_db_thread_connection()

    return asyncio.run(main())


def apply_batch(requests: list):
    """The batch as the engine applies it: (results, collected events)."""
    return batching._apply_in_transaction(services.envelopes_apply, requests)


def send_request(sender, to) -> services.SendRequest:
    return services.SendRequest(sender.id, sender.email, to.email, uuid.uuid4(), "message", "x")


def test_a_mixed_batch_is_one_transaction_of_few_statements(make_account):
    """Sends and receipts of a batch are written together; on MariaDB a batch costs its
    statements plus one COMMIT (no autocommit toggles) once the connection is in batch mode."""
    alice, bob = make_account(), make_account()
    make_contacts(alice, bob)

    def counted(batch):
        before = _questions()
        results, collected = apply_batch(batch)
        return results, collected, _questions() - before - 1  # the second SHOW counts itself

    def batches():
        [first], _, sends_only = counted([send_request(alice, bob)])
        [second], _, _ = counted([send_request(alice, bob)])
        [_], _, receipts_only = counted([services.ReceiptRequest(bob.id, [second.id])])
        mixed = counted([send_request(alice, bob), services.ReceiptRequest(bob.id, [first.id])])
        return first, mixed, (sends_only, receipts_only, mixed[2])

    first, ((third, receipt), collected, _), statements = run(batches, batch=True)
    assert third.created
    assert receipt.marked == [first.id]
    assert [message["event"]["type"] for _, message in collected] == ["message", "delivered"]
    assert Envelope.objects.get(id=first.id).delivered_at is not None
    assert Envelope.objects.filter(id=third.id).exists()  # committed, seen from another connection
    if connection.vendor == "mysql":
        # sends: users_and_resends, accepted_pairs, INSERT, COMMIT; receipts: SELECT ... FOR
        # UPDATE, UPDATE, COMMIT; both: one COMMIT; and one upsert of the mailbox counters
        # per batch (none in the mixed batch here: its send and its receipt move the same
        # counters by the same byte, which cancels out). The first batch of a connection
        # adds one `SET autocommit=0` (the first batch here is the sends-only one).
        assert statements == (6, 4, 6)


def _questions() -> int:
    if connection.vendor != "mysql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
        return int(cursor.fetchone()[1])


def test_after_a_batch_other_work_in_the_thread_commits_as_usual(make_account):
    """The batch leaves the thread's connection in batch mode; a function run afterwards in
    the same thread (connect, typing, receipts queries) gets Django's default mode back, so
    its `atomic()` block commits."""
    alice, bob = make_account(), make_account()
    make_contacts(alice, bob)

    def batch_then_write():
        apply_batch([send_request(alice, bob)])

    async def main():
        try:
            await db.run_batch_in_db_thread(batch_then_write)
            return await db.run_in_db_thread(_write_and_report_autocommit)
        finally:
            await db.close_db_thread_connection()

    assert asyncio.run(main()) is True
    assert Envelope.objects.filter(body="written outside a batch").exists()


def _write_and_report_autocommit() -> bool:
    with transaction.atomic():
        Envelope.objects.update(body="written outside a batch")
    return connection.get_autocommit()


def test_a_batch_that_meets_a_concurrent_resend_is_rolled_back_and_redone(make_account, monkeypatch):
    """The first attempt's INSERT fails (as when another process stored the same
    (sender, client_id) in between): nothing of it stays, not even its events, and the
    fallback stores and commits each request."""
    alice, bob = make_account(), make_account()
    make_contacts(alice, bob)
    store = services._sends_store
    calls = []

    def failing_once(requests, usage):
        results = store(requests, usage)
        if not calls:
            calls.append(1)
            raise IntegrityError("duplicate (sender, client_id)")
        return results

    monkeypatch.setattr(services, "_sends_store", failing_once)
    requests = [send_request(alice, bob), send_request(bob, alice)]
    results, collected = run(batching._apply_batch, services.envelopes_apply, requests, batch=True)
    assert [r.created for r in results] == [True, True]
    assert sorted(Envelope.objects.values_list("id", flat=True)) == sorted(r.id for r in results)
    assert sorted(message["event"]["id"] for _, message in collected) == sorted(r.id for r in results)


def message_push(envelope_id: int) -> dict:
    return {"type": bus.PUSH_EVENT, "event": {"type": "message", "id": envelope_id}}


REREAD = {"type": bus.BACKLOG_REREAD}


@pytest.fixture
def redis_down(monkeypatch):
    """`bus.send_collected` fails while `down[0]`; every call is recorded."""
    calls: list[list] = []
    down = [True]

    async def send_collected(layer, collected):
        calls.append(list(collected))
        if down[0]:
            raise ConnectionError("Connection closed by server.")

    monkeypatch.setattr(bus, "send_collected", send_collected)
    return calls, down


async def wait_for_held(pushes: batching.Pushes, expected: list) -> None:
    deadline = time.monotonic() + 5
    while pushes._held != expected:
        assert time.monotonic() < deadline, pushes._held
        await asyncio.sleep(0.01)


async def test_pushes_given_up_leave_a_backlog_reread_for_each_recipient_until_it_goes_out(redis_down, monkeypatch):
    """Retries of the events themselves are bounded: after the last one they are given up,
    and each recipient of an envelope among them is owed one `backlog.reread` (receipts and
    notices are not: clients ask for them on connect), tried until Redis takes it. Then the
    next batch publishes at once again."""
    calls, down = redis_down
    monkeypatch.setattr(batching, "PUSH_RETRY_DELAYS", (0.01, 0.01))
    receipt = {"type": bus.PUSH_EVENT, "event": {"type": "delivered", "ids": [9]}}
    pushes = batching.Pushes()
    await pushes.send([([2], message_push(1)), ([1], receipt)])
    await pushes.send([([3], message_push(2))])  # queued behind the held ones, not sent out of order
    assert calls == [[([2], message_push(1)), ([1], receipt)]]
    await wait_for_held(pushes, [([2, 3], REREAD)])
    assert calls[1:3] == [[([2], message_push(1)), ([1], receipt), ([3], message_push(2))]] * 2

    down[0] = False
    await asyncio.wait_for(pushes._retrying, 5)
    assert calls[-1] == [([2, 3], REREAD)]
    assert pushes._held == []
    await pushes.send([([2], message_push(3))])
    assert calls[-1] == [([2], message_push(3))]


async def test_more_held_pushes_than_the_bound_are_given_up_at_once(redis_down, monkeypatch):
    calls, down = redis_down
    monkeypatch.setattr(batching, "PUSH_HELD_MAX", 2)
    pushes = batching.Pushes()
    await pushes.send([([2], message_push(1)), ([3], message_push(2))])
    assert len(pushes._held) == 2
    await pushes.send([([2], message_push(3))])
    assert pushes._held == [([2, 3], REREAD)]
    down[0] = False
    await asyncio.wait_for(pushes._retrying, 5)
    assert calls[-1] == [([2, 3], REREAD)]


def submit_together(requests: list) -> list:
    """Submit every request to the batcher at once (they form one batch: the drain task
    starts after all of them are queued); each one's result or the exception it raised."""

    async def main():
        try:
            return await asyncio.gather(
                *(batching.batcher(services.envelopes_apply).submit(request) for request in requests),
                return_exceptions=True,
            )
        finally:
            await db.close_db_thread_connection()

    return asyncio.run(main())


def test_a_request_that_raises_in_the_batch_fails_alone(make_account, monkeypatch):
    """A non-domain exception inside the batch (here a send and a receipt that make the
    database layer raise, as a value the driver cannot bind did) rolls the whole batch back;
    it is redone request by request, so only those two requests fail and every other
    request of the batch is stored, marked and answered as usual."""
    alice, bob, mallory = make_account(), make_account(), make_account()
    make_contacts(alice, bob)
    [first], _ = run(apply_batch, [send_request(alice, bob)], batch=True)
    users_and_resends, receipt_rows = services.sql.users_and_resends, services.sql.receipt_rows
    batches = []

    def failing_users_and_resends(*, emails, ids, keys, **quotas):
        batches.append(len(keys))
        if "poison@example.test" in emails:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return users_and_resends(emails=emails, ids=ids, keys=keys, **quotas)

    def failing_receipt_rows(ids):
        if 42 in ids:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return receipt_rows(ids)

    monkeypatch.setattr(services.sql, "users_and_resends", failing_users_and_resends)
    monkeypatch.setattr(services.sql, "receipt_rows", failing_receipt_rows)
    poisoned_send = services.SendRequest(mallory.id, mallory.email, "poison@example.test", uuid.uuid4(), "message", "x")
    requests = [
        send_request(alice, bob),
        poisoned_send,
        services.ReceiptRequest(mallory.id, [42]),
        services.ReceiptRequest(bob.id, [first.id]),
        send_request(bob, alice),
        send_request(mallory, bob),
    ]

    results = submit_together(requests)

    assert batches[0] == 4  # one batch of the four sends, then each send alone
    alice_sent, poison_sent, poison_receipt, bob_receipt, bob_sent, stranger = results
    assert isinstance(poison_sent, OverflowError)
    assert isinstance(poison_receipt, UnicodeEncodeError)
    assert alice_sent.created
    assert bob_sent.created
    assert bob_receipt.marked == [first.id]
    assert stranger.code == "not_a_contact"
    stored = {(e.sender_id, e.recipient_id): e for e in Envelope.objects.exclude(id=first.id)}
    assert set(stored) == {(alice.id, bob.id), (bob.id, alice.id)}
    assert {stored[alice.id, bob.id].id, stored[bob.id, alice.id].id} == {alice_sent.id, bob_sent.id}
    assert Envelope.objects.get(id=first.id).delivered_at is not None


def test_a_batch_that_fails_once_is_redone_and_every_request_succeeds(make_account, monkeypatch):
    """A failure that is no request's fault (a connection lost mid-batch) costs the batch a
    second round, request by request, not its answers."""
    alice, bob = make_account(), make_account()
    make_contacts(alice, bob)
    apply = services.envelopes_apply
    calls = []

    def failing_once(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise OperationalError("Lost connection to server during query")
        return apply(batch)

    monkeypatch.setattr(services, "envelopes_apply", failing_once)
    results = submit_together([send_request(alice, bob), send_request(bob, alice)])
    assert calls == [2, 1, 1]  # the batch once, then each request alone
    assert [r.created for r in results] == [True, True]
    assert sorted(Envelope.objects.values_list("id", flat=True)) == sorted(r.id for r in results)


def test_when_the_database_is_unreachable_the_redo_does_not_connect_once_per_request(make_account, monkeypatch):
    """The batch failed and no connection can be opened: every request gets that error
    after one attempt, not one connection attempt (and timeout) each."""
    alice, bob = make_account(), make_account()
    make_contacts(alice, bob)
    attempts = []

    def unreachable(self):
        attempts.append(1)
        raise OperationalError("Can't connect to server")

    def failing_batch(apply, batch):
        raise OperationalError("Lost connection to server during query")

    monkeypatch.setattr(batching, "_apply_in_transaction", failing_batch)
    monkeypatch.setattr(type(connections["default"]), "ensure_connection", unreachable)
    results = submit_together([send_request(alice, bob) for _ in range(5)])
    assert attempts == [1]
    assert all(isinstance(result, OperationalError) for result in results)
