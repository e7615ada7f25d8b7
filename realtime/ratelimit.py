"""In-process rate limits for the chat frames and the one send budget of a user.

`accounts.ratelimit` keeps its buckets in the database so they hold across processes; that
costs a locked read and a write per call, more than storing the message itself. Socket frames
are limited here instead, with the same GCRA function (messenger.ratelimit) and the same
`RATE_LIMITS` specs ("message_send", "typing", "receipts", "ack", "read", "sync"), in a dict
of this process keyed by (scope, user id):

- all sockets of a user on one process share one bucket (several tabs do not multiply it,
  and reconnecting does not refill it);
- "message_send" is ONE budget for both ways of sending: the REST fallback
  (`POST /api/v1/messages/`, chat.views) takes from the same bucket as the socket's `send`
  frames, so a client cannot double its rate by using both. REST sends also pass the
  database bucket, which holds across processes (an HTTP request pays a database round trip
  anyway; a socket frame must not);
- with N server processes a user holding sockets on all of them gets up to N times the rate.
  That is the accepted trade-off: the limit protects the server from a runaway client, it is
  not an accounting quota (the storage quotas of chat.services are exact, in the database).

The REST views run in worker threads and the sockets in the event loop, so the bucket update
holds a lock (uncontended, well under a microsecond). `RATE_LIMITS_ENABLED=false` switches
these off too (benchmarks only).
"""

import threading
import time

from django.conf import settings

from messenger.ratelimit import gcra_take

# Full buckets are dropped once the dict grows past this (a full bucket is a missing one).
_PRUNE_AT = 10_000
_buckets: dict[tuple[str, int], float] = {}
_lock = threading.Lock()


def local_rate_limit_hit(scope: str, user_id: int, *, now: float | None = None) -> None:
    """Count one frame (or REST send) of `user_id` against limit `scope`; RateLimited when
    the bucket is empty (denied frames do not consume)."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    spec = settings.RATE_LIMITS[scope]
    key = (scope, user_id)
    with _lock:
        now = time.monotonic() if now is None else now
        _buckets[key] = gcra_take(spec, tat=_buckets.get(key, now), now=now)
        if len(_buckets) > _PRUNE_AT:
            _prune(now)


def _prune(now: float) -> None:
    for key in [key for key, tat in _buckets.items() if tat <= now]:
        del _buckets[key]


def local_rate_limits_reset() -> None:
    """Forget every bucket (tests)."""
    with _lock:
        _buckets.clear()
