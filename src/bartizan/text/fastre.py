"""Regular expressions on the hot path: RE2 (linear time, no backtracking) where the pattern allows.

`compile` returns an RE2 pattern when the pattern is in RE2's syntax — guaranteed linear-time matching and
several times faster than `re` on character classes and case-insensitive alternations — and falls back
to Python's `re` for patterns that need lookaround or backreferences. Both objects offer `search`,
`finditer` and `match` with character offsets. RE2's `\\s`, `\\w`, `\\d` and `\\b` are ASCII-only; patterns
here run on folded (mostly ASCII) views, where that is what we want.
"""

from __future__ import annotations

import re
from typing import Any

try:  # google-re2 is a core dependency; the fallback keeps a broken wheel from disabling detection
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    _re2 = None


def compile(pattern: str, *, ignore_case: bool = False, engine: str = "auto") -> Any:  # noqa: A001
    """Compile with RE2 when possible (engine 'auto' or 're2'), else with `re` ('auto' or 're')."""
    if engine not in ("auto", "re2", "re"):
        raise ValueError(f"unknown regex engine {engine!r}")
    if engine != "re" and _re2 is not None:
        opts = _re2.Options()
        opts.log_errors = False
        opts.case_sensitive = not ignore_case
        try:
            return _re2.compile(pattern, options=opts)
        except _re2.error:
            if engine == "re2":
                raise
    elif engine == "re2":
        raise RuntimeError("RE2 is not installed (pip install google-re2)")
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


def engine_of(compiled: Any) -> str:
    return "re" if isinstance(compiled, re.Pattern) else "re2"
