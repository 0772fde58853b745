"""Unicode folding for detection: invisible characters, Unicode tags, confusables, compatibility forms.

`fold` turns a text into its detection skeleton — what a reader (or a model) would see, in plain ASCII
where a lookalike exists — and returns what it removed so that the hidden-text detector can report it.
The skeleton is never shown to anyone; it only feeds detectors, and every offset maps back.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from bartizan.text.spanmap import SpanMap

# Characters that render as nothing (or only steer rendering) but carry through to a model's tokenizer.
ZERO_WIDTH = frozenset(
    "\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad\u034f\u2061\u2062\u2063\u2064\u115f\u1160\u3164\uffa0\u17b4\u17b5"
)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
TAG_FIRST, TAG_LAST = 0xE0000, 0xE007F

_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")

INVISIBLE = "invisible"
BIDI = "bidi"
TAG = "tag"
VARIATION = "variation_selector"


@dataclass(slots=True)
class Hidden:
    """What folding removed: runs of invisible characters and the text smuggled in Unicode tags."""

    runs: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, kind) in the original
    tag_text: list[str] = field(default_factory=list)
    tag_spans: list[tuple[int, int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def note(self, start: int, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.runs and self.runs[-1][1] == start and self.runs[-1][2] == kind:
            s, _, k = self.runs[-1]
            self.runs[-1] = (s, start + 1, k)
        else:
            self.runs.append((start, start + 1, kind))

    @property
    def any(self) -> bool:
        return bool(self.runs)


@lru_cache(maxsize=1)
def confusables() -> dict[str, str]:
    """The packaged confusables table, loaded on first use."""
    table: dict[str, str] = {}
    data = resources.files("bartizan.text").joinpath("confusables.tsv").read_text(encoding="utf-8")
    for line in data.splitlines():
        if not line or line.startswith("#"):
            continue
        cp, _, repl = line.partition("\t")
        table[chr(int(cp, 16))] = repl
    return table


def classify_invisible(ch: str) -> str | None:
    """The kind of an invisible character, or None for a visible one."""
    cp = ord(ch)
    if TAG_FIRST <= cp <= TAG_LAST:
        return TAG
    if ch in ZERO_WIDTH:
        return INVISIBLE
    if ch in BIDI_CONTROLS:
        return BIDI
    if 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF:
        return VARIATION
    if unicodedata.category(ch) == "Cf":
        return INVISIBLE
    return None


@lru_cache(maxsize=65536)
def fold_char(ch: str) -> str:
    """Detection skeleton of one visible non-ASCII character (may be empty or several characters)."""
    table = confusables()
    hit = table.get(ch)
    if hit is not None:
        return hit
    decomposed = unicodedata.normalize("NFKD", ch)
    out = []
    for c in decomposed:
        if unicodedata.combining(c):
            continue
        out.append(table.get(c, c))
    folded = "".join(out)
    if folded.isspace():
        return " "
    return folded


@lru_cache(maxsize=65536)
def one_to_one(ch: str) -> str | None:
    """The single visible character `ch` folds to, or None when folding removes or expands it."""
    if classify_invisible(ch) is not None:
        return None
    folded = fold_char(ch)
    return folded if len(folded) == 1 else None


def fold(text: str) -> tuple[str, SpanMap, Hidden]:
    """Fold `text` into its detection skeleton. Linear in the length of the text."""
    hidden = Hidden()
    if text.isascii():
        return text, SpanMap.identity(len(text)), hidden
    # Fast path: curly quotes, accents and homoglyphs fold one character to one, so the offsets do not
    # move and one C-level translate does the work. Checked over the distinct characters only.
    distinct = set(text)
    if len(distinct) <= 512:
        table: dict[int, str] = {}
        for ch in distinct:
            if ch.isascii():
                continue
            repl = one_to_one(ch)
            if repl is None:
                break
            table[ord(ch)] = repl
        else:
            return text.translate(table), SpanMap.identity(len(text)), hidden
    pieces: list[str] = []
    smap = SpanMap()
    pos = 0
    for run in _NON_ASCII_RUN.finditer(text):
        a, b = run.span()
        if a > pos:
            pieces.append(text[pos:a])
            smap.add(a - pos, a - pos)
        for i in range(a, b):
            ch = text[i]
            kind = classify_invisible(ch)
            if kind is None:
                repl = fold_char(ch)
                pieces.append(repl)
                smap.add(len(repl), 1)
                continue
            hidden.note(i, kind)
            if kind == TAG:
                cp = ord(ch)
                if 0xE0020 <= cp <= 0xE007E:
                    hidden.tag_text.append(chr(cp - 0xE0000))
                    if hidden.tag_spans and hidden.tag_spans[-1][1] == i:
                        hidden.tag_spans[-1] = (hidden.tag_spans[-1][0], i + 1)
                    else:
                        hidden.tag_spans.append((i, i + 1))
            smap.add(0, 1)
        pos = b
    if pos < len(text):
        pieces.append(text[pos:])
        smap.add(len(text) - pos, len(text) - pos)
    return "".join(pieces), smap, hidden
