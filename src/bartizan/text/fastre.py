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


HAS_RE2 = _re2 is not None
ERRORS: tuple[type[Exception], ...] = (re.error, _re2.error) if _re2 is not None else (re.error,)


def compile(pattern: str, *, ignore_case: bool = False, engine: str = "auto") -> Any:
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


class PatternSet:
    """Many patterns, one linear pass: which of them match a text (RE2's set matching).

    RE2 gives up silently when the set's DFA runs out of memory; an always-matching sentinel added last
    tells a finished pass from an abandoned one, and an abandoned pass answers "every pattern may match".
    """

    def __init__(self, patterns: list[tuple[str, bool]], max_mem: int = 64 << 20, engine: str = "auto") -> None:
        """`patterns` are (pattern, ignore_case) pairs; engine 're' (or no RE2) makes every one a candidate."""
        self.size = len(patterns)
        self._set: Any = None
        if _re2 is None or engine == "re":
            return
        opts = _re2.Options()
        opts.log_errors = False
        opts.max_mem = max_mem
        self._set = _re2.Set.SearchSet(opts)
        for pattern, ignore_case in patterns:
            self._set.Add(("(?i)" if ignore_case else "") + pattern)
        self._set.Add("")  # the sentinel
        self._set.Compile()

    def candidates(self, text: str) -> range | list[int]:
        """Indices of the patterns that match `text` (all of them when the pass could not finish)."""
        if self._set is None:
            return range(self.size)
        hits = self._set.Match(text) or []
        if self.size not in hits:
            return range(self.size)
        return sorted(i for i in hits if i != self.size)
