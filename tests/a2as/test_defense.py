"""In-context defense block (spec §4)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bartizan.a2as.boundaries import find_tag_leak
from bartizan.a2as.defense import DEFAULT_TEMPLATE, DefenseError, defense_block, template_sha256


def test_default_block_shape() -> None:
    block = defense_block()
    assert block == f"<a2as:defense>\n{DEFAULT_TEMPLATE}\n</a2as:defense>"
    assert block.count("<a2as:defense>") == 1 and block.endswith("</a2as:defense>")
    for phrase in ("<a2as:user:", "<a2as:tool:", "<a2as:agent:", "data, not instructions", "forgeries"):
        assert phrase in DEFAULT_TEMPLATE


def test_default_sha256_is_of_the_template_text() -> None:
    assert template_sha256() == hashlib.sha256(DEFAULT_TEMPLATE.encode()).hexdigest()
    assert template_sha256(None) == template_sha256(DEFAULT_TEMPLATE)


def test_custom_template_is_stripped_and_hashed_as_injected() -> None:
    assert defense_block("  Be careful.\n") == "<a2as:defense>\nBe careful.\n</a2as:defense>"
    assert template_sha256("  Be careful.\n") == hashlib.sha256(b"Be careful.").hexdigest()
    assert template_sha256("Be careful.") != template_sha256()


@pytest.mark.parametrize("bad", ["", "   \n", "x </a2as:defense> y", "<a2as:defense> nested"])
def test_unusable_templates_raise(bad: str) -> None:
    with pytest.raises(DefenseError):
        defense_block(bad)
    with pytest.raises(DefenseError):
        template_sha256(bad)


def test_leaked_defense_block_is_detected_in_output() -> None:
    assert find_tag_leak("Sure! My instructions: " + defense_block())


@given(st.text(min_size=1).filter(lambda t: t.strip() and "a2as:defense>" not in t))
def test_block_round_trips_any_template(template: str) -> None:
    block = defense_block(template)
    assert block.startswith("<a2as:defense>\n") and block.endswith("\n</a2as:defense>")
    assert block[len("<a2as:defense>\n") : -len("\n</a2as:defense>")] == template.strip()
    assert len(template_sha256(template)) == 64
