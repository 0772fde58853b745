"""The one vocabulary every bartizan surface speaks.

Frozen, slotted value types with their invariants and nothing else: no I/O, no policy logic.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Role(str, enum.Enum):
    """Who wrote a piece of text. Everything but SYSTEM (and ASSISTANT for input rules) is untrusted."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    RETRIEVED = "retrieved"
    AGENT = "agent"


class Verdict(str, enum.Enum):
    """What the pipeline decided for a message, ordered by severity."""

    ALLOW = "allow"
    FLAG = "flag"
    REDACT = "redact"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @staticmethod
    def worst(verdicts: list[Verdict] | tuple[Verdict, ...]) -> Verdict:
        best = Verdict.ALLOW
        for v in verdicts:
            if _SEVERITY[v] > _SEVERITY[best]:
                best = v
        return best


_SEVERITY = {Verdict.ALLOW: 0, Verdict.FLAG: 1, Verdict.REDACT: 2, Verdict.BLOCK: 3}


class Status(str, enum.Enum):
    """How a detector's run ended. Only OK means it looked at the text and finished."""

    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range [start, end) into the ORIGINAL text of a message."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def to_list(self) -> list[int]:
        return [self.start, self.end]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call proposed by a model (OpenAI shape: id, function name, JSON arguments text)."""

    name: str
    arguments: str = ""
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation, or one piece of content an agent read."""

    role: Role
    content: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            object.__setattr__(self, "role", Role(self.role))
        if not isinstance(self.content, str):
            raise TypeError("Message.content must be str")
        if not isinstance(self.tool_calls, tuple):
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a detector found.

    `spans` point into the original text even when the detector matched a decoded view; `view` names the
    view (for example ``normalized`` or ``base64>normalized``). `evidence` is safe to log and display: a
    rule id, a masked value or a description — never a raw secret, PII value or canary.
    """

    detector: str
    category: str
    score: float
    spans: tuple[Span, ...] = ()
    evidence: str = ""
    rule_id: str | None = None
    view: str = "original"
    atlas: tuple[str, ...] = ()
    owasp: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (isinstance(self.score, (int, float)) and 0.0 <= self.score <= 1.0) or math.isnan(self.score):
            raise ValueError(f"Finding.score must be within [0, 1], got {self.score!r}")
        for ref in self.owasp:
            # OWASP ids carry their list's year: LLM01:2025 and LLM01:2026 are different entries.
            name, _, year = ref.partition(":")
            if not (name.startswith("LLM") and year.isdigit()):
                raise ValueError(f"OWASP id {ref!r} must look like 'LLM01:2025'")

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "category": self.category,
            "score": round(self.score, 4),
            "spans": [s.to_list() for s in self.spans],
            "evidence": self.evidence,
            "rule_id": self.rule_id,
            "view": self.view,
            "atlas": list(self.atlas),
            "owasp": list(self.owasp),
        }


@dataclass(frozen=True, slots=True)
class DetectorReport:
    """How one detector ran on one message."""

    status: Status
    latency_ms: float
    error: str | None = None
    fail_mode_applied: bool = False

    def __post_init__(self) -> None:
        if self.status in (Status.ERROR, Status.TIMEOUT) and not self.error:
            raise ValueError(f"a {self.status.value} report must say what went wrong")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.value, "latency_ms": round(self.latency_ms, 4)}
        if self.error:
            out["error"] = self.error
        if self.fail_mode_applied:
            out["fail_mode_applied"] = True
        return out


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The pipeline's answer for one message."""

    verdict: Verdict
    findings: tuple[Finding, ...]
    sanitized: str
    detectors: Mapping[str, DetectorReport]
    scores: Mapping[str, float]
    latency_ms: float
    policy_hash: str = ""
    reasons: tuple[str, ...] = field(default=())
    #: (span in the original text, label) of every span the policy redacts; `sanitized` is built from them
    redactions: tuple[tuple[Span, str], ...] = field(default=())

    @property
    def blocked(self) -> bool:
        return self.verdict is Verdict.BLOCK

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "findings": [f.to_dict() for f in self.findings],
            "detectors": {k: r.to_dict() for k, r in self.detectors.items()},
            "reasons": list(self.reasons),
            "latency_ms": round(self.latency_ms, 4),
            "policy_hash": self.policy_hash,
        }
