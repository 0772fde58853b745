"""What one audit entry holds, and the small value types the audit package returns.

An `AuditRecord` describes one decision of the gateway (one scanned surface of one request) with safe metadata
only: ids, verdict, detector names, rule ids, scores and masked evidence. Raw text travels in `captured_text` and
is stored only encrypted, and only when the store was given a capture key (see `capture.py`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bartizan.types import Finding

DIRECTIONS = frozenset({"input", "output", "tool_call", "request"})
VERDICTS = frozenset({"allow", "flag", "redact", "block", "error"})
# Keys of Finding.to_dict() that are safe to keep: `spans` are left out (offsets into text the log never holds).
FINDING_KEYS = ("detector", "category", "rule_id", "score", "evidence", "view", "atlas", "owasp")


class AuditError(RuntimeError):
    """The audit store cannot do what was asked (missing tables, wrong key, mixed chain modes)."""


class AuditUnavailable(AuditError):
    """The audit trail cannot accept a record now (queue full or writer stopped): callers should fail closed."""


class CaptureError(AuditError):
    """A captured text cannot be decrypted: wrong key, or the ciphertext or its row was altered."""


def audit_findings(findings: Iterable[Finding | Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Project findings onto the keys an audit row may hold (`FINDING_KEYS`); accepts `Finding`s or their dicts."""
    out: list[dict[str, Any]] = []
    for f in findings:
        d = f.to_dict() if isinstance(f, Finding) else dict(f)
        kept = {k: d[k] for k in FINDING_KEYS if k in d}
        for k in ("atlas", "owasp"):
            if k in kept:
                kept[k] = list(kept[k])
        out.append(kept)
    return tuple(out)


@dataclass(frozen=True)
class AuditRecord:
    """One audited decision. `extra` holds safe metadata only (model, status code, key id, role)."""

    request_id: str
    tenant: str
    route: str
    direction: str
    verdict: str
    findings: tuple[dict[str, Any], ...]
    detector_latency_ms: dict[str, float]
    policy_hash: str
    surface: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    captured_text: str | None = field(default=None, repr=False)  # never shown by repr(): it is raw text
    ts: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"AuditRecord.direction must be one of {sorted(DIRECTIONS)}, got {self.direction!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"AuditRecord.verdict must be one of {sorted(VERDICTS)}, got {self.verdict!r}")
        if not isinstance(self.findings, tuple):
            object.__setattr__(self, "findings", tuple(self.findings))


@dataclass(frozen=True)
class VerifyReport:
    """Result of checking the chain: `first_bad_seq` is the lowest sequence number involved in a problem."""

    ok: bool
    rows: int
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    head_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "first_bad_seq": self.first_bad_seq,
            "head_seq": self.head_seq,
            "problems": list(self.problems),
        }
