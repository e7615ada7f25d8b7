"""In-process rate limits for the WebSocket path.

`accounts.ratelimit` keeps its buckets in the database so they hold across processes; that
costs a locked read and a write per call, more than storing the message itself. Socket frames
are limited here instead, with the same GCRA algorithm and the same `RATE_LIMITS` specs
("message_send", "typing"), in a dict of this process keyed by (scope, user id):

- all sockets of a user on one process share one bucket (several tabs do not multiply it,
  and reconnecting does not refill it);
- with N server processes a user holding sockets on all of them gets up to N times the rate.
  That is the accepted trade-off: the limit protects the server from a runaway client, it is
  not an accounting quota. The REST fallback still uses the database buckets.

`RATE_LIMITS_ENABLED=false` switches these off too (benchmarks only).
"""

import math
import time

from django.conf import settings

from accounts.ratelimit import parse_limit
from messenger.errors import RateLimited

# Full buckets are dropped once the dict grows past this (a full bucket is a missing one).
_PRUNE_AT = 10_000
_buckets: dict[tuple[str, int], float] = {}


def local_rate_limit_hit(scope: str, user_id: int, *, now: float | None = None) -> None:
    """Count one frame of `user_id` against limit `scope`; RateLimited when the bucket is
    empty (denied frames do not consume)."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    burst, period = parse_limit(settings.RATE_LIMITS[scope])
    interval = period / burst
    now = time.monotonic() if now is None else now
    key = (scope, user_id)
    new_tat = max(_buckets.get(key, now), now) + interval
    allowed_at = new_tat - burst * interval
    if allowed_at > now:
        raise RateLimited(retry_after=math.ceil(allowed_at - now))
    _buckets[key] = new_tat
    if len(_buckets) > _PRUNE_AT:
        _prune(now)


def _prune(now: float) -> None:
    for key in [key for key, tat in _buckets.items() if tat <= now]:
        del _buckets[key]


def local_rate_limits_reset() -> None:
    """Forget every bucket (tests)."""
    _buckets.clear()
