"""The policy file's schema: which detectors run for which role, and what their findings do."""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bartizan.types import Role, Verdict


class Action(str, enum.Enum):
    """What a counted finding does to the message."""

    ALLOW = "allow"
    FLAG = "flag"
    REDACT = "redact"
    BLOCK = "block"

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.value)


class FailMode(str, enum.Enum):
    """What a detector that errored or ran out of time does to the verdict."""

    CLOSED = "closed"  # block
    FLAG = "flag"  # flag, let through
    OPEN = "open"  # let through (still reported as error/timeout, never as a pass)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorPolicy(_Strict):
    enabled: bool = True
    roles: tuple[Role, ...] = Field(default=tuple(Role), min_length=1)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    action: Action = Action.BLOCK
    categories: dict[str, Action] = Field(default_factory=dict)
    fail_mode: FailMode | None = None
    time_budget_ms: float | None = Field(default=None, gt=0)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("roles", mode="before")
    @classmethod
    def _star(cls, v: Any) -> Any:
        if v == "*" or v == ["*"]:
            return tuple(Role)
        return v

    def action_for(self, category: str) -> Action:
        return self.categories.get(category, self.action)


class ViewLimitsPolicy(_Strict):
    max_decode_depth: int = Field(default=3, ge=0, le=8)
    max_decoded_chars: int = Field(default=1_000_000, ge=0)
    max_views: int = Field(default=32, ge=1, le=256)


class Policy(_Strict):
    version: int = Field(default=1, ge=1, le=1)
    name: str = "custom"
    fail_mode: FailMode = FailMode.CLOSED
    time_budget_ms: float = Field(default=250.0, gt=0)
    total_budget_ms: float = Field(default=2000.0, gt=0)
    deobfuscation: ViewLimitsPolicy = Field(default_factory=ViewLimitsPolicy)
    detectors: dict[str, DetectorPolicy] = Field(default_factory=dict)

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the validated policy (what the audit trail records)."""
        canon = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()
