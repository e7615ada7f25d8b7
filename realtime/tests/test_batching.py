"""realtime.batching and realtime.db with a stand-in domain: the "run this unit of work in a
batch" port. The stand-in `apply` writes a row per request (auth groups, a table any Django
project has) and publishes an event per row through realtime.bus, as a domain does; the chat
domain's own batch is covered in chat/tests/test_batching.py."""

import asyncio
import threading

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError

from realtime import batching, bus, db

pytestmark = pytest.mark.django_db(transaction=True)


class Refused(Exception):
    """The stand-in domain's error: an answer, not a failure of the batch."""


def write_names(requests: list[str]) -> list:
    """The stand-in domain: store each name and announce it; "refuse" is answered with a domain
    error; a name starting with "poison" makes the whole call raise, as a bug would."""
    if any(name.startswith("poison") for name in requests):
        Group.objects.bulk_create([Group(name=name) for name in requests])
        bus.publish_on_commit([1], {"type": "stored", "names": list(requests)})
        raise ValueError("a value the driver cannot bind")
    results = []
    for name in requests:
        if name == "refuse":
            results.append(Refused(name))
            continue
        Group.objects.create(name=name)
        bus.publish_on_commit([1], {"type": "stored", "name": name})
        results.append(f"stored {name}")
    return results


def committed_names() -> set[str]:
    """The names committed so far, read on a connection of another thread."""

    def read():
        try:
            return set(Group.objects.values_list("name", flat=True))
        finally:
            connection.close()

    return asyncio.to_thread(read)


@pytest.fixture
def published(monkeypatch):
    """Every publish of the engine: (the events, the names committed at that moment)."""
    calls: list[tuple[list, set]] = []

    async def send_collected(layer, collected):
        calls.append(([message["event"] for _, message in collected], await committed_names()))

    monkeypatch.setattr(bus, "send_collected", send_collected)
    return calls


def run(main):
    """Run `main` in an event loop, then let the batchers finish (their publishes run after
    the waiters were answered)."""

    async def wrapped():
        try:
            result = await main()
            await asyncio.gather(*(task for task in asyncio.all_tasks() if task is not asyncio.current_task()))
            return result
        finally:
            await db.close_db_thread_connection()

    return asyncio.run(wrapped())


async def submit_together(apply, requests: list) -> list:
    queue = batching.batcher(apply)
    return await asyncio.gather(*(queue.submit(request) for request in requests), return_exceptions=True)


def test_each_waiter_gets_its_own_answer_from_one_batch(published):
    calls = []

    def apply(requests):
        calls.append(list(requests))
        return write_names(requests)

    results = run(lambda: submit_together(apply, ["a", "refuse", "b"]))

    assert calls == [["a", "refuse", "b"]]  # one batch, in the order submitted
    assert results[0] == "stored a"
    assert isinstance(results[1], Refused)
    assert results[2] == "stored b"
    assert published == [([{"type": "stored", "name": "a"}, {"type": "stored", "name": "b"}], {"a", "b"})]


def test_a_raising_batch_is_redone_one_by_one_and_only_the_request_that_raises_again_fails(published):
    calls = []

    def apply(requests):
        calls.append(list(requests))
        return write_names(requests)

    results = run(lambda: submit_together(apply, ["a", "poison", "b"]))

    assert calls == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]
    assert results[0] == "stored a"
    assert isinstance(results[1], ValueError)
    assert results[2] == "stored b"
    # Nothing of the rolled-back batch nor of the failed request: neither rows nor events.
    assert set(Group.objects.values_list("name", flat=True)) == {"a", "b"}
    assert published == [([{"type": "stored", "name": "a"}, {"type": "stored", "name": "b"}], {"a", "b"})]


def test_the_events_of_a_rolled_back_batch_are_never_published(published):
    results = run(lambda: submit_together(write_names, ["poison 1", "poison 2"]))

    assert all(isinstance(result, ValueError) for result in results)
    assert not Group.objects.exists()
    assert published == []


def test_events_are_published_after_their_commit_in_commit_order(published):
    """The second batch is queued while the first one is in the database thread: two
    transactions, and at each publish that batch's rows are committed already."""
    entered, release = threading.Event(), threading.Event()

    def apply(requests):
        if requests == ["a1", "a2"]:
            entered.set()
            release.wait(5)
        return write_names(requests)

    async def main():
        queue = batching.batcher(apply)
        first = [asyncio.ensure_future(queue.submit(name)) for name in ("a1", "a2")]
        await asyncio.to_thread(entered.wait, 5)
        second = [asyncio.ensure_future(queue.submit(name)) for name in ("b1", "b2")]
        release.set()
        return await asyncio.gather(*first, *second)

    assert run(main) == ["stored a1", "stored a2", "stored b1", "stored b2"]
    assert [([event["name"] for event in events], names) for events, names in published] == [
        (["a1", "a2"], {"a1", "a2"}),
        (["b1", "b2"], {"a1", "a2", "b1", "b2"}),
    ]


def test_a_request_that_meets_a_concurrent_insert_is_tried_once_more_alone(published):
    """An IntegrityError (a unique index and a concurrent transaction's row, committed by the
    time the error is raised) rolls the batch back; redone alone, the request gets a second
    try, which sees that row."""
    failures = [2]  # the batch, then the request's first try alone

    def apply(requests):
        if "b" in requests and failures[0]:
            failures[0] -= 1
            raise IntegrityError("duplicate key")
        return write_names(requests)

    assert run(lambda: submit_together(apply, ["a", "b"])) == ["stored a", "stored b"]
    assert failures == [0]
    assert set(Group.objects.values_list("name", flat=True)) == {"a", "b"}


def test_an_atomic_block_inside_a_batch_is_refused(published):
    """A savepoint rolled back inside a batch would leave its events collected: the engine
    refuses `atomic()` in a batch rather than leave that to the domain's discipline."""

    def nested(requests):
        with transaction.atomic():
            return write_names(requests)

    [result] = run(lambda: submit_together(nested, ["a"]))
    assert isinstance(result, TransactionManagementError)
    assert not Group.objects.exists()
    assert published == []


@pytest.mark.mariadb
def test_on_commit_inside_a_batch_is_refused(published):
    """Django would keep the hook until autocommit is switched back on, long after this
    batch's commit: in the batch's manual mode Django refuses it, and the batch rolls back."""

    def hooked(requests):
        results = write_names(requests)
        transaction.on_commit(lambda: None)
        return results

    [result] = run(lambda: submit_together(hooked, ["a"]))
    assert isinstance(result, TransactionManagementError)
    assert not Group.objects.exists()
    assert published == []


def test_work_after_a_batch_runs_in_djangos_default_mode_and_commits(published):
    """A batch leaves the thread's connection in batch mode (on MariaDB); a function run
    afterwards in the same thread gets Django's default mode back, so its `atomic()` block
    commits (and its on_commit hooks run)."""
    hooks = []

    def write_outside_a_batch() -> bool:
        with transaction.atomic():
            Group.objects.create(name="outside")
            transaction.on_commit(lambda: hooks.append("ran"))
        return transaction.get_autocommit()

    async def main():
        await submit_together(write_names, ["a"])
        return await db.run_in_db_thread(write_outside_a_batch)

    assert run(main) is True
    assert hooks == ["ran"]
    assert set(Group.objects.values_list("name", flat=True)) == {"a", "outside"}


def test_a_failed_batch_leaves_the_connection_usable_for_the_next_one(published):
    """A batch whose transaction failed in the database (here: an error raised by a statement)
    is rolled back; the next batch on the same connection commits."""
    calls = []

    def apply(requests):
        calls.append(list(requests))
        if len(calls) == 1:
            raise OperationalError("Lost connection to server during query")
        return write_names(requests)

    async def main():
        first = await submit_together(apply, ["a"])
        return first, await submit_together(apply, ["b"])

    assert run(main) == (["stored a"], ["stored b"])
    assert calls == [["a"], ["a"], ["b"]]
