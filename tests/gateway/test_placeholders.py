"""`PlaceholderRestorer`: the gateway's prompt placeholders put back in streamed text, whatever the split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.gateway.placeholders import PlaceholderRestorer, restore

MAPPING = {"[EMAIL_1]": "alice@example.com", "[EMAIL_12]": "zed@example.org", "[PHONE_1]": "+1 415 555 2671"}


def run(restorer: PlaceholderRestorer, chunks: list[str]) -> list[str]:
    """What the restorer emits after each chunk, then the flush."""
    return [restorer.feed(c) for c in chunks] + [restorer.flush()]


def test_every_two_and_three_way_split_of_a_placeholder_restores() -> None:
    text = "Mail [EMAIL_1] now."
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            out = run(PlaceholderRestorer(MAPPING), [text[:i], text[i:j], text[j:]])
            assert "".join(out) == "Mail alice@example.com now."


def test_a_trailing_partial_placeholder_is_held_and_nothing_else() -> None:
    r = PlaceholderRestorer(MAPPING)
    assert r.feed("Write to [EMA") == "Write to "
    assert r.pending == "[EMA"
    assert r.feed("IL_1] today") == "alice@example.com today"
    assert r.pending == ""


def test_text_that_cannot_become_a_placeholder_is_released_at_once() -> None:
    r = PlaceholderRestorer(MAPPING)
    assert r.feed("a [b] and [x") == "a [b] and [x"
    assert r.feed("list[0] = [EMAIL]") == "list[0] = [EMAIL]"
    assert r.feed("[") == ""  # may still become one
    assert r.feed("]") == "[]"  # and now it cannot
    assert r.feed("[EMAIL_2") == "[EMAIL_2"  # no known placeholder starts like this


def test_unknown_placeholders_pass_through_unchanged() -> None:
    r = PlaceholderRestorer(MAPPING)
    assert "".join(run(r, ["[EMAIL_9] and [CARD_1]", " and [PHONE_1]"])) == "[EMAIL_9] and [CARD_1] and +1 415 555 2671"


def test_the_longer_of_two_placeholders_with_a_common_start_wins() -> None:
    r = PlaceholderRestorer(MAPPING)
    assert r.feed("[EMAIL_1") == ""
    assert r.feed("2] and [EMAIL_1") == "zed@example.org and "
    assert r.feed("]") == "alice@example.com"


def test_a_complete_placeholder_that_may_grow_waits_then_flushes_restored() -> None:
    r = PlaceholderRestorer({"[A]": "one", "[A]B": "two"})
    assert r.feed("x [A]") == "x "
    assert r.flush() == "one"
    assert "".join(run(PlaceholderRestorer({"[A]": "one", "[A]B": "two"}), ["[A]", "B"])) == "two"


def test_flush_releases_a_dangling_partial_as_it_is() -> None:
    r = PlaceholderRestorer(MAPPING)
    assert r.feed("end [PHO") == "end "
    assert r.flush() == "[PHO"
    assert r.flush() == ""
    assert r.feed("[PHONE_1]") == "+1 415 555 2671"  # usable after a flush


def test_restored_values_are_not_restored_again() -> None:
    m = {"[A_1]": "[A_2]", "[A_2]": "x"}
    assert "".join(run(PlaceholderRestorer(m), ["[A_", "1]"])) == "[A_2]"
    assert restore("[A_1][A_2]", m) == "[A_2]x"


def test_an_empty_mapping_passes_everything() -> None:
    r = PlaceholderRestorer({})
    assert r.feed("[EMA") == "[EMA"
    assert r.flush() == ""
    assert restore("[EMAIL_1]", {}) == "[EMAIL_1]"


@pytest.mark.parametrize("text", ["", "plain", "[EMAIL_1][EMAIL_12][EMAIL_1", "[[EMAIL_1]]"])
def test_restore_one_shot_matches_the_stream(text: str) -> None:
    assert "".join(run(PlaceholderRestorer(MAPPING), list(text))) == restore(text, MAPPING)


_PIECES = st.sampled_from(["[EMAIL_1]", "[EMAIL_12]", "[PHONE_1]", "[EMAIL_", "[", "]", "_1", "E", "a b", "[X_1]"])


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=12), cuts=st.lists(st.integers(0, 200), max_size=10))
def test_any_chunking_gives_the_one_shot_result_and_holds_only_possible_placeholders(
    pieces: list[str], cuts: list[int]
) -> None:
    text = "".join(pieces)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    r = PlaceholderRestorer(MAPPING)
    out = []
    for a, b in itertools.pairwise(bounds):
        out.append(r.feed(text[a:b]))
        # Held back only while it can still become a known placeholder.
        assert r.pending == "" or any(k.startswith(r.pending) for k in MAPPING)
    out.append(r.flush())
    assert "".join(out) == restore(text, MAPPING)
