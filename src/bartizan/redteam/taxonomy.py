"""ATLAS and OWASP tags for red-team cases, checked against the pinned MITRE ATLAS data at load time.

Why a module of its own: reports must carry framework ids that exist. The ids come from
:mod:`bartizan.taxonomy` (one place for the whole toolkit); this module adds the per-family mapping used by
the attack library and a loader of ``mitre_atlas/ATLAS.yaml`` that rejects any mapping to an unknown id, so a
typo or an ATLAS renumbering fails loudly instead of shipping in a SARIF file. OWASP ids always carry the
list's year (``LLM01:2025``) because the 2026 list renumbers entries (../shared/reference/governance.md).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bartizan import taxonomy as tx

#: OWASP Top 10 for LLM Applications, 2025 edition (names as in governance.md section 1).
OWASP_LLM_2025: dict[str, str] = {
    "LLM01:2025": "Prompt Injection",
    "LLM02:2025": "Sensitive Information Disclosure",
    "LLM03:2025": "Supply Chain",
    "LLM04:2025": "Data and Model Poisoning",
    "LLM05:2025": "Improper Output Handling",
    "LLM06:2025": "Excessive Agency",
    "LLM07:2025": "System Prompt Leakage",
    "LLM08:2025": "Vector and Embedding Weaknesses",
    "LLM09:2025": "Misinformation",
    "LLM10:2025": "Unbounded Consumption",
}

EXTERNAL_HARMS = "AML.T0048"
COMMAND_INTERPRETER = "AML.T0050"

#: ATLAS techniques per case family. Why these: a plain harmful request is a direct prompt (ATLAS T0051.000 names
#: "generate harmful content" as its use) whose success is an external harm (T0048); a jailbreak template
#: overrides safety behaviour (T0054) through a direct prompt; system-prompt extraction is T0056; interpreter
#: abuse invokes the agent's code tool (T0053) to run commands (T0050). Indirect injection cases get
#: T0051.001 instead of .000 (see `injection_atlas`). Benign twins carry no technique.
FAMILY_ATLAS: dict[str, tuple[str, ...]] = {
    "harmful": (tx.DIRECT_INJECTION, EXTERNAL_HARMS),
    "jailbreak_template": (tx.DIRECT_INJECTION, tx.JAILBREAK),
    "prompt_injection": (tx.DIRECT_INJECTION,),
    "sysprompt_extraction": (tx.DIRECT_INJECTION, tx.SYSTEM_PROMPT_EXTRACTION),
    "interpreter_abuse": (tx.DIRECT_INJECTION, tx.TOOL_INVOCATION, COMMAND_INTERPRETER),
    "benign": (),
}

#: OWASP LLM 2025 ids per family. Jailbreaking and harmful-content elicitation are prompt injection in the 2025
#: list (LLM01 names jailbreaking as a form of it); extraction adds LLM07; interpreter abuse adds Excessive
#: Agency (LLM06) and Improper Output Handling (LLM05: model output executed as code).
FAMILY_OWASP: dict[str, tuple[str, ...]] = {
    "harmful": (tx.LLM01,),
    "jailbreak_template": (tx.LLM01,),
    "prompt_injection": (tx.LLM01,),
    "sysprompt_extraction": (tx.LLM01, tx.LLM07),
    "interpreter_abuse": (tx.LLM01, tx.LLM05, tx.LLM06),
    "benign": (),
}

#: CyberSecEval injection variants that hide the instruction (ATLAS LLM Prompt Obfuscation).
OBFUSCATING_VARIANTS = frozenset({"token_smuggling", "payload_splitting", "different_user_input_language"})


class TaxonomyError(ValueError):
    """An ATLAS file of an unknown format, or a mapping that names an id the pinned data lacks."""


@dataclass(frozen=True)
class AtlasCatalog:
    """Technique ids and display names from one ATLAS data file."""

    version: str
    techniques: dict[str, str]  # id -> display name ("LLM Prompt Injection: Direct" for sub-techniques)
    tactics: dict[str, str]

    def name(self, technique_id: str) -> str:
        """Display name of `technique_id`; raises TaxonomyError when the id is unknown."""
        try:
            return self.techniques[technique_id]
        except KeyError:
            raise TaxonomyError(f"unknown ATLAS technique {technique_id!r} (ATLAS {self.version})") from None


def default_atlas_path() -> Path:
    """``$BARTIZAN_DATASETS/mitre_atlas/ATLAS.yaml``, else ../shared/datasets next to the repository."""
    return datasets_dir() / "mitre_atlas" / "ATLAS.yaml"


def datasets_dir() -> Path:
    """Where the public datasets live: ``$BARTIZAN_DATASETS`` or the ``shared/datasets`` beside the checkout."""
    env = os.environ.get("BARTIZAN_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "datasets"


def parse_atlas(data: Any, source: str = "ATLAS.yaml") -> AtlasCatalog:
    """Build a catalogue from parsed ATLAS YAML; only the 5.x format (one matrix) is accepted."""
    if not isinstance(data, dict) or not isinstance(data.get("matrices"), list):
        raise TaxonomyError(f"{source}: not an ATLAS data file (no 'matrices' list)")
    version = str(data.get("version", ""))
    if not version.startswith("5."):
        raise TaxonomyError(f"{source}: unsupported ATLAS format version {version!r} (expected 5.x)")
    raw: dict[str, dict[str, Any]] = {}
    tactics: dict[str, str] = {}
    for matrix in data["matrices"]:
        for tech in matrix.get("techniques", []):
            raw[str(tech["id"])] = tech
        for tac in matrix.get("tactics", []):
            tactics[str(tac["id"])] = str(tac["name"])
    names: dict[str, str] = {}
    for tid, tech in raw.items():
        parent = tech.get("subtechnique-of")
        name = str(tech["name"])
        names[tid] = f"{raw[parent]['name']}: {name}" if parent in raw else name
    return AtlasCatalog(version=version, techniques=names, tactics=tactics)


@functools.lru_cache(maxsize=4)
def load_atlas(path: Path | None = None) -> AtlasCatalog:
    """Read and cache the ATLAS catalogue (about 30 ms with libyaml)."""
    p = path or default_atlas_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"{p}: cannot read ATLAS data: {exc.strerror}") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return parse_atlas(yaml.load(text, Loader=loader), str(p))  # noqa: S506 - a safe loader


def check_ids(atlas: tuple[str, ...], owasp: tuple[str, ...], catalog: AtlasCatalog | None = None) -> None:
    """Raise TaxonomyError unless every ATLAS id exists in the catalogue and every OWASP id is a 2025 id."""
    cat = catalog or load_atlas()
    for tid in atlas:
        cat.name(tid)
    for oid in owasp:
        if oid not in OWASP_LLM_2025:
            raise TaxonomyError(f"unknown OWASP LLM id {oid!r} (expected e.g. 'LLM01:2025')")


def verify_mappings(catalog: AtlasCatalog | None = None) -> None:
    """Check every id this module can assign against the pinned data (called once by the library loader)."""
    cat = catalog or load_atlas()
    for family, ids in FAMILY_ATLAS.items():
        check_ids(ids, FAMILY_OWASP[family], cat)
    check_ids((tx.INDIRECT_INJECTION, tx.PROMPT_OBFUSCATION), (), cat)


def family_tags(family: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(ATLAS ids, OWASP ids) for a case family; raises KeyError for an unknown family."""
    return FAMILY_ATLAS[family], FAMILY_OWASP[family]


def injection_atlas(injection_type: str, variant: str) -> tuple[str, ...]:
    """ATLAS ids for a CyberSecEval injection case: direct or indirect, plus obfuscation for hiding variants."""
    base = tx.INDIRECT_INJECTION if injection_type == "indirect" else tx.DIRECT_INJECTION
    return (base, tx.PROMPT_OBFUSCATION) if variant in OBFUSCATING_VARIANTS else (base,)


def describe(technique_ids: tuple[str, ...], catalog: AtlasCatalog | None = None) -> list[dict[str, str]]:
    """``[{id, name}]`` for reports (SARIF rule properties, HTML tables)."""
    cat = catalog or load_atlas()
    return [{"id": t, "name": cat.name(t)} for t in technique_ids]
