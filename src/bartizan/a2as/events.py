"""A2AS audit event record shared by every A2AS control (spec §8).

Events carry names, decisions, rule ids and counts only: never raw prompt, tool content or secrets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SIG_INVALID = "a2as.sig.invalid"
SIG_REPLAY = "a2as.sig.replay"
CERT_TOOL_DENIED = "a2as.cert.tool_denied"
CERT_MODEL_DENIED = "a2as.cert.model_denied"
BOUNDARY_SPOOF_NEUTRALIZED = "a2as.boundary.spoof_neutralized"
POLICY_ENFORCED = "a2as.policy.enforced"
OUTPUT_TAG_LEAK = "a2as.output.tag_leak"


@dataclass
class A2ASEvent:
    """One audit event: ``name`` from spec §8, the ``decision`` taken, and content-free details."""

    name: str
    decision: str
    rule: str | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
