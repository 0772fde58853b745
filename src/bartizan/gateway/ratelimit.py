"""Per-key / per-tenant rate limits: in-process, or shared across replicas through Redis.

Both limiters implement the same algorithm, GCRA (the generic cell rate algorithm), which is a token bucket
stored as a single timestamp: the "theoretical arrival time" (TAT) of the next request. With an emission
interval T = 60 s / requests_per_minute and a bucket of `burst` tokens, a request at time `now` is allowed
when `max(TAT, now) + T - burst * T <= now`, and then TAT becomes `max(TAT, now) + T`. A bucket whose TAT
lies in the past is the same as a full, fresh bucket, so state can expire at TAT (Redis key expiry, local
sweeps) without changing any decision.

The Redis limiter runs the step as one Lua script (atomic) using Redis' own clock (`TIME`), so replicas with
skewed clocks still agree. When Redis cannot be reached it fails closed: requests are denied with
`retry_after_s = 1`, `healthy` turns False and the outage is logged once (and its recovery once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bartizan.gateway.config import RateLimit

log = logging.getLogger(__name__)

REDIS_KEY_PREFIX = "bartizan:rl:"
FAIL_CLOSED_RETRY_S = 1.0
MAX_SPAN_US = 10**15


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: float  # 0 when allowed; else how long until one request would be allowed
    remaining: int  # requests still allowed right now (tokens left in the bucket)


class RateLimiter(Protocol):
    healthy: bool

    async def hit(self, bucket: str, limit: RateLimit) -> RateDecision: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def interval_us(limit: RateLimit) -> int:
    """The emission interval in whole microseconds (at least 1: a bucket can pass at most 10^6 requests/s).

    Integer microseconds keep every step exact, locally and in Lua (doubles hold integers up to 2^53, and
    microseconds since the epoch stay far below that), so "burst requests at one instant" is exactly burst.
    Absurdly slow limits are capped so that burst x interval stays within ~31 years (and below 2^53).
    """
    return max(1, min(round(60_000_000 / limit.requests_per_minute), MAX_SPAN_US // limit.burst))


def gcra_step(tat: int | None, now: int, interval: int, burst: int) -> tuple[int | None, RateDecision]:
    """One GCRA decision, in integer microseconds. Returns (the new TAT to store, or None when denied and the
    old TAT stays; the decision). The Redis script mirrors this function line by line."""
    base = now if tat is None or tat < now else tat
    new_tat = base + interval
    allow_at = new_tat - burst * interval
    if allow_at > now:
        return None, RateDecision(False, (allow_at - now) / 1_000_000, 0)
    return new_tat, RateDecision(True, 0.0, min((now - allow_at) // interval, burst - 1))


class LocalRateLimiter:
    """GCRA buckets in a dict: for a single replica. The step never awaits, so it is atomic on the event
    loop; a lock makes it safe from worker threads too. Expired buckets are swept, amortised O(1) per hit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sweep_at: int = 1024) -> None:
        self._clock = clock
        self._tat: dict[str, int] = {}
        self._lock = threading.Lock()
        self._min_sweep = sweep_at
        self._sweep_at = sweep_at
        self.healthy = True

    def __len__(self) -> int:
        return len(self._tat)

    def hit_sync(self, bucket: str, limit: RateLimit) -> RateDecision:
        with self._lock:
            now = round(self._clock() * 1_000_000)
            new_tat, decision = gcra_step(self._tat.get(bucket), now, interval_us(limit), limit.burst)
            if new_tat is not None:
                self._tat[bucket] = new_tat
                if len(self._tat) >= self._sweep_at:
                    self._sweep(now)
            return decision

    def _sweep(self, now: int) -> None:
        for bucket in [b for b, t in self._tat.items() if t <= now]:
            del self._tat[bucket]
        self._sweep_at = max(self._min_sweep, 2 * len(self._tat))

    async def hit(self, bucket: str, limit: RateLimit) -> RateDecision:
        return self.hit_sync(bucket, limit)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        with self._lock:
            self._tat.clear()


# KEYS[1] bucket key; ARGV[1] emission interval (integer µs), ARGV[2] burst. Returns {allowed, retry_after_µs,
# remaining}. Mirrors gcra_step; all values are integers below 2^53, so Lua's doubles hold them exactly, and
# string.format("%.0f") writes every digit (tostring() would round to 14 significant digits).
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
local base = now
if tat and tat > now then base = tat end
local new_tat = base + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, allow_at - now, 0}
end
local remaining = math.floor((now - allow_at) / interval)
if remaining > burst - 1 then remaining = burst - 1 end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, 0, remaining}
"""


class RedisRateLimiter:
    """GCRA buckets in Redis (`bartizan:rl:<bucket>`, expiring when full again), shared by every replica."""

    def __init__(
        self, url: str, *, prefix: str = REDIS_KEY_PREFIX, timeout_s: float = 1.0, max_connections: int = 64
    ) -> None:
        import redis.asyncio as aioredis  # imported here: only deployments with a Redis URL need it

        # A blocking pool: a burst of concurrent requests queues for a connection (up to timeout_s) instead of
        # failing with MaxConnectionsError, which would fail closed and deny healthy traffic.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._redis = aioredis.Redis.from_pool(pool)
        self._script = self._redis.register_script(_GCRA_LUA)
        self._prefix = prefix
        self.healthy = True

    async def hit(self, bucket: str, limit: RateLimit) -> RateDecision:
        from redis.exceptions import RedisError

        try:
            res = await self._script(keys=[self._prefix + bucket], args=[interval_us(limit), limit.burst])
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            self._mark(False, exc)
            return RateDecision(False, FAIL_CLOSED_RETRY_S, 0)
        self._mark(True)
        allowed, retry_us, remaining = (int(x) for x in res)
        return RateDecision(bool(allowed), retry_us / 1_000_000, remaining)

    def _mark(self, ok: bool, exc: BaseException | None = None) -> None:
        if ok and not self.healthy:
            log.warning("rate limiter: Redis reachable again; enforcing shared limits")
        elif not ok and self.healthy:
            # The exception type only: messages can carry the URL, and the URL can carry a password.
            log.error("rate limiter: Redis unavailable (%s); failing closed", type(exc).__name__)
        self.healthy = ok

    async def ping(self) -> bool:
        """Checks Redis now (for readiness probes) and updates `healthy`."""
        from redis.exceptions import RedisError

        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            self._mark(False, exc)
        else:
            self._mark(True)
        return self.healthy

    async def close(self) -> None:
        await self._redis.aclose()


def build_rate_limiter(redis_url: str | None) -> RateLimiter:
    """Redis-backed when a URL is configured (shared across replicas), else in-process."""
    if redis_url:
        return RedisRateLimiter(redis_url)
    return LocalRateLimiter()
