"""The socket path's database thread and the batch transaction.

`database_sync_to_async` runs ORM calls in asgiref's one "thread-sensitive" thread, the same
thread that runs every Django HTTP view of the process, and closes the database connection
after each call (CONN_MAX_AGE = 0). For the chat socket that meant a new database
connection and a queue behind HTTP requests for every frame. The consumer's database work
runs here instead: one dedicated thread that keeps its one connection open.

Why that is safe where a persistent connection usually is not: persistent connections leak
when many pool threads each keep one that nobody closes; here there is exactly one thread,
so exactly one extra connection per server process. The connection is checked after it sat
idle for IDLE_CHECK_SECONDS (databases drop idle clients) and closed after any database error,
so a restarted database costs one failed batch, not a broken process. Django's own
thread-locals apply: the connection belongs to this thread alone.
"""

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connection, connections, transaction
from django.db.transaction import TransactionManagementError

IDLE_CHECK_SECONDS = 30

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-db")
_last_used = 0.0


class _ConnectionState(threading.local):
    # True while this thread's connection is in batch mode (autocommit off, see
    # `batch_transaction`); a new connection starts in Django's default mode.
    batch_mode = False


_state = _ConnectionState()


def _call(function, args, kwargs, batch=False):
    global _last_used
    now = time.monotonic()
    if now - _last_used > IDLE_CHECK_SECONDS and connection.connection is not None and not connection.is_usable():
        _close()
    _last_used = now
    if not batch and _state.batch_mode:
        # Left in batch mode by the last batch: everything else runs in Django's default
        # mode, where `transaction.atomic` commits.
        transaction.set_autocommit(True)
        _state.batch_mode = False
    try:
        return function(*args, **kwargs)
    except DatabaseError:
        _close()
        raise


def _close() -> None:
    connection.close()
    _state.batch_mode = False


async def run_in_db_thread(function, *args, **kwargs):
    """Run a sync ORM function in the chat database thread and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call, function, args, kwargs))


async def run_batch_in_db_thread(function, *args):
    """`run_in_db_thread` for a function that runs its work in `batch_transaction()`: the
    connection stays in batch mode between batches."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call, function, args, {}, True))


def close_unusable() -> None:
    """Close the thread's connection if a failure left it unusable (the next use opens a new one)."""
    if connection.connection is not None and not connection.is_usable():
        _close()


@contextlib.contextmanager
def batch_transaction() -> Iterator[None]:
    """One transaction for a socket batch, with the fewest round trips the backend allows;
    the block commits when it ends without an exception and is rolled back when it raises.

    `transaction.atomic()` on MySQL/MariaDB starts a transaction with `SET autocommit=0` and
    ends it with `COMMIT` and `SET autocommit=1`: three statements, each a network round trip
    (and server CPU on the same machine), where the batch itself is three to five statements
    under light load. Here, on MariaDB, the connection of this thread stays in Django's
    manual transaction mode (`transaction.set_autocommit(False)`) between batches: set once
    per connection and undone by `_call` before any other function runs in the thread. In
    that mode every statement runs in the open transaction, so a batch costs one statement
    more than its work: the `transaction.commit()`. On any error it is rolled back and the
    exception goes on; if even the rollback fails, the connection is closed.

    No `transaction.on_commit` inside: Django runs commit hooks only when autocommit is
    switched back on, which this mode does not do. Events therefore do not wait in Django's
    hooks: realtime.batching collects them per batch (realtime.bus.collecting) and sends them
    itself after this block committed, or drops them when it raised. For the same reason
    the block refuses what would make those events wrong, rather than leave it to the
    callers' discipline:
    - `transaction.atomic()` inside the block: a savepoint rolled back inside a batch would
      leave its events collected. An instrumentation hook (`connection.execute_wrapper`)
      notes any SAVEPOINT statement, and the block then raises TransactionManagementError
      at its end (so the batch is rolled back) instead of committing. Raising from the hook
      itself would leave Django's own state of the block behind. An
      `atomic(savepoint=False)` makes no statement; its error rolls the whole batch back;
    - `transaction.on_commit()` inside the block raises on its own in MariaDB's manual mode.

    SQLite toggles autocommit inside the library (no round trip): a plain `atomic()` there,
    as within a transaction the caller holds already (a test's)."""
    guard = _SavepointGuard()
    if connection.vendor != "mysql" or not (_state.batch_mode or transaction.get_autocommit()):
        with transaction.atomic():
            with connection.execute_wrapper(guard):
                yield
            guard.check()
        return
    if not _state.batch_mode:
        transaction.set_autocommit(False)
        _state.batch_mode = True
    try:
        with connection.execute_wrapper(guard):
            yield
        guard.check()
        transaction.commit()
    except BaseException:
        try:
            transaction.rollback()
        except DatabaseError:
            _close()
        raise


class _SavepointGuard:
    """Notes a SAVEPOINT statement (an `atomic()` block) in a batch (see `batch_transaction`)."""

    __slots__ = ("seen",)

    def __init__(self):
        self.seen = False

    def __call__(self, execute, sql, params, many, context):
        if sql.startswith("SAVEPOINT"):
            self.seen = True
        return execute(sql, params, many, context)

    def check(self) -> None:
        if self.seen:
            raise TransactionManagementError("No atomic() inside a batch: the batch is one transaction (realtime.db).")


def _close_all() -> None:
    connections.close_all()
    _state.batch_mode = False


async def close_db_thread_connection() -> None:
    """Close the thread's connection (tests that drop the database afterwards)."""
    await asyncio.get_running_loop().run_in_executor(_executor, _close_all)
