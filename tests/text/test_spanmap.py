from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bartizan.text.spanmap import ReversedMap, SliceMap, SpanMap


def test_identity_maps_to_itself() -> None:
    m = SpanMap.identity(10)
    assert m.to_parent(2, 5) == (2, 5)
    assert m.segments == 1


def test_linear_segments_merge() -> None:
    m = SpanMap()
    for _ in range(1000):
        m.add(1, 1)
    assert m.segments == 1
    assert m.to_parent(10, 20) == (10, 20)


def test_nonlinear_segment_maps_to_whole_source() -> None:
    m = SpanMap()
    m.add(3, 3)  # "ab " unchanged
    m.add(5, 12)  # 12 encoded chars decoded to 5
    m.add(2, 2)
    assert m.to_parent(0, 2) == (0, 2)
    assert m.to_parent(4, 5) == (3, 15)
    assert m.to_parent(2, 9) == (2, 16)


def test_deletion_keeps_neighbours_exact() -> None:
    # "ig<ZW>nore": the zero-width character at 2 was dropped.
    m = SpanMap()
    m.add(2, 2)
    m.add(0, 1)
    m.add(4, 4)
    assert m.to_parent(0, 6) == (0, 7)
    assert m.to_parent(2, 6) == (3, 7)
    assert m.to_parent(0, 2) == (0, 2)


def test_empty_range_maps_to_point() -> None:
    m = SpanMap()
    m.add(2, 2)
    m.add(1, 4)
    assert m.to_parent(2, 2) == (2, 2)
    assert m.to_parent(3, 3) == (6, 6)


def test_reversed_and_slice_maps() -> None:
    assert ReversedMap(10).to_parent(0, 3) == (7, 10)
    assert SliceMap(5, None, 4).to_parent(1, 3) == (6, 8)


segments = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=40)


@given(segments, st.data())
def test_any_range_maps_inside_parent_and_monotone(segs: list[tuple[int, int]], data: st.DataObject) -> None:
    m = SpanMap()
    for v, p in segs:
        m.add(v, p)
    n = m.view_len
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    pa, pb = m.to_parent(a, b)
    assert 0 <= pa <= pb <= m.parent_len
    if b < n:
        qa, qb = m.to_parent(a, b + 1)
        assert qa == pa and qb >= pb
