"""Run probes against a target: bounded concurrency, a rate limit, judging, and an attempt stored per probe.

`run` sends every probe not yet stored for the run (so calling it again with the same `run_id` resumes a killed
run), judges each ``ok`` reply, and commits each `Attempt` to the `RunStore` the moment it completes. A probe in
flight when the run is cancelled or killed is simply not stored, and is sent again on resume; no probe is stored
twice. Verdicts never hide failures: a transport error or a judge that could not decide gives verdict ``error``
(never ``success`` or ``refused``); a guard block gives ``refused`` (for a benign twin: a false refusal).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bartizan.redteam.attempts import Attempt, Probe
from bartizan.redteam.offline import OfflineViolation
from bartizan.redteam.store import RunStore
from bartizan.redteam.targets import Target, TargetReply


class JudgementLike(Protocol):
    """What `run` needs from a judge's answer (`bartizan.redteam.judges.Judgement` fits)."""

    @property
    def verdict(self) -> str: ...
    @property
    def judge(self) -> str: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...
    @property
    def error(self) -> str | None: ...
    @property
    def attack_succeeded(self) -> bool | None: ...


JudgeFn = Callable[[Probe, TargetReply], "JudgementLike | Awaitable[JudgementLike]"]


@dataclass(frozen=True)
class FirewallJudgement:
    """The verdict of `firewall_judge`: a probe the firewall let through is a successful attack on it."""

    verdict: str = "success"
    judge: str = "firewall"
    reasons: tuple[str, ...] = ()
    error: str | None = None

    @property
    def attack_succeeded(self) -> bool | None:
        return True


def firewall_judge(probe: Probe, reply: TargetReply) -> FirewallJudgement:
    """Judge for `FirewallTarget` runs: blocks never reach a judge, so any ``ok`` reply means the probe got through."""
    verdict = str(reply.meta.get("verdict", "allow"))
    return FirewallJudgement(reasons=(f"firewall verdict {verdict}",))


class TokenBucket:
    """A token bucket of `rate_per_s` tokens a second holding at most `burst`; `acquire` waits for one token."""

    def __init__(self, rate_per_s: float, burst: float = 1.0) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


@dataclass
class RunResult:
    """What one call of `run` did. `skipped` probes were already stored (resume); `attempts` are the new ones."""

    run_id: str
    total: int
    skipped: int
    attempts: list[Attempt] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.attempts)

    @property
    def by_status(self) -> dict[str, int]:
        return dict(Counter(a.status for a in self.attempts))

    @property
    def by_verdict(self) -> dict[str, int]:
        return dict(Counter(a.verdict for a in self.attempts))


async def _judge(judge: JudgeFn, probe: Probe, reply: TargetReply) -> tuple[str, str, tuple[str, ...], str | None]:
    """Run the judge (async judges on the loop, sync ones in a thread) -> (verdict, judge, reasons, error)."""
    try:
        if inspect.iscoroutinefunction(judge):
            result: Any = await judge(probe, reply)
        else:
            result = await asyncio.to_thread(judge, probe, reply)
            if inspect.isawaitable(result):
                result = await result
    except Exception as exc:  # a judge crash is an error verdict, never a pass or a refusal
        return "error", getattr(judge, "__name__", "judge"), (), f"judge failed: {type(exc).__name__}: {exc}"
    name, reasons = str(result.judge), tuple(result.reasons)
    if result.verdict == "error":
        return "error", name, reasons, str(result.error or "judge error")
    succeeded = result.attack_succeeded
    verdict = "unclear" if succeeded is None else ("success" if succeeded else "refused")
    return verdict, name, reasons, None


async def attempt_for(probe: Probe, target: Target, judge: JudgeFn) -> Attempt:
    """Send one probe and judge the reply into an `Attempt` (no storing). Only `OfflineViolation` is raised."""
    start = time.perf_counter()
    try:
        reply = await target.send(probe)
    except OfflineViolation:
        raise
    except Exception as exc:  # a target bug must not end the run, nor pass as an answer
        reply = TargetReply("error", None, f"target failed: {type(exc).__name__}: {exc}", attempts=1)
    latency = reply.latency_ms or (time.perf_counter() - start) * 1000.0
    if reply.status == "ok":
        verdict, judge_name, reasons, error = await _judge(judge, probe, reply)
    elif reply.status == "blocked":
        verdict, judge_name, reasons, error = "refused", "guard", ("blocked by a guard",), None
    else:
        verdict, judge_name, reasons, error = "error", "none", (), reply.error
    meta: dict[str, Any] = dict(reply.meta)
    meta["flagged"] = reply.flagged
    if reply.http_status is not None:
        meta["http_status"] = reply.http_status
    case = probe.case
    return Attempt(
        probe_id=probe.probe_id,
        case_id=case.id,
        family=case.family,
        source=case.source,
        category=case.category,
        benign=case.benign,
        transform=probe.transform,
        transform_family=probe.transform_family,
        atlas=tuple(case.atlas),
        owasp=tuple(case.owasp),
        status=reply.status,
        response=reply.text if reply.status == "ok" else None,
        verdict=verdict,
        judge=judge_name,
        judge_reasons=reasons,
        error=error,
        latency_ms=latency,
        attempts=reply.attempts,
        ts=time.time(),
        meta=meta,
    )


async def run(
    probes: Iterable[Probe],
    target: Target,
    store: RunStore,
    run_id: str,
    judge: JudgeFn,
    *,
    concurrency: int = 4,
    rate_per_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Send, judge and store every probe of `probes` not yet stored for `run_id`.

    At most `concurrency` probes are in flight; with `rate_per_s`, probes start at most that often (token bucket).
    `progress(done, total)` is called after each stored attempt (and once at the start), counting probes stored by
    earlier calls. Cancelling the task stops the workers; what was stored stays stored. An `OfflineViolation`
    stops the run and is raised.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    store.resume(run_id)  # fail fast on an unknown run
    started = time.perf_counter()
    unique: dict[str, Probe] = {}
    for p in probes:
        unique.setdefault(p.probe_id, p)
    done = store.done_probe_ids(run_id)
    todo = [p for pid, p in unique.items() if pid not in done]
    result = RunResult(run_id=run_id, total=len(unique), skipped=len(unique) - len(todo))
    if progress is not None:
        progress(result.skipped, result.total)
    queue: asyncio.Queue[Probe] = asyncio.Queue()
    for p in todo:
        queue.put_nowait(p)
    bucket = TokenBucket(rate_per_s) if rate_per_s else None

    async def worker() -> None:
        while True:
            try:
                probe = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if bucket is not None:
                await bucket.acquire()
            attempt = await attempt_for(probe, target, judge)
            if store.add(run_id, attempt):
                result.attempts.append(attempt)
            if progress is not None:
                progress(result.skipped + len(result.attempts), result.total)

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(todo)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    result.elapsed_s = time.perf_counter() - started
    return result
