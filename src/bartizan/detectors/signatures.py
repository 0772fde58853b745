"""Injection and jailbreak signatures: regex rules (rules/signatures.yaml) run on every view of a message.

Matching every view (folded, letter-spaced, leet, ROT13, reversed, Unicode-tag and decoded payloads) catches
obfuscated copies of an attack; each finding points at the original characters through `View.span`. One
finding is reported per (rule, original span): the first view that produced it wins, original first.

Speed: all rules are compiled into one RE2 set, which says in a single linear pass over a view which rules
match there; only those rules are then run to find their spans. A benign view costs that one pass. An RE2
set gives up, reporting nothing, if its DFA runs out of memory, so the set carries an always-matching sentinel:
a pass that does not report the sentinel did not finish, and every rule is run instead. Without RE2 (a broken
wheel) every rule runs with Python's `re`, slower but with the same results.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from pydantic import Field, field_validator

from bartizan import taxonomy as tx
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.detectors.registry import ConfigError, detector
from bartizan.rules.loader import Rule, load_rules
from bartizan.text import fastre
from bartizan.text.views import View
from bartizan.types import Finding, Role, Span

NAME = "signatures"
CATEGORIES = (
    "instruction_override",
    "role_hijack",
    "prompt_extraction",
    "persona_jailbreak",
    "refusal_suppression",
    "template_injection",
    "exfiltration_instruction",
    "a2as_spoof",
)
# Rules write the parent technique; a finding carries the direct or indirect sub-technique by role.
_INDIRECT_ROLES = frozenset({Role.TOOL, Role.RETRIEVED})
_KNOWN_ATLAS = frozenset(v for k, v in vars(tx).items() if k.isupper() and isinstance(v, str) and v.startswith("AML."))
_SET_MEMORY = 64 << 20  # bytes RE2 may use for the set's DFA cache


def strip_layout(pattern: str) -> str:
    """A `(?x)` pattern without its layout (whitespace and # comments outside classes), for RE2.

    RE2 has no verbose mode; rule files use it so that long alternations stay readable.
    """
    if not pattern.startswith("(?x)"):
        return pattern
    out: list[str] = []
    i, n, in_class = 4, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
            out.append(c)
        elif c == "[":
            in_class = True
            out.append(c)
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
            if pattern.startswith("]", i + 1):  # a leading ] is a literal, not the end of the class
                out.append("]")
                i += 1
        elif c == "#":
            while i < n and pattern[i] != "\n":
                i += 1
        elif not c.isspace():
            out.append(c)
        i += 1
    return "".join(out)


class SignatureRule(Rule):
    """A regex rule with the example texts that document (and test) what it must and must not match."""

    examples: tuple[str, ...] = ()
    counterexamples: tuple[str, ...] = ()

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str) -> str:
        if v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; expected one of {', '.join(CATEGORIES)}")
        return v

    @field_validator("atlas")
    @classmethod
    def _known_atlas(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in v if a not in _KNOWN_ATLAS]
        if unknown:
            raise ValueError(f"unknown ATLAS ids {unknown} (see bartizan.taxonomy)")
        return v

    @field_validator("pattern")
    @classmethod
    def _linear_and_not_empty(cls, v: str) -> str:
        flat = strip_layout(v)
        try:
            compiled = fastre.compile(flat, engine="re2" if fastre.HAS_RE2 else "re")
        except fastre.ERRORS as exc:
            raise ValueError(f"pattern is not RE2 syntax (no lookaround or backreferences): {exc}") from None
        if compiled.fullmatch(""):
            raise ValueError("pattern matches the empty string")
        return flat


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules plus the pattern set that tells which of them match a text."""

    rules: tuple[SignatureRule, ...]
    patterns: tuple[Any, ...]  # fastre-compiled: RE2 where available
    prefilter: fastre.PatternSet

    def candidates(self, text: str) -> Sequence[int]:
        """Indices (in file order) of the rules that may match `text`; all of them when unsure."""
        return self.prefilter.candidates(text)


@lru_cache(maxsize=8)
def load_ruleset(rules_file: str) -> RuleSet:
    """Load, compile and index a signature file once per process."""
    rules = cast("tuple[SignatureRule, ...]", load_rules(rules_file, SignatureRule))
    patterns = tuple(fastre.compile(r.pattern, ignore_case=r.ignore_case) for r in rules)
    prefilter = fastre.PatternSet([(r.pattern, r.ignore_case) for r in rules], max_mem=_SET_MEMORY)
    return RuleSet(rules, patterns, prefilter)


class SignaturesConfig(DetectorConfig):
    rules_file: str = Field(default="signatures.yaml", description="packaged rule file name or a path on disk")
    disabled_rules: tuple[str, ...] = Field(default=(), description="rule ids not to run")
    max_findings_per_rule: int = Field(default=10, ge=1, description="cap on findings of one rule per message")


@detector(
    NAME,
    config=SignaturesConfig,
    categories=CATEGORIES,
    description="Prompt-injection and jailbreak signatures, matched on every de-obfuscated view",
)
class Signatures:
    """Regex signatures for instruction override, role hijack, prompt extraction, jailbreak personas,
    refusal suppression, chat-template tokens, exfiltration instructions and spoofed A2AS tags."""

    def __init__(self, config: SignaturesConfig) -> None:
        self.config = config
        self._disabled = frozenset(config.disabled_rules)
        if self._disabled:
            # Checked now, not on the first message: a misspelt id would silently keep a rule on.
            known = {rule.id for rule in load_ruleset(config.rules_file).rules}
            unknown = sorted(self._disabled - known)
            if unknown:
                raise ConfigError(f"detector {NAME!r}: unknown rule ids in disabled_rules: {', '.join(unknown)}")

    def scan(self, ctx: ScanContext) -> Iterable[Finding]:
        ruleset = load_ruleset(self.config.rules_file)
        indirect = ctx.message.role in _INDIRECT_ROLES
        seen: set[tuple[str, int, int]] = set()
        per_rule: dict[str, int] = {}
        findings: list[Finding] = []
        for view in ctx.views.all():
            ctx.check_deadline()
            for index in ruleset.candidates(view.text):
                rule = ruleset.rules[index]
                if rule.id in self._disabled:
                    continue
                for m in ruleset.patterns[index].finditer(view.text):
                    if per_rule.get(rule.id, 0) >= self.config.max_findings_per_rule:
                        break
                    start, end = m.span()
                    span = view.span(start, end)
                    key = (rule.id, span.start, span.end)
                    if key in seen:
                        continue
                    seen.add(key)
                    per_rule[rule.id] = per_rule.get(rule.id, 0) + 1
                    findings.append(_finding(rule, span, end - start, view, indirect))
        return findings


def _finding(rule: SignatureRule, span: Span, length: int, view: View, indirect: bool) -> Finding:
    atlas: list[str] = []
    for ref in rule.atlas:
        if ref == tx.PROMPT_INJECTION:
            ref = tx.INDIRECT_INJECTION if indirect else tx.DIRECT_INJECTION
        if ref not in atlas:
            atlas.append(ref)
    if view.derived and tx.PROMPT_OBFUSCATION not in atlas:
        atlas.append(tx.PROMPT_OBFUSCATION)
    # Evidence names the rule and the match length, never the matched text (it may quote a secret).
    where = "" if view.name == "original" else f" in the {view.name} view"
    return Finding(
        detector=NAME,
        category=rule.category,
        score=rule.score,
        spans=(span,),
        evidence=f"{rule.id}: {rule.description} ({length} characters{where})",
        rule_id=rule.id,
        view=view.name,
        atlas=tuple(atlas),
        owasp=rule.owasp,
    )
