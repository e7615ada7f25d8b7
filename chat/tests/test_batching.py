"""The socket path's batch in the chat database thread: one transaction per batch, and
the thread's connection left in a state where everything else commits as usual."""

import asyncio
import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from chat import batching, db, services
from chat.models import Envelope
from chat.tests.helpers import make_contacts

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


def send_request(sender, to) -> services.SendRequest:
    return services.SendRequest(sender.id, sender.email, to.email, uuid.uuid4(), "message", "x")


def test_a_mixed_batch_is_one_transaction_of_few_statements(make_account):
    """Sends and receipts of a batch are written together; on MariaDB a batch costs its
    statements plus one COMMIT (no autocommit toggles) once the connection is in batch mode."""
    alice, bob = make_account(), make_account()
    make_contacts(alice, bob)

    def counted(batch):
        before = _questions()
        results, collected = batching._apply(batch)
        return results, collected, _questions() - before - 1  # the second SHOW counts itself

    def batches():
        [first], _, sends_only = counted([(batching.SEND, send_request(alice, bob))])
        [second], _, _ = counted([(batching.SEND, send_request(alice, bob))])
        [_], _, receipts_only = counted([(batching.RECEIPT, services.ReceiptRequest(bob.id, [second.id]))])
        mixed = counted(
            [(batching.SEND, send_request(alice, bob)), (batching.RECEIPT, services.ReceiptRequest(bob.id, [first.id]))]
        )
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
        batching._apply([(batching.SEND, send_request(alice, bob))])

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
    store = services._envelopes_store
    calls = []

    def failing_once(requests, *usage):
        results = store(requests, *usage)
        if not calls:
            calls.append(1)
            raise IntegrityError("duplicate (sender, client_id)")
        return results

    monkeypatch.setattr(services, "_envelopes_store", failing_once)
    requests = [send_request(alice, bob), send_request(bob, alice)]
    results, collected = run(batching._apply, [(batching.SEND, r) for r in requests], batch=True)
    assert [r.created for r in results] == [True, True]
    assert sorted(Envelope.objects.values_list("id", flat=True)) == sorted(r.id for r in results)
    assert sorted(message["event"]["id"] for _, message in collected) == sorted(r.id for r in results)
