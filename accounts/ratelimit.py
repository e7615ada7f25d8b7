"""Rate limits as atomic token buckets in the database.

DRF's throttles keep their counters in the cache with a read-modify-write that races (two
processes read the same count and both pass) and, on the default local-memory cache, per
process. Login guessing and prekey draining must be limited across every server process, so
each bucket is one database row updated under a row lock (`select_for_update`; SQLite runs
IMMEDIATE transactions, which serialise writers).

The algorithm is GCRA (messenger.ratelimit, shared with the socket frames' in-process limiter):
only the theoretical arrival time (`tat`) of the next request is stored.
"""

import hashlib
import time

from django.conf import settings
from django.db import transaction

from accounts.models import RateLimitBucket
from messenger.ratelimit import emission_interval, gcra_take


def _bucket_key(scope: str, subject: str) -> str:
    return hashlib.sha256(f"{scope}\0{subject}".encode()).hexdigest()


def rate_limit_hit(scope: str, subject: str, *, now: float | None = None) -> None:
    """Count one request of `subject` (an IP, an email, a user id, a pair...) against the
    limit named `scope` in settings.RATE_LIMITS; raise RateLimited with the seconds to wait
    when the bucket is empty. Denied requests do not consume. Call it outside any other
    transaction, before the work it guards."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    spec = settings.RATE_LIMITS[scope]
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
        bucket.tat = gcra_take(spec, tat=bucket.tat, now=now)
        bucket.save(update_fields=["tat"])


def rate_limit_refund(scope: str, subject: str) -> None:
    """Give back the token one earlier `rate_limit_hit` took (the request turned out not to
    be one the limit is about, e.g. a login that succeeded)."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    with transaction.atomic():
        bucket = RateLimitBucket.objects.select_for_update().filter(key=_bucket_key(scope, str(subject))).first()
        if bucket is not None:
            # A tat below the current time is a full bucket, so going below it is harmless.
            bucket.tat -= emission_interval(settings.RATE_LIMITS[scope])
            bucket.save(update_fields=["tat"])


def rate_limit_reset(scope: str, subject: str) -> None:
    """Refill the bucket completely."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    RateLimitBucket.objects.filter(key=_bucket_key(scope, str(subject))).delete()


def rate_limit_mark(scope: str, subject: str, *, seconds: float, now: float | None = None) -> None:
    """Remember a fact about `subject` for `seconds` (stored like a bucket: hashed key, the
    expiry in `tat`, purged with the full buckets)."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    key = _bucket_key(scope, str(subject))
    until = (time.time() if now is None else now) + seconds
    if not RateLimitBucket.objects.filter(key=key).update(tat=until):
        RateLimitBucket.objects.bulk_create([RateLimitBucket(key=key, tat=until)], ignore_conflicts=True)


def rate_limit_marked(scope: str, subject: str, *, now: float | None = None) -> bool:
    """Whether `rate_limit_mark(scope, subject)` was called and has not expired."""
    now = time.time() if now is None else now
    return RateLimitBucket.objects.filter(key=_bucket_key(scope, str(subject)), tat__gt=now).exists()


def rate_limit_purge(*, now: float | None = None) -> int:
    """Delete buckets that are full again (they behave exactly like a missing row)."""
    now = time.time() if now is None else now
    deleted, _ = RateLimitBucket.objects.filter(tat__lte=now).delete()
    return deleted
