"""Insecure code in model output, found with Meta CodeShield's regex rules (MIT, see rules/codeshield/).

Code is what sits in fenced blocks (``` or ~~~); the fence's language tag picks that language's rules plus
the language-agnostic ones (hard-coded keys and tokens). A fence without a tag, or text without fences that
reads as code, gets every rule. The detector reports where the insecure call is and which CWE it is; it never
quotes the code, since the language-agnostic rules match credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Literal, cast

from pydantic import Field

from bartizan import taxonomy as tx
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.detectors.registry import detector
from bartizan.rules.loader import Rule, compiled_rules
from bartizan.types import Finding, Span

NAME = "insecure_code"
CATEGORY = "insecure_code"

# Rule files under bartizan/rules/codeshield/, one per CodeShield language.
LANGUAGES = (
    "c", "cpp", "csharp", "java", "javascript", "objective_c", "php", "python", "ruby", "rust", "swift", "xml",
)  # fmt: skip
AGNOSTIC = "language_agnostic"

# Fence tags (lower case) -> CodeShield language.
_ALIASES = {
    "c": "c", "h": "c",
    "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp", "hxx": "cpp",
    "cs": "csharp", "csharp": "csharp", "c#": "csharp",
    "java": "java", "kotlin": "java", "kt": "java",
    "js": "javascript", "javascript": "javascript", "jsx": "javascript", "mjs": "javascript", "cjs": "javascript",
    "ts": "javascript", "typescript": "javascript", "tsx": "javascript", "node": "javascript",
    "php": "php",
    "py": "python", "py3": "python", "python": "python", "python3": "python", "ipython": "python",
    "rb": "ruby", "ruby": "ruby",
    "rs": "rust", "rust": "rust",
    "swift": "swift",
    "objc": "objective_c", "objective-c": "objective_c", "objectivec": "objective_c", "objective_c": "objective_c",
    "mm": "objective_c",
    "xml": "xml",
}  # fmt: skip

# Rule files a language reads besides its own: C APIs are callable from C++ and Objective-C, and the
# csharp rules describe web.config XML.
_ALSO = {"cpp": ("c",), "objective_c": ("c",), "xml": ("csharp",)}

ALL = "*"

# A fence line: up to three spaces, ``` or ~~~ (three or more), then an info string whose first word is the
# language.
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n]*$", re.MULTILINE)

# How code lines start or end (used only when the text has no fences). Plain string tests, no regex.
_CODE_STARTS = (
    "#include", "#define", "import ", "from ", "def ", "class ", "fn ", "func ", "function ", "public ",
    "private ", "protected ", "static ", "package ", "using ", "const ", "var ", "let ", "return", "if (",
    "for (", "while (", "<?php", "}", "{", "//", "@",
)  # fmt: skip
_CODE_ENDS = (";", "{", "}", ":", ")")


class CodeShieldRule(Rule):
    """A CodeShield regex rule with its upstream metadata."""

    language: str
    cwe_id: str
    severity: Literal["error", "warning", "advice"]
    pattern_id: str
    upstream_enabled: bool = False  # listed among the enabled regex rules of CodeShield's config.yaml
    upstream_pattern: str = ""  # the upstream pattern, when ours was rewritten to bound backtracking
    change: str = ""  # why it was rewritten
    literals: tuple[str, ...] = ()  # every match starts with one of these; empty when no such set is known

    def matches(self, rx: re.Pattern[str], text: str, start: int, end: int) -> Iterator[re.Match[str]]:
        """Non-empty matches of `rx` in text[start:end], tried only where one of the literals occurs.

        A regex with a leading word boundary cannot use the engine's literal-prefix search, so finding the
        literals with `str.find` first and matching there is several times faster on code. Boundaries and
        lookbehinds still see the characters before each candidate.
        """
        if not self.literals:
            candidates: Iterable[int] = (m.start() for m in rx.finditer(text, start, end))
        else:
            found: set[int] = set()
            for lit in self.literals:
                pos = text.find(lit, start, end)
                while pos >= 0:
                    found.add(pos)
                    pos = text.find(lit, pos + 1, end)
            candidates = sorted(found)
        last = start
        for pos in candidates:
            if pos < last:
                continue
            m = rx.match(text, pos, end)
            if m is not None and m.end() > m.start():
                yield m
                last = m.end()


def _may_match(literals: tuple[str, ...], code: str) -> bool:
    """True when the rule has no literals or one of them occurs in `code` (the cheap test before any regex)."""
    if not literals:
        return True
    for lit in literals:
        if lit in code:
            return True
    return False


class InsecureCodeConfig(DetectorConfig):
    upstream_enabled_only: bool = Field(
        default=False, description="use only the regex rules CodeShield itself enables (fewer, quieter)"
    )
    scan_unfenced: bool = Field(default=True, description="scan text without code fences when it reads as code")
    min_code_lines: int = Field(default=3, ge=1, description="code-like lines needed to treat unfenced text as code")
    min_code_share: float = Field(default=0.3, ge=0.0, le=1.0, description="share of lines that must read as code")
    max_spans: int = Field(default=16, ge=1, description="spans reported per rule")


RuleSet = tuple[tuple[CodeShieldRule, re.Pattern[str]], ...]


@lru_cache(maxsize=64)
def rules_for(language: str, upstream_enabled_only: bool = False) -> RuleSet:
    """Compiled rules for a CodeShield language (`ALL` for every file), language-agnostic rules included."""
    if language == ALL:
        files: tuple[str, ...] = (*LANGUAGES, AGNOSTIC)
    elif language in LANGUAGES:
        files = (language, *_ALSO.get(language, ()), AGNOSTIC)
    else:
        files = (AGNOSTIC,)
    out: list[tuple[CodeShieldRule, re.Pattern[str]]] = []
    for name in files:
        for rule, rx in compiled_rules(f"codeshield/{name}.yaml", CodeShieldRule):
            cs_rule = cast(CodeShieldRule, rule)
            if cs_rule.upstream_enabled or not upstream_enabled_only:
                out.append((cs_rule, rx))
    return tuple(out)


def language_of(tag: str) -> str:
    """CodeShield language for a fence tag: `ALL` when there is no tag, '' when it is a language without rules."""
    tag = tag.strip("{}.").lower()
    if not tag:
        return ALL
    return _ALIASES.get(tag, "")


def fenced_blocks(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, tag) of the content of each fenced code block; an unclosed fence runs to the end."""
    open_fence: tuple[str, int, str, int] | None = None  # (char, length, tag, content start)
    for m in _FENCE.finditer(text):
        fence, tag = m.group(1), m.group(2)
        if open_fence is None:
            open_fence = (fence[0], len(fence), tag, min(m.end() + 1, len(text)))
            continue
        char, length, open_tag, start = open_fence
        if fence[0] == char and len(fence) >= length and not tag and not m.group().strip(" \t`~"):
            yield start, m.start(), open_tag
            open_fence = None
    if open_fence is not None:
        yield open_fence[3], len(text), open_fence[2]


def looks_like_code(text: str, min_lines: int, min_share: float) -> bool:
    """Whether text without fences is mostly code: enough lines that start or end the way code lines do."""
    if text.count("\n") + 1 < min_lines:
        return False
    hits = lines = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        lines += 1
        if line.startswith(_CODE_STARTS) or line.endswith(_CODE_ENDS):
            hits += 1
    return hits >= min_lines and hits >= min_share * lines


def code_regions(text: str, config: InsecureCodeConfig) -> list[tuple[int, int, str, str]]:
    """(start, end, language, where) of every stretch of the text to scan as code."""
    if "```" in text or "~~~" in text:
        blocks = []
        for a, b, tag in fenced_blocks(text):
            language = language_of(tag)
            where = "untagged block" if language == ALL else f"{language} block" if language else "other-language block"
            blocks.append((a, b, language, where))
        if blocks:
            return blocks
    if config.scan_unfenced and looks_like_code(text, config.min_code_lines, config.min_code_share):
        return [(0, len(text), ALL, "unfenced code")]
    return []


@detector(
    NAME,
    config=InsecureCodeConfig,
    categories=(CATEGORY,),
    description="Insecure code and hard-coded credentials in code blocks (Meta CodeShield regex rules, CWE ids).",
)
class InsecureCode:
    """Flags insecure API use and hard-coded credentials in code blocks (CodeShield regex rules, CWE-tagged)."""

    def __init__(self, config: InsecureCodeConfig) -> None:
        self.config = config

    def scan(self, ctx: ScanContext) -> Iterable[Finding]:
        # Every rule file is loaded on the first scan, code or not, so that `Firewall.warmup()` pays for it
        # rather than the first answer that holds code (parsing all of them takes a few hundred ms).
        rules_for(ALL, self.config.upstream_enabled_only)
        text = ctx.text
        regions = code_regions(text, self.config)
        if not regions:
            return []
        by_language: dict[str, list[tuple[int, int, str]]] = {}
        for start, end, language, where in regions:
            by_language.setdefault(language, []).append((start, end, where))
        hits: dict[str, tuple[CodeShieldRule, str, list[Span]]] = {}
        for language, blocks in by_language.items():
            # One literal test per rule over all blocks of a language, then per block only for the rules
            # that can match: many small blocks cost no more than one large one.
            joined = "\n".join(text[a:b] for a, b, _ in blocks)
            for rule, rx in rules_for(language, self.config.upstream_enabled_only):
                if not _may_match(rule.literals, joined):
                    continue
                ctx.check_deadline()
                for start, end, where in blocks:
                    if len(blocks) > 1 and not _may_match(rule.literals, text[start:end]):
                        continue
                    for m in rule.matches(rx, text, start, end):
                        hits.setdefault(rule.id, (rule, where, []))[2].append(Span(m.start(), m.end()))
        return [self._finding(rule, where, spans) for rule, where, spans in hits.values()]

    def _finding(self, rule: CodeShieldRule, where: str, spans: list[Span]) -> Finding:
        count = f", {len(spans)} places" if len(spans) > 1 else ""
        return Finding(
            detector=NAME,
            category=CATEGORY,
            score=rule.score,
            spans=tuple(spans[: self.config.max_spans]),
            evidence=f"{rule.cwe_id} {rule.pattern_id} ({rule.severity}, {where}{count}): {rule.description}",
            rule_id=rule.id,
            owasp=(tx.LLM05,),
        )
