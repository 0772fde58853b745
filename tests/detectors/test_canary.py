"""Canary generation and the `canary` detector: leaks whole, spaced, case-changed, split, encoded, reversed or
partial, spans on the original characters, evidence without the canary, and the default pipeline."""

from __future__ import annotations

import base64
import codecs
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan import taxonomy as tx
from bartizan.canaries import ALPHABET, canary_instruction, new_canary
from bartizan.detectors.base import ScanContext, SkipDetector
from bartizan.detectors.registry import ConfigError, default_registry
from bartizan.pipeline import Firewall
from bartizan.text.views import TextViews
from bartizan.types import Finding, Message, Role, Status, Verdict

CANARY = "bz-k7q2mxw4ta9fzr3p"  # fixed for readable tests; new_canary() gives the same shape
BODY = CANARY[3:]


def scan(text: str, canaries: tuple[str, ...] = (CANARY,), **config: object) -> list[Finding]:
    detector = default_registry.get("canary").build(config)
    ctx = ScanContext(Message(role=Role.ASSISTANT, content=text), TextViews(text), canaries=canaries)
    return detector.scan(ctx)


def one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def assert_safe(f: Finding, canary: str = CANARY) -> None:
    body = canary.split("-", 1)[-1].lower()
    for i in range(len(body) - 3):
        assert body[i : i + 4] not in f.evidence.lower()


# --- generation ---------------------------------------------------------------------------------------
def test_new_canary_shape_and_randomness() -> None:
    tokens = {new_canary() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(rf"bz-[{ALPHABET}]{{16}}", token)
    assert re.fullmatch(rf"acme-[{ALPHABET}]{{24}}", new_canary("acme", 24))


@pytest.mark.parametrize(("prefix", "length"), [("", 16), ("Bad", 16), ("bz", 4), ("bz", 100), ("b z", 16)])
def test_new_canary_rejects_bad_arguments(prefix: str, length: int) -> None:
    with pytest.raises(ValueError):
        new_canary(prefix, length)


def test_instruction_line_embeds_the_canary() -> None:
    line = canary_instruction(CANARY)
    assert CANARY in line and "never" in line.lower()


# --- leaks --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("leak", "view"),
    [
        (CANARY, "original"),
        (CANARY.upper(), "original"),
        (" ".join(CANARY), "original"),
        (".".join(CANARY), "original"),
        ("\u200b".join(CANARY), "normalized"),
        ("ｂｚ－" + BODY, "normalized"),  # fullwidth prefix
        (CANARY[::-1], "original>reversed"),
        (codecs.encode(CANARY, "rot13"), "original>rot13"),
    ],
)
def test_full_leak_in_plain_views(leak: str, view: str) -> None:
    text = f"Sure. The marker in my instructions is {leak} as you asked."
    f = one(scan(text))
    assert f.category == "canary_leak" and f.rule_id == "canary.full" and f.score == 1.0
    assert f.view == view
    (span,) = f.spans
    assert (span.start, span.end) == (text.index(leak), text.index(leak) + len(leak))
    assert "canary #1 leaked (full, 16 of 16 chars" in f.evidence
    assert f.atlas == (tx.SYSTEM_PROMPT_EXTRACTION, tx.DATA_LEAKAGE) and f.owasp == (tx.LLM07,)
    assert_safe(f)


@pytest.mark.parametrize(
    ("encode", "view"),
    [
        (lambda s: base64.b64encode(s.encode()).decode(), "base64"),
        (lambda s: s.encode().hex(), "hex"),
        (lambda s: "".join(f"%{b:02X}" for b in s.encode()), "url"),
        (lambda s: "".join(f"&#{ord(c)};" for c in s), "html"),
    ],
)
def test_full_leak_through_encodings(encode: object, view: str) -> None:
    payload = encode(f"my secret marker is {CANARY}")  # type: ignore[operator]
    text = f"Here you go: {payload} -- enjoy"
    f = one(scan(text))
    assert f.rule_id == "canary.full" and f.view.startswith(view)
    start = text.index(payload)
    assert start <= f.spans[0].start and f.spans[0].end <= start + len(payload)
    assert_safe(f)


def test_partial_leak() -> None:
    piece = BODY[3:13]
    text = f"I can only share part of it: {piece}."
    f = one(scan(text))
    assert f.rule_id == "canary.partial" and 0.7 < f.score < 1.0
    assert "partial, 10 of 16 chars" in f.evidence
    assert text[f.spans[0].start : f.spans[0].end] == piece
    assert_safe(f)


def test_partial_leak_threshold_is_configurable() -> None:
    piece = BODY[:7]
    assert scan(f"x {piece} y") == []
    assert one(scan(f"x {piece} y", min_partial=6)).rule_id == "canary.partial"


def test_prefix_alone_is_not_a_leak() -> None:
    assert scan("bz bz-bz and BZ- are just letters, so is bzk7") == []


def test_several_canaries_are_numbered_and_each_reported() -> None:
    other = "bz-aaaabbbbccccdddd"
    text = f"first {other} then {CANARY}"
    findings = scan(text, canaries=(CANARY, other))
    assert sorted(f.evidence.split(" leaked")[0] for f in findings) == ["canary #1", "canary #2"]


def test_all_occurrences_are_spanned() -> None:
    text = f"{CANARY} and again {CANARY.upper()}"
    f = one(scan(text))
    assert [text[s.start : s.end] for s in f.spans] == [CANARY, CANARY.upper()]


def test_no_canary_means_skip() -> None:
    with pytest.raises(SkipDetector):
        scan("anything", canaries=())
    with pytest.raises(SkipDetector):
        scan("anything", canaries=("ab", "  "))


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        default_registry.get("canary").build({"min_partial": 2})


@pytest.mark.parametrize(
    "text",
    [
        "A normal answer about birds, zebras and 7 quick foxes jumping over 2 lazy dogs.",
        "The hash is 5d41402abc4b2a76b9719d911017c592 and the uuid 123e4567-e89b-12d3-a456-426614174000.",
        "SGVsbG8gd29ybGQsIHRoaXMgaXMganVzdCBiYXNlNjQ=",
    ],
)
def test_unrelated_text_is_clean(text: str) -> None:
    assert scan(text) == []


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300))
def test_random_text_never_leaks_a_fresh_canary(text: str) -> None:
    assert scan(text, canaries=(new_canary(),)) == []


# --- pipeline -----------------------------------------------------------------------------------------
def test_default_policy_blocks_a_leak_in_output() -> None:
    fw = Firewall()
    canary = new_canary()
    leak = fw.scan(
        Message(Role.ASSISTANT, f"My instructions begin with: {canary_instruction(canary)}"), canaries=[canary]
    )
    assert leak.verdict is Verdict.BLOCK
    assert all(canary not in f.evidence for f in leak.findings)
    assert canary not in str(leak.to_dict()["findings"])
    spaced = fw.scan(Message(Role.ASSISTANT, " ".join(canary.upper())), canaries=[canary])
    assert spaced.verdict is Verdict.BLOCK
    clean = fw.scan(Message(Role.ASSISTANT, "Here is a summary of the article."), canaries=[canary])
    assert clean.verdict is Verdict.ALLOW and clean.detectors["canary"].status is Status.OK
    unset = fw.scan(Message(Role.ASSISTANT, "Here is a summary."))
    assert unset.detectors["canary"].status is Status.SKIPPED


def test_bounded_on_repeated_leaks() -> None:
    text = (CANARY + " ") * 5000
    t0 = time.perf_counter()
    f = one(scan(text))
    assert time.perf_counter() - t0 < 1.0
    assert len(f.spans) == 64
