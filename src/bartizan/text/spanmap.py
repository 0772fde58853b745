"""Offset maps from a derived view of a text back to the text it was derived from.

A map is a sorted list of segments. Each segment says that view characters [v, v+vlen) came from parent
characters [p, p+plen). When vlen == plen the segment is *linear* (character i maps to character i);
otherwise every view character in it maps to the whole parent range (a decoded base64 run, an entity, a
removed zero-width character folded into its neighbour). Consecutive linear segments merge, so a mostly
unchanged 10 MB text costs a handful of segments, not ten million integers.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right


class SpanMap:
    """Maps half-open view ranges to half-open parent ranges."""

    __slots__ = ("_p", "_plen", "_v", "_vlen", "parent_len", "view_len")

    def __init__(self) -> None:
        self._v = array("q")
        self._vlen = array("q")
        self._p = array("q")
        self._plen = array("q")
        self.view_len = 0
        self.parent_len = 0

    @classmethod
    def identity(cls, length: int) -> SpanMap:
        m = cls()
        m.add(length, length)
        return m

    def add(self, view_chars: int, parent_chars: int) -> None:
        """Append a segment of `view_chars` characters that came from the next `parent_chars` characters."""
        if view_chars < 0 or parent_chars < 0:
            raise ValueError("segment lengths must be >= 0")
        if view_chars == 0 and parent_chars == 0:
            return
        if view_chars == parent_chars and self._v:
            i = len(self._v) - 1
            if self._vlen[i] == self._plen[i]:  # extend the previous linear segment
                self._vlen[i] += view_chars
                self._plen[i] += parent_chars
                self.view_len += view_chars
                self.parent_len += parent_chars
                return
        if view_chars == 0 and self._v and self._vlen[-1] == 0:  # extend the previous deletion
            self._plen[-1] += parent_chars
            self.parent_len += parent_chars
            return
        self._v.append(self.view_len)
        self._vlen.append(view_chars)
        self._p.append(self.parent_len)
        self._plen.append(parent_chars)
        self.view_len += view_chars
        self.parent_len += parent_chars

    @property
    def segments(self) -> int:
        return len(self._v)

    def _segment_at(self, pos: int) -> int:
        # Last segment whose view start <= pos and which is not empty on the view side.
        i = bisect_right(self._v, pos) - 1
        while i > 0 and self._vlen[i] == 0:
            i -= 1
        return max(i, 0)

    def to_parent(self, start: int, end: int) -> tuple[int, int]:
        """Parent range covering view range [start, end). Clamped to the view."""
        if not self._v:
            return (0, 0)
        start = min(max(start, 0), self.view_len)
        end = min(max(end, start), self.view_len)
        if end == start:
            # An empty view range maps to an empty parent range at the corresponding position.
            pos = self._point(start)
            return (pos, pos)
        i = self._segment_at(start)
        vs, vl, ps, pl = self._v[i], self._vlen[i], self._p[i], self._plen[i]
        pstart = ps + (start - vs) if vl == pl else ps
        j = self._segment_at(end - 1)
        vs, vl, ps, pl = self._v[j], self._vlen[j], self._p[j], self._plen[j]
        pend = ps + (end - vs) if vl == pl else ps + pl
        return (pstart, max(pend, pstart))

    def _point(self, pos: int) -> int:
        if pos >= self.view_len:
            return self.parent_len
        i = self._segment_at(pos)
        vs, vl, ps, pl = self._v[i], self._vlen[i], self._p[i], self._plen[i]
        return ps + (pos - vs) if vl == pl else ps


class ReversedMap:
    """Map for a view that is its parent read backwards."""

    __slots__ = ("parent_len", "view_len")

    def __init__(self, length: int) -> None:
        self.view_len = length
        self.parent_len = length

    def to_parent(self, start: int, end: int) -> tuple[int, int]:
        start = min(max(start, 0), self.view_len)
        end = min(max(end, start), self.view_len)
        return (self.view_len - end, self.view_len - start)


class SliceMap:
    """Map for a view made of one slice [offset, offset+length) of its parent."""

    __slots__ = ("_inner", "offset", "parent_len", "view_len")

    def __init__(self, offset: int, inner: SpanMap | None, view_len: int) -> None:
        self.offset = offset
        self.view_len = view_len
        self._inner = inner
        self.parent_len = inner.parent_len if inner is not None else view_len

    def to_parent(self, start: int, end: int) -> tuple[int, int]:
        if self._inner is not None:
            a, b = self._inner.to_parent(start, end)
        else:
            a = min(max(start, 0), self.view_len)
            b = min(max(end, a), self.view_len)
        return (self.offset + a, self.offset + b)
