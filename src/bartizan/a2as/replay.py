"""Replay cache for signed requests (spec §3.3): remembers each accepted signature until it could no longer pass.

A signed request stays acceptable until ``created + max_age_s`` (or its ``expires``), so an entry must be kept
at least that long, counted from the signature's own ``created`` rather than from the moment it was first seen:
a request signed slightly in the future (within the clock skew) outlives a "seen + max_age" entry and could be
replayed once the entry had gone. Callers therefore pass ``until`` (the last instant at which the request would
still verify); without it, an entry lives ``max_age_s`` from now.

The cache fails closed: when it holds ``max_entries`` live entries, a new key is refused (``"full"``) instead of
evicting a live one, because evicting would reopen a replay window. Only validly signed requests reach the
cache, so filling it takes ``max_entries`` genuine signatures within one max-age window.

The cache is per process. Several gateway workers need a shared store (for example Redis ``SET NX EX``) with
the same semantics.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Hashable
from typing import Literal

ReplayStatus = Literal["new", "replay", "full"]


class ReplayCache:
    """Set of recently accepted signature keys, each kept until its own expiry time."""

    def __init__(self, max_age_s: float, max_entries: int = 100_000) -> None:
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_age_s = float(max_age_s)
        self.max_entries = max_entries
        self._until: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._until)

    def _purge(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] < now:
            until, _, key = heapq.heappop(heap)
            if self._until.get(key) == until:
                del self._until[key]

    def check(self, key: Hashable, *, now: float | None = None, until: float | None = None) -> ReplayStatus:
        """Record ``key`` and say whether it is new, a replay of a live entry, or refused because the cache is full.

        ``until`` is the last instant (same clock as ``now``) at which the signed request could still be accepted;
        the entry is kept until then. Expired entries are dropped first, so a key whose window has passed counts
        as new again (the time checks reject such a request before it gets here).
        """
        t = time.time() if now is None else now
        end = t + self.max_age_s if until is None else max(until, t)
        with self._lock:
            self._purge(t)
            if key in self._until:
                return "replay"
            if len(self._until) >= self.max_entries:
                return "full"
            self._until[key] = end
            self._seq += 1
            heapq.heappush(self._heap, (end, self._seq, key))
            return "new"

    def seen(self, key: Hashable, *, now: float | None = None, until: float | None = None) -> bool:
        """True when the request must be refused: ``key`` was already recorded, or the cache is full (fail closed)."""
        return self.check(key, now=now, until=until) != "new"
