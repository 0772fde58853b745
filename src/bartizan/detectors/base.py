"""What a detector receives and what it must return."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from bartizan.text.views import TextViews
from bartizan.types import Finding, Message


class DetectorConfig(BaseModel):
    """Base of every detector's typed configuration. Unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoConfig(DetectorConfig):
    pass


class SkipDetector(Exception):
    """Raised by a detector that does not apply to this message (for example no canary was set)."""


class DeadlineExceeded(Exception):
    """Raised by `ScanContext.check_deadline` when a detector has used up its time budget."""


@dataclass(frozen=True, slots=True)
class ScanContext:
    """One message with its shared views, plus per-session facts (canaries) and the time budget."""

    message: Message
    views: TextViews
    canaries: tuple[str, ...] = ()
    deadline: float | None = None  # time.perf_counter() value after which the detector should stop

    @property
    def text(self) -> str:
        return self.message.content

    def check_deadline(self) -> None:
        """Cooperative time check for detectors that loop over many items."""
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise DeadlineExceeded("time budget exceeded")


class Detector(Protocol):
    """A configured detector instance: built once, then called for every message."""

    name: str

    def scan(self, ctx: ScanContext) -> Iterable[Finding]: ...
