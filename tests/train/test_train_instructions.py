"""Composed attacker instructions and human-addressed notes (`bartizan.train.instructions`)."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.train.data import Example, split_of
from bartizan.train.injections import _INSTRUCTIONS
from bartizan.train.instructions import compose_instruction, compose_note, composed_injections


def _docs(n: int) -> list[Example]:
    docs = []
    for i in range(n):
        if i % 2:
            text = json.dumps({"name": f"get_weather_{i}", "description": "Weather for a city. Returns Celsius."})
            kind = "tool_output"
        else:
            text = f"Lyon is a city in France. It has {i} bridges over the Rhone. The old town is listed."
            kind = "document"
        docs.append(
            Example(text=text, source="wikihop", group=f"b:{i}", labels={"injection": 0}, role="tool", kind=kind)
        )
    return docs


def test_composition_gives_thousands_of_distinct_instructions_none_hand_written() -> None:
    rng = random.Random(5)
    made = {compose_instruction(rng) for _ in range(3000)}
    assert len(made) > 2500
    assert not made & set(_INSTRUCTIONS)  # the held-out hand-written pool is never produced verbatim


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_composed_sentences_are_filled_and_non_empty(seed: int) -> None:
    rng = random.Random(seed)
    for text in (compose_instruction(rng), compose_note(rng)):
        assert text.strip()
        assert "{" not in text.replace('{"role"', "")  # every slot filled; the JSON wrapper's brace aside


def test_only_training_documents_are_used_and_groups_are_kept() -> None:
    docs = _docs(60)
    rows = composed_injections(docs, seed=3)
    train_groups = {d.group for d in docs if split_of(d) == "train"}
    assert train_groups and len(train_groups) < len(docs)  # the sample has documents on every side
    assert {r.group for r in rows} == train_groups
    assert all(split_of(r) == "train" and r.role == "tool" for r in rows)


def test_each_document_gets_an_attack_a_note_twin_and_negative_sentences() -> None:
    docs = [d for d in _docs(60) if split_of(d) == "train"]
    rows = composed_injections(docs, seed=3)
    by_source: dict[str, list[Example]] = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    assert len(by_source["composed_indirect"]) == len(by_source["composed_note"]) == len(docs)
    assert all(r.labels == {"injection": 1} for r in by_source["composed_indirect"])
    negatives = by_source["composed_note"] + by_source["composed_note_sentence"] + by_source["doc_sentence"]
    assert all(r.labels == {"injection": 0} for r in negatives)
    assert "composed_sentence" not in by_source  # an instruction alone is not an injection in a user turn
    # the attacked copy keeps its document: JSON stays JSON with the same keys or one more (the instruction
    # fills a note/description/comment/message field), prose keeps its sentences
    for doc, attacked in zip(docs, by_source["composed_indirect"], strict=True):
        if doc.text.startswith("{"):
            before, after = json.loads(doc.text), json.loads(attacked.text)
            assert set(before) <= set(after) and after != before
        else:
            assert all(part in attacked.text for part in doc.text.split(". ")[1:])


def test_composition_is_deterministic_given_the_seed() -> None:
    docs = _docs(40)
    assert [r.text for r in composed_injections(docs, seed=8)] == [r.text for r in composed_injections(docs, seed=8)]
    assert [r.text for r in composed_injections(docs, seed=8)] != [r.text for r in composed_injections(docs, seed=9)]
