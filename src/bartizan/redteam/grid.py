"""The topic grid: every case of a suite crossed with a set of transformations, benign twins included, so
that attack success and false refusal are measured on the same topics and the same surface forms.

A probe's text is the case's request rendered by the transformation (seeded by the probe id, so a run is
reproducible and a resumed run sends exactly the same probes); a case with a system prompt (prompt injection,
system-prompt extraction) keeps it as the first message, and the transformation applies to the user input.
Templates that must be sent whole (jailbreak templates) and multi-turn scripts are not re-transformed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from bartizan.redteam.attempts import Probe
from bartizan.redteam.cases import Case
from bartizan.redteam.transforms import Transform, compose, rng_for

#: the quick suite's transformations: the plain form, the five stylised families, two encodings, two
#: structural attacks and one multi-turn script
QUICK_TRANSFORMS = (
    "plain",
    "verse_ballad",
    "narrative",
    "roleplay",
    "academic",
    "allegory",
    "base64",
    "leetspeak",
    "refusal_suppression",
    "payload_split",
    "crescendo",
)
#: families whose text is rewritten by the transformations (the others are sent as they are)
TRANSFORMABLE = frozenset({"harmful", "benign", "interpreter_abuse", "sysprompt_extraction"})


def probe_id(case_id: str, transform: str, repeat: int = 0) -> str:
    return hashlib.sha256(f"{case_id}|{transform}|{repeat}".encode()).hexdigest()[:16]


def build_probes(
    cases: Iterable[Case],
    transforms: Sequence[str] = QUICK_TRANSFORMS,
    *,
    seed: int = 0,
    extra: Mapping[str, Transform] | None = None,
) -> list[Probe]:
    """Cases x transforms. `extra` adds transformations by name (attacker-model rewrites) without touching the
    shared registry. Unknown transformation names raise KeyError (from the registry)."""
    more = dict(extra or {})
    resolved = {name: (None if name == "plain" else more.get(name) or compose(name)) for name in transforms}
    out: list[Probe] = []
    for case in cases:
        names = transforms if case.family in TRANSFORMABLE else ("plain",)
        for name in names:
            transform = resolved[name]
            pid = probe_id(case.id, name)
            system = [{"role": "system", "content": case.system}] if case.system else []
            if transform is None:
                messages = [*system, {"role": "user", "content": case.prompt}]
                family = "plain"
            else:
                rendered = transform.apply(case.prompt, rng_for(seed, pid))
                messages = [*system, *rendered.as_openai()]
                family = str(transform.family)
            out.append(Probe(pid, case, name, family, tuple(messages)))
    return out
