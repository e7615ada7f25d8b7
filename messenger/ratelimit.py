"""The rate-limit algorithm, and the client address that per-address limits count by.

Both limiters use it: `accounts.ratelimit` (buckets in the database, across processes) and
`realtime.ratelimit` (buckets in a dict of one process, for socket frames). They differ in
where the bucket's state lives, never in how a request is judged.

The algorithm is GCRA: a limit "N/S" (settings.RATE_LIMITS) allows a burst of N requests and
refills one every S/N seconds. A bucket is one number, the theoretical arrival time (`tat`) of
the next request; a `tat` at or below the current time is a full bucket, so a missing bucket
is `tat = now`.
"""

import ipaddress
import math

from messenger.errors import RateLimited


def parse_limit(spec: str) -> tuple[int, float]:
    """Parse a limit "N/S" into (burst N, period S in seconds)."""
    count, seconds = spec.split("/", 1)
    return int(count), float(seconds)


def emission_interval(spec: str) -> float:
    """The seconds one request of limit `spec` takes from its bucket (S/N)."""
    burst, period = parse_limit(spec)
    return period / burst


def gcra_take(spec: str, *, tat: float, now: float) -> float:
    """Take one request at time `now` from a bucket of limit `spec` whose theoretical arrival
    time is `tat`: the bucket's new `tat`, or RateLimited with the seconds to wait when it
    is empty (a denied request does not consume)."""
    burst, period = parse_limit(spec)
    interval = period / burst
    # GCRA's test `tat + interval - burst * interval > now`, rearranged so that a full bucket
    # compares exact zeros: written that way, `(now + 60) - 60 > now` can be true by one unit
    # of rounding and refuse the first request of a "1/60" limit.
    tat = max(tat, now)
    wait = tat - now - (burst - 1) * interval
    if wait > 0:
        raise RateLimited(retry_after=math.ceil(wait))
    return tat + interval


def client_address(request) -> str:
    """The client's address as a rate-limit subject. An IPv6 client usually holds a whole /64
    (and privacy extensions change the low half daily), so IPv6 addresses count per /64;
    IPv4 (and IPv4-mapped IPv6) per address. Behind a reverse proxy, messenger.proxy has
    set REMOTE_ADDR from the trusted proxy's headers (daphne runs without --proxy-headers).
    No request (a call from code, not from the network) is the subject "local". Every
    per-address limit (sign-in, registration, refresh) counts through this."""
    raw = request.META.get("REMOTE_ADDR") if request is not None else "local"
    try:
        address = ipaddress.ip_address(raw or "")
    except ValueError:
        return raw or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
