"""Rate limits as atomic token buckets in the database.

DRF's throttles keep their counters in the cache with a read-modify-write that races (two
processes read the same count and both pass) and, on the default local-memory cache, per
process. Login guessing and prekey draining must be limited across every server process, so
each bucket is one database row updated under a row lock (`select_for_update`; SQLite runs
IMMEDIATE transactions, which serialise writers).

The algorithm is GCRA: a limit "N/S" allows a burst of N requests and refills one every S/N
seconds. Only the theoretical arrival time (`tat`) of the next request is stored.
"""

import hashlib
import math
import time

from django.conf import settings
from django.db import transaction

from accounts.models import RateLimitBucket
from messenger.errors import RateLimited


def parse_limit(spec: str) -> tuple[int, float]:
    count, seconds = spec.split("/", 1)
    return int(count), float(seconds)


def _bucket_key(scope: str, subject: str) -> str:
    return hashlib.sha256(f"{scope}\0{subject}".encode()).hexdigest()


def rate_limit_hit(scope: str, subject: str, *, now: float | None = None) -> None:
    """Count one request of `subject` (an IP, an email, a user id, a pair...) against the
    limit named `scope` in settings.RATE_LIMITS; raise RateLimited with the seconds to wait
    when the bucket is empty. Denied requests do not consume. Call it outside any other
    transaction, before the work it guards."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    burst, period = parse_limit(settings.RATE_LIMITS[scope])
    interval = period / burst
    key = _bucket_key(scope, str(subject))

    # Make sure the row exists first, outside the locking transaction: INSERT IGNORE (or
    # INSERT OR IGNORE) never fails and never waits for long. Inserting inside the locking
    # transaction instead deadlocks on MariaDB when two first requests race (the duplicate
    # key error leaves a shared lock that both then try to upgrade). tat=0 is a full bucket.
    RateLimitBucket.objects.bulk_create([RateLimitBucket(key=key, tat=0.0)], ignore_conflicts=True)
    with transaction.atomic():
        bucket = RateLimitBucket.objects.select_for_update().get(key=key)
        # The clock is read once the row is locked: a request that read it earlier but got
        # the lock later would otherwise be judged against a newer bucket with an older time.
        now = time.time() if now is None else now
        new_tat = max(bucket.tat, now) + interval
        allowed_at = new_tat - burst * interval
        if allowed_at > now:
            raise RateLimited(retry_after=math.ceil(allowed_at - now))
        bucket.tat = new_tat
        bucket.save(update_fields=["tat"])


def rate_limit_purge(*, now: float | None = None) -> int:
    """Delete buckets that are full again (they behave exactly like a missing row)."""
    now = time.time() if now is None else now
    deleted, _ = RateLimitBucket.objects.filter(tat__lte=now).delete()
    return deleted
