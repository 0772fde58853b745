"""Rate limits: GCRA arithmetic (property-based), the in-process limiter, and the Redis limiter on a real server.

The Redis tests need the server on 127.0.0.1:6379 (override with BARTIZAN_TEST_REDIS_URL); they fail, never skip,
when it is absent, since CI starts it (.ci/services.sh). Every test uses its own key prefix and deletes its keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.gateway.config import RateLimit
from bartizan.gateway.ratelimit import (
    MAX_SPAN_US,
    LocalRateLimiter,
    RateDecision,
    RedisRateLimiter,
    build_rate_limiter,
    gcra_step,
    interval_us,
)

REDIS_URL = os.environ.get("BARTIZAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------- GCRA arithmetic


_limits = st.builds(
    RateLimit,
    requests_per_minute=st.one_of(
        st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False),
        st.sampled_from([1.0, 60.0, 179.0, 600.0, 7.0 / 3.0]),
    ),
    burst=st.integers(min_value=1, max_value=50),
)
_gaps_us = st.lists(st.integers(min_value=0, max_value=30_000_000), min_size=1, max_size=60)
START_US = 1_700_000_000_000_000  # microseconds since the epoch, as Redis TIME gives


@settings(max_examples=300, deadline=None)
@given(_limits, _gaps_us)
def test_gcra_never_exceeds_burst_plus_rate(limit: RateLimit, gaps: list[int]) -> None:
    interval = interval_us(limit)
    tat: int | None = None
    now = START_US
    allowed_at: list[int] = []
    for gap in gaps:
        now += gap
        new_tat, decision = gcra_step(tat, now, interval, limit.burst)
        assert 0 <= decision.remaining < limit.burst
        if decision.allowed:
            assert new_tat is not None and decision.retry_after_s == 0
            tat = new_tat
            allowed_at.append(now)
        else:
            assert new_tat is None and decision.remaining == 0
            assert 0 < decision.retry_after_s * 1_000_000 <= interval
    # In any window [a, b] at most burst + (b - a) / interval requests get through.
    for i in range(len(allowed_at)):
        for j in range(i, len(allowed_at)):
            assert (j - i + 1 - limit.burst) * interval <= allowed_at[j] - allowed_at[i]


@settings(max_examples=300, deadline=None)
@given(_limits, st.lists(st.integers(min_value=0, max_value=5_000_000), max_size=20))
def test_gcra_remaining_and_retry_after_are_exact(limit: RateLimit, gaps: list[int]) -> None:
    interval = interval_us(limit)
    tat: int | None = None
    now = START_US
    for gap in gaps:  # some arbitrary history
        now += gap
        new_tat, _ = gcra_step(tat, now, interval, limit.burst)
        tat = new_tat if new_tat is not None else tat
    new_tat, first = gcra_step(tat, now, interval, limit.burst)
    if not first.allowed:
        # Waiting exactly retry_after is enough, and a microsecond less is not.
        wait = round(first.retry_after_s * 1_000_000)
        assert gcra_step(tat, now + wait, interval, limit.burst)[1].allowed
        assert not gcra_step(tat, now + wait - 1, interval, limit.burst)[1].allowed
        return
    # `remaining` more requests at the same instant are allowed, and the one after that is not.
    tat = new_tat
    for _ in range(first.remaining):
        tat, d = gcra_step(tat, now, interval, limit.burst)
        assert d.allowed
    assert not gcra_step(tat, now, interval, limit.burst)[1].allowed


@given(_limits)
def test_fresh_bucket_allows_full_burst(limit: RateLimit) -> None:
    interval = interval_us(limit)
    tat, d = gcra_step(None, START_US, interval, limit.burst)
    assert d == RateDecision(True, 0.0, limit.burst - 1)
    for _ in range(limit.burst - 1):
        tat, d = gcra_step(tat, START_US, interval, limit.burst)
        assert d.allowed
    assert not gcra_step(tat, START_US, interval, limit.burst)[1].allowed
    assert 1 <= interval and limit.burst * interval <= MAX_SPAN_US


# ---------------------------------------------------------------- local limiter


@pytest.mark.anyio
async def test_local_burst_then_refill() -> None:
    clock = FakeClock()
    lim = LocalRateLimiter(clock=clock)
    limit = RateLimit(requests_per_minute=60, burst=3)  # one per second
    got = [await lim.hit("k", limit) for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert [d.remaining for d in got] == [2, 1, 0, 0]
    assert got[3].retry_after_s == pytest.approx(1.0)
    clock.t += 0.5
    assert not (await lim.hit("k", limit)).allowed
    clock.t += 0.5
    assert await lim.hit("k", limit) == RateDecision(True, 0.0, 0)
    assert (await lim.hit("other", limit)).remaining == 2  # buckets are independent
    clock.t += 10
    assert (await lim.hit("k", limit)).remaining == 2  # a long-idle bucket is full again (not over-full)
    assert lim.healthy and await lim.ping()
    await lim.close()
    assert len(lim) == 0


@pytest.mark.anyio
async def test_local_concurrent_hits_are_counted_once_each() -> None:
    lim = LocalRateLimiter(clock=FakeClock())
    limit = RateLimit(requests_per_minute=1, burst=25)
    results = await asyncio.gather(*(lim.hit("k", limit) for _ in range(100)))
    assert sum(d.allowed for d in results) == 25


@pytest.mark.anyio
async def test_local_sweeps_idle_buckets() -> None:
    clock = FakeClock()
    lim = LocalRateLimiter(clock=clock, sweep_at=8)
    limit = RateLimit(requests_per_minute=600, burst=1)  # full again 0.1 s after a hit
    for i in range(7):
        await lim.hit(f"b{i}", limit)
    assert len(lim) == 7
    clock.t += 1
    await lim.hit("new", limit)  # the 8th bucket triggers a sweep of the 7 full ones
    assert len(lim) == 1


def test_build_rate_limiter_picks_backend() -> None:
    assert isinstance(build_rate_limiter(None), LocalRateLimiter)
    assert isinstance(build_rate_limiter(""), LocalRateLimiter)
    lim = build_rate_limiter(REDIS_URL)
    assert isinstance(lim, RedisRateLimiter)
    asyncio.run(lim.close())


# ---------------------------------------------------------------- Redis limiter (real server)


@pytest.fixture(scope="module")
def redis_sync() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is required at {REDIS_URL} (start it with .ci/services.sh or set BARTIZAN_TEST_REDIS_URL): {exc}"
        )
    yield client
    client.close()


@pytest.fixture
def prefix(redis_sync: redis.Redis) -> Iterator[str]:
    p = f"bartizan:test:rl:{uuid.uuid4().hex}:"
    yield p
    keys = list(redis_sync.scan_iter(match=p + "*"))
    if keys:
        redis_sync.delete(*keys)


@contextlib.asynccontextmanager
async def limiters(prefix: str, n: int = 2, url: str = REDIS_URL) -> AsyncIterator[list[RedisRateLimiter]]:
    lims = [RedisRateLimiter(url, prefix=prefix) for _ in range(n)]
    try:
        yield lims
    finally:
        for lim in lims:
            await lim.close()


@pytest.mark.anyio
async def test_two_replicas_share_one_limit(prefix: str, redis_sync: redis.Redis) -> None:
    limit = RateLimit(requests_per_minute=1, burst=10)  # no refill within the test
    async with limiters(prefix) as (a, b):
        results = await asyncio.gather(*(lim.hit("tenant:acme", limit) for lim in (a, b) for _ in range(15)))
        assert sum(d.allowed for d in results) == 10
        assert sorted(d.remaining for d in results if d.allowed) == list(range(10))
        denied = [d for d in results if not d.allowed]
        assert all(59 < d.retry_after_s <= 60 and d.remaining == 0 for d in denied)
        assert (await b.hit("tenant:other", limit)).allowed  # other buckets are untouched
        assert a.healthy and b.healthy
    # State lives under the prefix and expires when the bucket would be full again (10 tokens x 60 s).
    ttl_ms = redis_sync.pttl(prefix + "tenant:acme")
    assert isinstance(ttl_ms, int) and 590_000 < ttl_ms <= 600_000


@pytest.mark.anyio
async def test_concurrency_beyond_the_pool_queues_instead_of_failing_closed(prefix: str) -> None:
    lim = RedisRateLimiter(REDIS_URL, prefix=prefix, max_connections=4)
    try:
        limit = RateLimit(requests_per_minute=1, burst=300)
        results = await asyncio.gather(*(lim.hit("k", limit) for _ in range(400)))
        assert sum(d.allowed for d in results) == 300 and lim.healthy
        assert all(d.retry_after_s > 1 for d in results if not d.allowed)  # real denials, not fail-closed ones
    finally:
        await lim.close()


@pytest.mark.anyio
async def test_redis_refills_at_the_configured_rate(prefix: str) -> None:
    limit = RateLimit(requests_per_minute=1200, burst=1)  # one per 50 ms
    async with limiters(prefix, n=2) as (a, b):
        assert (await a.hit("k", limit)).allowed
        d = await b.hit("k", limit)
        assert not d.allowed and 0 < d.retry_after_s <= 0.05
        await asyncio.sleep(d.retry_after_s + 0.005)
        assert (await b.hit("k", limit)).allowed


@pytest.mark.anyio
async def test_redis_matches_local_arithmetic(prefix: str) -> None:
    limit = RateLimit(requests_per_minute=2, burst=4)
    local = LocalRateLimiter(clock=FakeClock())
    async with limiters(prefix, n=1) as (r,):
        for _ in range(6):
            want, got = await local.hit("k", limit), await r.hit("k", limit)
            assert (got.allowed, got.remaining) == (want.allowed, want.remaining)
            assert got.retry_after_s == pytest.approx(want.retry_after_s, abs=0.5)


@pytest.mark.anyio
async def test_redis_unreachable_fails_closed_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bartizan.gateway.ratelimit")
    lim = RedisRateLimiter("redis://:hunter2-secret@127.0.0.1:1/0", timeout_s=0.5)
    try:
        for _ in range(3):
            assert await lim.hit("k", RateLimit()) == RateDecision(False, 1.0, 0)
        assert lim.healthy is False
        assert not await lim.ping()
    finally:
        await lim.close()
    records = [r for r in caplog.records if r.name == "bartizan.gateway.ratelimit"]
    assert len(records) == 1 and "failing closed" in records[0].getMessage()
    assert "hunter2" not in caplog.text


class CuttableProxy:
    """A TCP proxy in front of the real Redis that a test can cut and restore, to stage an outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.mark.anyio
async def test_redis_outage_and_recovery_are_observable(prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bartizan.gateway.ratelimit")
    target = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs.get("port", 6379)
    proxy = CuttableProxy(int(target))
    await proxy.start()
    limit = RateLimit(requests_per_minute=6000, burst=100)
    async with limiters(prefix, n=1, url=f"redis://127.0.0.1:{proxy.port}/0") as (lim,):
        assert (await lim.hit("k", limit)).allowed and lim.healthy
        await proxy.cut()
        assert await lim.hit("k", limit) == RateDecision(False, 1.0, 0)
        assert not lim.healthy
        await proxy.start()  # same port
        for _ in range(20):  # the client reconnects on the next command
            if (await lim.hit("k", limit)).allowed:
                break
            await asyncio.sleep(0.02)
        assert lim.healthy and await lim.ping()
        await proxy.cut()
    messages = [r.getMessage() for r in caplog.records if r.name == "bartizan.gateway.ratelimit"]
    assert len(messages) == 2 and "failing closed" in messages[0] and "reachable again" in messages[1]


def test_limits_with_awkward_rates(redis_sync: redis.Redis) -> None:
    """Intervals far below a microsecond or far above an hour survive the trip through Lua numbers."""
    p = f"bartizan:test:rl:{uuid.uuid4().hex}:"

    async def run() -> list[RateDecision]:
        async with limiters(p, n=1) as (lim,):
            fast = RateLimit(requests_per_minute=1e12, burst=1)
            slow = RateLimit(requests_per_minute=1e-3, burst=2)
            return [
                await lim.hit("f", fast),
                await lim.hit("s", slow),
                await lim.hit("s", slow),
                await lim.hit("s", slow),
            ]

    try:
        fast, s1, s2, s3 = asyncio.run(run())
        assert fast.allowed and s1.allowed and s2.allowed and not s3.allowed
        assert math.isclose(s3.retry_after_s, 60_000.0, rel_tol=1e-6)
    finally:
        keys = list(redis_sync.scan_iter(match=p + "*"))
        if keys:
            redis_sync.delete(*keys)
