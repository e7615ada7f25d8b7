"""The socket path's database thread.

`database_sync_to_async` runs ORM calls in asgiref's one "thread-sensitive" thread, the same
thread that runs every Django HTTP view of the process, and closes the database connection
after each call (CONN_MAX_AGE = 0, pitfall 8). For the chat socket that meant a new database
connection and a queue behind HTTP requests for every frame. The consumer's database work
runs here instead: one dedicated thread that keeps its one connection open.

Why that is safe where a persistent connection usually is not: pitfall 8's leak comes from
many pool threads each keeping a connection nobody closes; here there is exactly one thread,
so exactly one extra connection per server process. The connection is checked after it sat
idle for IDLE_CHECK_SECONDS (databases drop idle clients) and closed after any database error,
so a restarted database costs one failed batch, not a broken process. Django's own
thread-locals apply: the connection belongs to this thread alone.
"""

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connection, connections

IDLE_CHECK_SECONDS = 30

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-db")
_last_used = 0.0


def _call(function, args, kwargs):
    global _last_used
    now = time.monotonic()
    if now - _last_used > IDLE_CHECK_SECONDS and connection.connection is not None and not connection.is_usable():
        connection.close()
    _last_used = now
    try:
        return function(*args, **kwargs)
    except DatabaseError:
        connection.close()
        raise


async def run_in_db_thread(function, *args, **kwargs):
    """Run a sync ORM function in the chat database thread and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call, function, args, kwargs))


def _close_all() -> None:
    connections.close_all()


async def close_db_thread_connection() -> None:
    """Close the thread's connection (tests that drop the database afterwards)."""
    await asyncio.get_running_loop().run_in_executor(_executor, _close_all)
