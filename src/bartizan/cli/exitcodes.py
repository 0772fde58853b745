"""Exit codes of the `bartizan` command, shared by every command group."""

from __future__ import annotations

from bartizan.types import Verdict

OK = 0
INTERNAL_ERROR = 1
USAGE_ERROR = 2
INPUT_ERROR = 3
POLICY_ERROR = 4
AUDIT_TAMPERED = 5
POLICY_TESTS_FAILED = 6

VERDICT_CODES = {Verdict.ALLOW: OK, Verdict.FLAG: 10, Verdict.REDACT: 11, Verdict.BLOCK: 12}


def for_verdict(verdict: Verdict) -> int:
    return VERDICT_CODES[verdict]
