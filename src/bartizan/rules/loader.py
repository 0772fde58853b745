"""Load regex rule files (YAML data, not code) into compiled, validated rules.

A rule file is ``rules: [ {id, category, pattern, score, ...}, ... ]``. Patterns are compiled when the
file is loaded — once per process, on first use — and a bad pattern is reported with its file and line.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bartizan.schema import SchemaError, SchemaIssue, YamlDoc, validate


class Rule(BaseModel):
    """One regex rule. Detectors may subclass it to add fields of their own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    category: str = Field(min_length=1)
    pattern: str = Field(min_length=1)
    description: str = ""
    score: float = Field(default=0.9, ge=0.0, le=1.0)
    ignore_case: bool = True
    atlas: tuple[str, ...] = ()
    owasp: tuple[str, ...] = ()

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"pattern does not compile: {exc}") from None
        return v

    def compile(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE if self.ignore_case else 0)


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    source: str = ""
    license: str = ""
    rules: list[dict[str, Any]]


def read_rule_text(name: str) -> tuple[str, str]:
    """Text of a packaged rule file (`name` inside bartizan/rules) or of a path on disk."""
    path = Path(name)
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    res = resources.files("bartizan.rules").joinpath(name)
    return res.read_text(encoding="utf-8"), f"bartizan/rules/{name}"


def load_rules(name: str, rule_model: type[Rule] = Rule) -> tuple[Rule, ...]:
    """Validate every rule in a file, collecting all located errors before raising."""
    text, source = read_rule_text(name)
    doc = YamlDoc(text, source)
    wrapper = validate(RuleFile, doc)
    rules: list[Rule] = []
    issues: list[SchemaIssue] = []
    seen: set[str] = set()
    for i, raw in enumerate(wrapper.rules):
        try:
            rule = rule_model.model_validate(raw)
        except ValidationError as exc:
            issues.extend(doc.issues_from(exc, ("rules", i)))
            continue
        if rule.id in seen:
            issues.append(doc.issue(("rules", i, "id"), f"duplicate rule id {rule.id!r}"))
        seen.add(rule.id)
        rules.append(rule)
    if issues:
        raise SchemaError(issues)
    return tuple(rules)


@lru_cache(maxsize=32)
def compiled_rules(name: str, rule_model: type[Rule] = Rule) -> tuple[tuple[Rule, re.Pattern[str]], ...]:
    """Rules of a file with their compiled patterns; built once per process and shared."""
    return tuple((r, r.compile()) for r in load_rules(name, rule_model))
