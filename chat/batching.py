"""Group commit for the socket path.

Each socket handles its frames one at a time, but a process holds hundreds of sockets. Their
`send`, `ack` and `read` frames are queued here and applied together: one hop to the database
thread, one transaction (so one commit, one fsync on MariaDB) and a handful of queries for the
whole batch, instead of all of that per frame. No timer is involved: a batch is whatever
arrived while the previous one was being written, so an idle server answers a lone frame at
once and a busy one writes bigger batches.

Per request nothing changes: each socket awaits its own answer (a result or a domain error),
the rules are the same service code as for the REST path (chat.services), and events are
published only after the batch committed, from the event loop.

One request must never cost the others their answer. A refused request is an answer (a
domain error) and does not abort the batch; but anything else that raises (a value the
database driver cannot bind, a bug, a lost connection) rolls the whole transaction back. The
batch is then redone request by request, each in its own transaction (`_apply_each`): the
request that raises again gets its exception (the consumer answers that one frame
`server_error`), the others their usual answers. This costs nothing while batches succeed.
"""

import asyncio
import logging
import weakref

from channels.layers import get_channel_layer
from django.db import DatabaseError, connection

from chat import events, services
from chat.db import run_batch_in_db_thread, run_in_db_thread

logger = logging.getLogger(__name__)

MAX_BATCH = 200

SEND = "send"
RECEIPT = "receipt"


def _apply(batch: list[tuple[str, object]]) -> tuple[list, list]:
    """In the database thread: the batch's sends, then its receipts, in one transaction."""
    sends = [request for kind, request in batch if kind == SEND]
    receipts = [request for kind, request in batch if kind == RECEIPT]
    with events.collected_events() as collected:
        send_results, receipt_results = map(iter, services.batch_apply(sends, receipts))
    results = [next(send_results) if kind == SEND else next(receipt_results) for kind, _ in batch]
    return results, collected


def _apply_each(batch: list[tuple[str, object]]) -> tuple[list, list]:
    """In the database thread, after the batch raised: each request alone, in its own
    transaction (in Django's default mode, see chat.db). A request that raises again is
    rolled back with its events and answered with its exception; a connection it left
    unusable is closed, so the next request opens a new one. When no connection can be
    opened at all, the database is down for everyone: the remaining requests get that error
    at once rather than a connection attempt (and its timeout) each."""
    results: list = []
    with events.collected_events() as collected:
        for index, (kind, request) in enumerate(batch):
            try:
                connection.ensure_connection()
            except DatabaseError as exc:
                results.extend([exc] * (len(batch) - index))
                break
            try:
                apply = services.envelopes_send if kind == SEND else services.envelopes_mark
                [result] = apply([request])
            except Exception as exc:
                result = exc
                if connection.connection is not None and not connection.is_usable():
                    connection.close()
            results.append(result)
    return results, collected


class Batcher:
    def __init__(self):
        self._pending: list[tuple[str, object, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def submit(self, kind: str, request):
        """Queue one request; returns its result or raises its domain error (or, when the
        request raised on its own, that exception)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((kind, request, future))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            requests = [(kind, request) for kind, request, _ in batch]
            try:
                results, collected = await run_batch_in_db_thread(_apply, requests)
            except Exception as exc:
                # Rolled back, events included. The exception's text is not logged: database
                # errors can quote the values.
                logger.warning(
                    "chat batch failed, redone one by one requests=%s error=%s", len(batch), type(exc).__name__
                )
                try:
                    results, collected = await run_in_db_thread(_apply_each, requests)
                except Exception as exc:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
            # Committed: the senders may hear `sent` now, before the pushes go out (nothing
            # waits on the push, and with Redis it is a round trip the answer need not pay).
            for (*_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            try:
                await events.send_collected(get_channel_layer(), collected)
            except Exception as exc:
                # The envelopes are committed; a lost push only delays them until the
                # recipient's next connect or sync.
                logger.error("chat push failed after commit events=%s error=%s", len(collected), type(exc).__name__)


_batchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher]" = weakref.WeakKeyDictionary()


def batcher() -> Batcher:
    """The batcher of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    found = _batchers.get(loop)
    if found is None:
        found = _batchers[loop] = Batcher()
    return found
