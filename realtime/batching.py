"""Group commit for the socket path: the engine's "run this unit of work in a batch" port.

Each socket handles its frames one at a time, but a process holds hundreds of sockets. Their
requests are queued here and applied together: one hop to the database thread, one
transaction (so one commit, one fsync on MariaDB) and a handful of queries for the whole
batch, instead of all of that per frame. No timer is involved: a batch is whatever arrived
while the previous one was being written, so an idle server answers a lone frame at once and
a busy one writes bigger batches.

The domain hands over what a batch does: `batcher(apply)`, where `apply(requests)` runs
inside the batch transaction and returns, per request and in order, its result or its domain
error (an exception instance, which does not abort the batch). chat.services.envelopes_apply
is the chat socket's. Everything else is the engine's: the queue, the database thread, the
transaction (realtime.db.batch_transaction), the events the batch publishes
(realtime.bus.collecting: sent from the event loop after the commit, dropped on rollback,
see `Pushes`), and each waiter's answer.

One request must never cost the others their answer. Anything that raises out of `apply` (a
value the database driver cannot bind, a bug, a lost connection, a unique index meeting a
concurrent transaction) rolls the whole transaction back. The batch is then redone request
by request, each in its own transaction (`_apply_each`): the request that raises again gets
its exception (the consumer answers that one frame `server_error`), the others their usual
answers. This costs nothing while batches succeed.
"""

import asyncio
import logging
import weakref
from collections.abc import Callable, Sequence

from channels.layers import get_channel_layer
from django.db import DatabaseError, IntegrityError, connection

from realtime import bus
from realtime.db import batch_transaction, close_unusable, run_batch_in_db_thread

logger = logging.getLogger(__name__)

MAX_BATCH = 200

# A failed publish is tried again after each of these waits (about 15 s in all); then its events
# are given up, and only a `backlog.reread` for each of their envelopes' recipients is tried
# again, every last wait, until it goes out.
PUSH_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1, 2, 2, 2, 3, 4)
# At most this many events wait for a retry (a message event holds its body, up to
# MESSAGE_MAX_BODY_BYTES); beyond it they are given up the same way at once.
PUSH_HELD_MAX = 5000

# apply(requests) -> per request, its result or its domain error (an exception instance).
Apply = Callable[[list], Sequence[object]]


def _apply_in_transaction(apply: Apply, requests: list) -> tuple[Sequence[object], bus.Collected]:
    """In the database thread: `apply(requests)` in one batch transaction, and the events it
    published, which exist only if the transaction committed (an exception drops them)."""
    collected: bus.Collected = []
    with bus.collecting(collected), batch_transaction():
        results = apply(requests)
        if len(results) != len(requests):
            raise RuntimeError(f"batch apply answered {len(results)} of {len(requests)} requests")
    return results, collected


def _apply_batch(apply: Apply, requests: list) -> tuple[Sequence[object], bus.Collected]:
    """In the database thread: the batch in one transaction, or, when that raised, request by
    request. The exception's text is not logged: database errors can quote the values."""
    try:
        return _apply_in_transaction(apply, requests)
    except Exception as exc:
        logger.warning("chat batch failed, redone one by one requests=%s error=%s", len(requests), type(exc).__name__)
    close_unusable()
    return _apply_each(apply, requests)


def _apply_each(apply: Apply, requests: list) -> tuple[list, bus.Collected]:
    """Each request alone, in its own transaction. A request that raises again is rolled back
    with its events and answered with its exception; a connection it left unusable is
    closed, so the next request opens a new one. When no connection can be opened at all,
    the database is down for everyone: the remaining requests get that error at once rather
    than a connection attempt (and its timeout) each."""
    results: list = []
    collected: bus.Collected = []
    for index, request in enumerate(requests):
        try:
            connection.ensure_connection()
        except DatabaseError as exc:
            results.extend([exc] * (len(requests) - index))
            break
        try:
            [result], events = _apply_alone(apply, request)
            collected += events
        except Exception as exc:
            result = exc
            close_unusable()
        results.append(result)
    return results, collected


def _apply_alone(apply: Apply, request) -> tuple[Sequence[object], bus.Collected]:
    """One request in its own transaction. An IntegrityError is tried once more: a unique
    index met a concurrent transaction's row (as a resend from another tab or process),
    which is committed by the time the error is raised, so the second try reads it
    (chat.services answers such a resend with the stored id)."""
    try:
        return _apply_in_transaction(apply, [request])
    except IntegrityError:
        return _apply_in_transaction(apply, [request])


class Pushes:
    """Publishes committed batches' events in commit order; a failed publish is retried in the
    background while later batches are written and answered.

    Normally the batch loop awaits the publish itself (overlapping it with the next batch's
    database work was measured to make smaller batches for more CPU, see docs/ARCHITECTURE.md).
    When it fails (the Redis connection was cut; redis-py connects again on the next command),
    its events are held and published again by a task of their own after short waits, and
    the events of later batches queue behind them, so pushes keep their order. A publish cut
    midway may have sent part of its events: they go out again, and a duplicate push is
    harmless (a socket does not send an unacknowledged envelope twice; clients dedupe by id).

    Held events are bounded in time and number (PUSH_RETRY_DELAYS, PUSH_HELD_MAX). Past
    either bound they are given up, but not forgotten: each recipient of an envelope among
    them is owed one small `backlog.reread` push (the envelope is in the database, and the
    socket re-reads its backlog, ChatConsumer.backlog_reread), retried until it goes out. The
    other events are receipts and notices, which clients ask for again when they connect.
    """

    def __init__(self):
        self._held: list[tuple[list[int], dict]] = []
        self._retrying: asyncio.Task | None = None

    async def send(self, collected: list[tuple[list[int], dict]]) -> None:
        if not collected:
            return
        if self._held:
            self._hold(collected)
            return
        try:
            await bus.send_collected(get_channel_layer(), collected)
        except Exception as exc:
            logger.warning("chat push failed, retrying events=%s error=%s", len(collected), type(exc).__name__)
            self._hold(collected)
            self._retrying = asyncio.ensure_future(self._retry())

    def _hold(self, collected: list[tuple[list[int], dict]]) -> None:
        self._held.extend(collected)
        if len(self._held) > PUSH_HELD_MAX:
            self._give_up("too_many_held")

    def _give_up(self, reason: str) -> None:
        """Replace the held events by one `backlog.reread` for everyone owed an envelope."""
        owed: dict[int, None] = {}
        given_up = 0
        for user_ids, message in self._held:
            if message["type"] == bus.BACKLOG_REREAD:
                owed.update(dict.fromkeys(user_ids))
                continue
            given_up += 1
            if message["type"] == bus.PUSH_EVENT and message["event"].get("type") == "message":
                owed.update(dict.fromkeys(user_ids))
        if given_up:
            logger.error(
                "chat push failed after commit, given up events=%s rereads=%s reason=%s", given_up, len(owed), reason
            )
        self._held = [(list(owed), {"type": bus.BACKLOG_REREAD})] if owed else []

    async def _retry(self) -> None:
        """Runs while events are held: `send` starts it only when nothing was held, and it
        returns only once nothing is (every step between is synchronous)."""
        failures = 1
        while self._held:
            if failures:
                if failures > len(PUSH_RETRY_DELAYS):
                    self._give_up("retries_exhausted")
                    if not self._held:
                        return
                await asyncio.sleep(PUSH_RETRY_DELAYS[min(failures, len(PUSH_RETRY_DELAYS)) - 1])
            held = self._held
            sending = list(held)
            try:
                await bus.send_collected(get_channel_layer(), sending)
            except Exception as exc:
                failures += 1
                logger.warning("chat push retry failed events=%s error=%s", len(sending), type(exc).__name__)
                continue
            if self._held is held:  # else given up meanwhile: the rereads left are owed still
                del held[: len(sending)]
            failures = 0
        logger.info("chat push retry succeeded")


class Batcher:
    """The batch queue of one `apply` function in one event loop (see `batcher`)."""

    def __init__(self, apply: Apply):
        self._apply = apply
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self._pushes = Pushes()

    async def submit(self, request):
        """Queue one request; returns its result or raises its domain error (or, when the
        request raised on its own, that exception)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results, collected = await run_batch_in_db_thread(
                    _apply_batch, self._apply, [request for request, _ in batch]
                )
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            # Committed: the senders may hear `sent` now, before the pushes go out (nothing
            # waits on the push, and with Redis it is a round trip the answer need not pay).
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            await self._pushes.send(collected)


_batchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Apply, Batcher]]" = weakref.WeakKeyDictionary()


def batcher(apply: Apply) -> Batcher:
    """The batcher of `apply` in the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    found = _batchers.get(loop)
    if found is None:
        found = _batchers[loop] = {}
    queue = found.get(apply)
    if queue is None:
        queue = found[apply] = Batcher(apply)
    return queue
