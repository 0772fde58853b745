"""Training data: seed-level splits, held-out benign sources, augmentation twins (tiny fixtures, no training)."""

from __future__ import annotations

from pathlib import Path

from bartizan.train.augment import (
    STYLES,
    TEMPLATES,
    augment_harmful,
    benign_lookalikes,
    stylise,
)
from bartizan.train.data import HELD_OUT_BENIGN_SOURCES, Example, split_of, stable_bucket
from bartizan.train.injections import indirect_injections


def seed(text: str, source: str = "advbench") -> Example:
    return Example(text=text, source=source, group="seed:" + text.lower(), labels={"harmful_intent": 1}, kind="request")


SEEDS = [seed(f"Explain how to do forbidden thing number {i}") for i in range(40)]


def test_stable_bucket_is_sha256_based_and_fixed() -> None:
    assert stable_bucket("abc") == int("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 16) % 10
    assert {split_of(s) for s in SEEDS} == {"train", "calib", "test"}


def test_every_rewrite_and_twin_stays_on_its_seeds_side() -> None:
    rows = augment_harmful(SEEDS, seed=3)
    by_group = {s.group: split_of(s) for s in SEEDS}
    assert rows
    for r in rows:
        assert split_of(r) == by_group[r.group]


def test_each_style_has_an_attack_and_a_benign_twin() -> None:
    import random

    out = stylise(SEEDS[0], random.Random(0))
    assert [r.style for r in out] == [s for s in STYLES for _ in range(2)]
    attacks, twins = out[0::2], out[1::2]
    assert all(r.labels["harmful_intent"] == 1 and "forbidden thing" in r.text for r in attacks)
    assert all(r.labels == {"harmful_intent": 0} and "forbidden thing" not in r.text for r in twins)
    assert all("jailbreak" not in r.labels for r in attacks)  # role-play rewrites are not labelled for it


def test_held_out_seeds_use_templates_never_used_in_training() -> None:
    rows = augment_harmful(SEEDS, seed=5)
    heads = {style: tpls[-1].split("{")[0][:25] for style, tpls in TEMPLATES.items()}
    for r in rows:
        if r.style in heads and r.kind == "stylised" and heads[r.style]:
            reserved = r.text.startswith(heads[r.style])
            assert reserved == (split_of(r) != "train"), (r.style, split_of(r))


def test_augmentation_is_deterministic() -> None:
    assert [r.text for r in augment_harmful(SEEDS, seed=9)] == [r.text for r in augment_harmful(SEEDS, seed=9)]


def test_indirect_injections_come_with_clean_twins() -> None:
    docs = [
        Example(
            text=f"Paris is the capital of France. It has {i} museums. The river is the Seine.",
            source="wikihop",
            group=f"b:{i}",
            labels={"injection": 0},
            role="tool",
            kind="document",
        )
        for i in range(20)
    ]
    rows = indirect_injections(docs, seed=1, per_doc=1.0)
    attacked = [r for r in rows if r.labels["injection"] == 1]
    clean = [r for r in rows if r.labels["injection"] == 0]
    assert len(attacked) == len(clean) >= 20
    groups = {r.group for r in clean}
    assert all(r.group in groups for r in attacked)
    assert all(r.role == "tool" for r in rows)
    # the injected text contains the clean document's sentences plus something else
    doc_attacks = [r for r in attacked if r.source == "synthetic_indirect" and r.group.startswith("b:")]
    assert all(len(r.text) > len(docs[0].text) - 5 for r in doc_attacks)


def test_benign_lookalikes_are_benign_for_every_head() -> None:
    rows = benign_lookalikes()
    assert len(rows) > 50
    assert all(set(r.labels.values()) == {0} for r in rows)
    assert any("kill" in r.text for r in rows)


def test_real_loaders_split_by_seed_and_hold_out_benign_sources(shared_datasets: Path) -> None:
    from bartizan.train.data import load_all

    rows = load_all(shared_datasets)
    assert len(rows) > 20000
    for r in rows:
        if r.source in HELD_OUT_BENIGN_SOURCES or r.source.startswith("xstest"):
            assert split_of(r) != "train"
    heads = {h for r in rows for h, v in r.labels.items() if v == 1}
    assert heads == {"injection", "jailbreak", "harmful_intent"}
    # jailbreakbench artifacts share their behaviour's group, so all methods of one behaviour share a side
    jbb = [r for r in rows if r.source.startswith("jbb_") and r.labels.get("jailbreak") == 1]
    sides: dict[str, set[str]] = {}
    for r in jbb:
        sides.setdefault(r.group, set()).add(split_of(r))
    assert jbb and all(len(v) == 1 for v in sides.values())
