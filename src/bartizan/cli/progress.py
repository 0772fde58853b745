"""A small progress line on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total_bytes: int | None, enabled: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.total = total_bytes
        self.start = time.monotonic()
        self._last = 0.0

    def update(self, items: int, done_bytes: int | None = None, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        rate = items / max(now - self.start, 1e-9)
        line = f"\rscanned {items:,} lines  {rate:,.0f}/s"
        if self.total and done_bytes is not None:
            frac = min(done_bytes / self.total, 1.0)
            filled = int(frac * 30)
            line = f"\r[{'#' * filled}{'.' * (30 - filled)}] {frac:6.1%}  {items:,} lines  {rate:,.0f}/s"
        self.stream.write(line)
        self.stream.flush()

    def close(self, items: int, done_bytes: int | None = None) -> None:
        if self.enabled:
            self.update(items, done_bytes, force=True)
            self.stream.write("\n")
            self.stream.flush()
