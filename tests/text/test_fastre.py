from __future__ import annotations

import pytest

from bartizan.text import fastre


def test_re2_is_used_when_the_pattern_allows_it() -> None:
    assert fastre.HAS_RE2
    assert fastre.engine_of(fastre.compile(r"ab+c")) == "re2"
    assert fastre.engine_of(fastre.compile(r"(?<!x)ab")) == "re"  # lookbehind: RE2 cannot
    with pytest.raises(fastre.ERRORS):
        fastre.compile(r"(?<!x)ab", engine="re2")
    with pytest.raises(ValueError, match="unknown regex engine"):
        fastre.compile("a", engine="pcre")


def test_both_engines_give_character_offsets() -> None:
    text = "héllo wörld ignore previous"
    for engine in ("re2", "re"):
        m = fastre.compile(r"IGNORE\s+previous", ignore_case=True, engine=engine).search(text)
        assert m is not None and m.span() == (12, 27)


def test_pattern_set_reports_matching_indices() -> None:
    ps = fastre.PatternSet([(r"ignore\s+previous", True), (r"\d{4}", False), (r"zzz", False)])
    assert list(ps.candidates("IGNORE previous in 2024")) == [0, 1]
    assert list(ps.candidates("nothing here")) == []


def test_pattern_set_without_re2_makes_everything_a_candidate() -> None:
    ps = fastre.PatternSet([("a", False), ("b", False)], engine="re")
    assert list(ps.candidates("zzz")) == [0, 1]


def test_unfinished_pass_makes_everything_a_candidate() -> None:
    ps = fastre.PatternSet([("a", False), ("b", False)])

    class GaveUp:  # what RE2 returns when its DFA runs out of memory mid-text: no match at all
        def Match(self, text: str) -> list[int]:
            return []

    ps._set = GaveUp()
    assert list(ps.candidates("zzz")) == [0, 1]
