"""The cap on open chat sockets per user (CHAT_MAX_SOCKETS_PER_USER), across server processes.

A socket costs the server memory and a share of the event loop whether or not it carries
anything, so one signed-in user must not open thousands. The count is what a user expects:
all of the user's sockets, on every process.

- With `REDIS_URL` (several processes) each socket is an entry in a Redis sorted set per user,
  scored with the end of its lease. Taking a place is one Lua script (drop expired entries,
  count, add: atomic in Redis, so two processes cannot both take the last place), scored with
  Redis' own clock, so the processes' clocks do not matter. Each process renews the leases
  of its own sockets every LEASE_SECONDS / 3 in one script call, and removes an entry when
  its socket ends. A process that is killed renews nothing: its entries expire within
  LEASE_SECONDS and the places are free again, without anyone cleaning up.
- Without Redis there is one process: a dict in it holds the count.

A place is released when the consumer ends for any reason (chat.consumers wraps its whole
life), so an entry outlives its socket only by the lease of a killed process.
"""

import asyncio
import logging
import weakref

from django.conf import settings

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60
KEY_PREFIX = "messenger:chat-sockets:"

# KEYS[1] the user's set; ARGV: member, cap, lease. 1 when the place was taken.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS: users' sets; ARGV[1] lease, ARGV[i + 1] the member in KEYS[i].
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[i + 1])
  redis.call('EXPIRE', key, lease)
end
return #KEYS
"""


class _LocalCount:
    """One process: the sockets of each user, in a dict."""

    def __init__(self):
        self._open: dict[int, set[str]] = {}

    async def take(self, user_id: int, member: str, cap: int) -> bool:
        members = self._open.setdefault(user_id, set())
        if len(members) >= cap:
            return False
        members.add(member)
        return True

    async def release(self, user_id: int, member: str) -> None:
        members = self._open.get(user_id)
        if members is not None:
            members.discard(member)
            if not members:
                del self._open[user_id]


class _RedisCount:
    """Several processes: leased entries in Redis (see the module docstring)."""

    def __init__(self, url: str):
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(url)
        self._take = self._redis.register_script(_TAKE)
        self._renew = self._redis.register_script(_RENEW)
        self._held: dict[str, int] = {}  # member -> user id, the sockets of this process
        self._renewer: asyncio.Task | None = None

    async def take(self, user_id: int, member: str, cap: int) -> bool:
        if not await self._take(keys=[KEY_PREFIX + str(user_id)], args=[member, cap, LEASE_SECONDS]):
            return False
        self._held[member] = user_id
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.ensure_future(self._renew_while_held())
        return True

    async def release(self, user_id: int, member: str) -> None:
        # Forgotten here first (no renewal from now on), so a failed ZREM costs one lease.
        if self._held.pop(member, None) is None:
            return
        try:
            await self._redis.zrem(KEY_PREFIX + str(user_id), member)
        except Exception as exc:
            logger.warning("chat socket place not released (expires with its lease) error=%s", type(exc).__name__)

    async def _renew_while_held(self) -> None:
        while self._held:
            await asyncio.sleep(LEASE_SECONDS / 3)
            held = list(self._held.items())
            if not held:
                return
            try:
                await self._renew(
                    keys=[KEY_PREFIX + str(user_id) for _, user_id in held],
                    args=[LEASE_SECONDS, *(member for member, _ in held)],
                )
            except Exception as exc:
                # Redis is away: the channel layer fails too. Try again next round.
                logger.warning("chat socket leases not renewed count=%s error=%s", len(held), type(exc).__name__)


_counts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LocalCount | _RedisCount]" = weakref.WeakKeyDictionary()


def _count() -> "_LocalCount | _RedisCount":
    loop = asyncio.get_running_loop()
    found = _counts.get(loop)
    if found is None:
        found = _counts[loop] = _RedisCount(settings.REDIS_URL) if settings.REDIS_URL else _LocalCount()
    return found


async def socket_place_take(*, user_id: int, member: str) -> bool:
    """Take one of the user's CHAT_MAX_SOCKETS_PER_USER places for the socket `member` (its
    channel name); False when all are taken. Always True when the cap is 0 (off)."""
    cap = settings.CHAT_MAX_SOCKETS_PER_USER
    if cap <= 0:
        return True
    return await _count().take(user_id, member, cap)


async def socket_place_release(*, user_id: int, member: str) -> None:
    """Give the place back (idempotent; a no-op for a place never taken)."""
    count = _counts.get(asyncio.get_running_loop())
    if count is not None:
        await count.release(user_id, member)
