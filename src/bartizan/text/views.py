"""De-obfuscated views of one message, computed lazily, once, and shared by every detector.

A view is a string plus a map back to the text it was derived from; `View.to_original` follows the chain
of parents, so a detector that matches a base64 payload inside a homoglyph-folded text reports the span of
the base64 run in what the user actually sent.

    original ── normalized (NFKD, confusables, invisible characters dropped)
                  ├─ compact   (letter-spaced words joined: "i g n o r e" -> "ignore")
                  ├─ leet      (0->o, 1->i, 3->e, 4->a, 5->s, 7->t, @->a, $->s)
                  ├─ rot13
                  ├─ reversed
                  └─ base64 / hex / url / html  (decoded, folded, and decoded again up to a depth limit)
             └─ tags       (text smuggled in Unicode tag characters U+E0020..U+E007E)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from bartizan.text import fastre
from bartizan.text.decoders import DECODERS, substitute
from bartizan.text.spanmap import ReversedMap, SpanMap
from bartizan.text.unicode import Hidden, fold
from bartizan.types import Span


class _Map(Protocol):
    def to_parent(self, start: int, end: int) -> tuple[int, int]: ...


@dataclass(slots=True, eq=False)
class View:
    """One way of reading a message."""

    name: str
    text: str
    parent: View | None = None
    map: _Map | None = None
    depth: int = 0

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        view: View = self
        a, b = start, end
        while view.parent is not None and view.map is not None:
            a, b = view.map.to_parent(a, b)
            view = view.parent
        return a, b

    def span(self, start: int, end: int) -> Span:
        a, b = self.to_original(start, end)
        return Span(a, b)

    @property
    def derived(self) -> bool:
        return self.parent is not None


_LEET = str.maketrans("0134578@$", "oieastbas")
_LEET_HINT = fastre.compile(r"[A-Za-z][013457@$]|[013457@$][A-Za-z]")
# Letter-spaced words ("i g n o r e", "i.g.n.o.r.e"): four or more single letters with separators.
_SPACED = fastre.compile(r"\b[A-Za-z](?:[ ._*|/\-]{1,3}[A-Za-z]){3,}\b")
_ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ROT13 = str.maketrans(_ALPHA, "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")
_ROT13_BYTES = bytes.maketrans(_ALPHA.encode(), b"NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")
_LEET_BYTES = bytes.maketrans(b"0134578@$", b"oieastbas")


def _translate(text: str, table: dict[int, int], byte_table: bytes) -> str:
    """str.translate, through bytes.translate (a C table lookup) when the text is ASCII."""
    if text.isascii():
        return text.encode("ascii").translate(byte_table).decode("ascii")
    return text.translate(table)


_SEPARATORS = re.compile(r"[ ._*|/\-]+")


def _compact_repl(m: Any) -> str:
    """Join the letters; a gap wider than the narrowest one is a word break and stays one space."""
    run = m.group()
    narrowest = min(len(g) for g in _SEPARATORS.findall(run))
    return _SEPARATORS.sub(lambda g: " " if len(g.group()) > narrowest else "", run)


@dataclass(frozen=True, slots=True)
class ViewLimits:
    """Bounds on de-obfuscation work for one message."""

    max_decode_depth: int = 3
    max_decoded_chars: int = 1_000_000
    max_views: int = 32


class TextViews:
    """All views of one text. Each is built on first use and then reused by every detector."""

    def __init__(self, text: str, limits: ViewLimits | None = None) -> None:
        self.limits = limits or ViewLimits()
        self.original = View("original", text)
        self._folded: tuple[View, Hidden] | None = None
        self._cache: dict[str, View | None] = {}
        self._decoded: list[View] | None = None
        self.truncated = False  # set when a limit stopped decoding

    # --- folding ------------------------------------------------------------------------------------
    def _fold(self) -> tuple[View, Hidden]:
        if self._folded is None:
            text, smap, hidden = fold(self.original.text)
            if text is self.original.text or text == self.original.text:
                view = self.original
            else:
                view = View("normalized", text, self.original, smap)
            self._folded = (view, hidden)
        return self._folded

    @property
    def normalized(self) -> View:
        """The folded text; the original view itself when folding changes nothing."""
        return self._fold()[0]

    @property
    def hidden(self) -> Hidden:
        return self._fold()[1]

    # --- whole-text transforms ----------------------------------------------------------------------
    def _derived(self, name: str) -> View | None:
        if name in self._cache:
            return self._cache[name]
        base = self.normalized
        text = base.text
        view: View | None = None
        if name == "compact":
            out = substitute(text, _SPACED, _compact_repl)
            if out is not None:
                view = View("compact", out[0], base, out[1])
        elif name == "leet":
            if _LEET_HINT.search(text):
                view = View("leet", _translate(text, _LEET, _LEET_BYTES), base, SpanMap.identity(len(text)))
        elif name == "rot13":
            if any(c.isalpha() for c in text[:4096]) or len(text) > 4096:
                view = View("rot13", _translate(text, _ROT13, _ROT13_BYTES), base, SpanMap.identity(len(text)))
        elif name == "reversed":
            if text:
                view = View("reversed", text[::-1], base, ReversedMap(len(text)))
        elif name == "tags":
            hidden = self.hidden
            if hidden.tag_spans:
                smap = SpanMap()
                pos = 0
                for a, b in hidden.tag_spans:
                    smap.add(0, a - pos)
                    smap.add(b - a, b - a)
                    pos = b
                smap.add(0, len(self.original.text) - pos)
                view = View("tags", "".join(hidden.tag_text), self.original, smap)
        else:
            raise KeyError(name)
        self._cache[name] = view
        return view

    @property
    def compact(self) -> View | None:
        return self._derived("compact")

    @property
    def leet(self) -> View | None:
        return self._derived("leet")

    @property
    def rot13(self) -> View | None:
        return self._derived("rot13")

    @property
    def reversed(self) -> View | None:
        return self._derived("reversed")

    @property
    def tags(self) -> View | None:
        return self._derived("tags")

    # --- decoded payloads ---------------------------------------------------------------------------
    def decoded(self) -> list[View]:
        """Views of encoded payloads (base64, hex, URL, HTML entities), nested up to the depth limit."""
        if self._decoded is None:
            self._decoded = self._decode_all()
        return self._decoded

    def _decode_all(self) -> list[View]:
        out: list[View] = []
        budget = self.limits.max_decoded_chars
        frontier = [self.normalized]
        tags = self.tags
        if tags is not None:
            frontier.append(tags)
        for depth in range(1, self.limits.max_decode_depth + 1):
            nxt: list[View] = []
            for parent in frontier:
                for name, decode in DECODERS.items():
                    if len(out) >= self.limits.max_views or budget <= 0:
                        self.truncated = True
                        return out
                    result = decode(parent.text)
                    if result is None:
                        continue
                    text, smap = result
                    if len(text) > budget:
                        self.truncated = True
                        continue
                    budget -= len(text)
                    prefix = (
                        "" if parent.depth == 0 and parent.name in ("original", "normalized") else parent.name + ">"
                    )
                    view = View(prefix + name, text, parent, smap, depth)
                    if not text.isascii():
                        ftext, fmap, _ = fold(text)
                        if ftext != text:
                            view = View(view.name + ">normalized", ftext, view, fmap, depth)
                    out.append(view)
                    nxt.append(view)
            frontier = nxt
            if not frontier:
                break
        return out

    # --- iteration ----------------------------------------------------------------------------------
    def all(self) -> Iterator[View]:
        """Every distinct view, original first. Builds the lazy ones."""
        yield self.original
        seen = {id(self.original)}
        for view in (self.normalized, self.compact, self.tags, self.leet, self.rot13, self.reversed, *self.decoded()):
            if view is not None and id(view) not in seen:
                seen.add(id(view))
                yield view

    def plain(self) -> Iterator[View]:
        """The original and the folded text only: for detectors that look for values, not instructions."""
        yield self.original
        if self.normalized is not self.original:
            yield self.normalized
