"""The socket path's database thread.

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
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connection, connections, transaction

IDLE_CHECK_SECONDS = 30

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-db")
_last_used = 0.0


def _call(function, args, kwargs, batch=False):
    global _last_used
    now = time.monotonic()
    if now - _last_used > IDLE_CHECK_SECONDS and connection.connection is not None and not connection.is_usable():
        connection.close()
    _last_used = now
    if not batch and connection.connection is not None and not connection.autocommit:
        # Left in batch mode by the last batch (see batch_transaction): everything else runs
        # in Django's default mode, where `transaction.atomic` commits.
        connection.set_autocommit(True)
    try:
        return function(*args, **kwargs)
    except DatabaseError:
        connection.close()
        raise


async def run_in_db_thread(function, *args, **kwargs):
    """Run a sync ORM function in the chat database thread and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call, function, args, kwargs))


async def run_batch_in_db_thread(function, *args):
    """`run_in_db_thread` for a function that runs its work in `batch_transaction()`: the
    connection stays in batch mode between batches."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call, function, args, {}, True))


@contextlib.contextmanager
def batch_transaction():
    """One transaction for a socket batch, with the fewest round trips the backend allows.

    `transaction.atomic()` on MySQL/MariaDB starts a transaction with `SET autocommit=0` and
    ends it with `COMMIT` and `SET autocommit=1`: three statements, each a network round trip
    (and server CPU on the same machine), where the batch itself is three to five statements
    under light load. Here, on MariaDB, the connection of this thread stays in
    autocommit-off mode between batches (Django's own manual transaction mode: set once per
    connection, and undone by `_call` before any other function runs in the thread), so a
    batch costs one statement more than its work: the `COMMIT`. The block is still an
    `atomic(savepoint=False)` block for Django, so `transaction.on_commit` callbacks (the
    events) are kept until the commit and run only after it succeeded; on any error the
    transaction is rolled back, the callbacks with it, and the connection goes back to
    autocommit so a caller's fallback (which uses `atomic()`) commits as usual. Code in the
    block must not open another `atomic()` (it would make savepoints and not commit): the
    services' batch functions run their statements directly.

    SQLite toggles autocommit inside the library (no round trip): plain `atomic()` there, as
    within a transaction the caller holds already (a test's)."""
    if connection.vendor != "mysql" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    if connection.get_autocommit():
        connection.set_autocommit(False)
    try:
        with transaction.atomic(savepoint=False):
            yield
        connection.commit()
    except BaseException:
        if connection.connection is not None:
            try:
                connection.rollback()
                connection.set_autocommit(True)
            except DatabaseError:
                connection.close()
        raise
    # Committed: now the on_commit callbacks (Django runs them itself when autocommit is
    # switched back on, which this mode does not do).
    connection.run_commit_hooks_on_set_autocommit_on = False
    connection.run_and_clear_commit_hooks()


def _close_all() -> None:
    connections.close_all()


async def close_db_thread_connection() -> None:
    """Close the thread's connection (tests that drop the database afterwards)."""
    await asyncio.get_running_loop().run_in_executor(_executor, _close_all)
