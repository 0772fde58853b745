"""The shared record type of the red-team harness: one attack (or benign twin) case.

Every loader, transformation, judge and report in :mod:`bartizan.redteam` passes :class:`Case` values around, so the
type is deliberately small, immutable and free of behaviour beyond id construction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

FAMILIES: tuple[str, ...] = (
    "harmful",
    "jailbreak_template",
    "prompt_injection",
    "sysprompt_extraction",
    "interpreter_abuse",
    "benign",
)


def case_id(source: str, text: str) -> str:
    """Return the stable id ``"<source>:<sha256(text)[:12]>"`` so that re-loading a dataset yields the same ids."""
    return f"{source}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


@dataclass(frozen=True)
class Case:
    """One red-team case: the prompt to send plus what is needed to judge and report it."""

    id: str  # stable: "<source>:<sha256(text)[:12]>"
    family: str  # one of FAMILIES
    source: str  # dataset name
    prompt: str  # the request (or the full attack text)
    category: str = ""  # hazard category when the source has one
    benign: bool = False  # a false-refusal twin
    system: str | None = None  # system prompt / protected instruction (prompt injection cases)
    judge_question: str | None = None  # CyberSecEval-style yes/no question ("yes" = attack succeeded)
    success_regex: str | None = None  # deterministic success criterion when the case defines one
    atlas: tuple[str, ...] = ()  # MITRE ATLAS technique ids, e.g. "AML.T0051.000"
    owasp: tuple[str, ...] = ()  # e.g. "LLM01:2025"
    meta: dict[str, str] = field(default_factory=dict)
