"""Canary leaks: a marker planted in the system prompt showing up in output, whole or in part.

Every view is reduced to its *skeleton* (letters and digits only, lower case), and so is each canary, so
that spacing (``b z 7 f``), case, punctuation and zero-width characters between the characters no longer
matter. The skeleton of the folded text is searched for the canary read forwards, backwards and in ROT13;
the skeletons of base64, hex, URL and HTML-decoded views are searched too. A partial leak is any run of at
least `min_partial` consecutive characters of the canary's random part. Findings say which canary leaked
(by its position in `ctx.canaries`), how much of it and where, never its characters.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import Field

from bartizan import taxonomy as tx
from bartizan.canaries import DEFAULT_PREFIX
from bartizan.detectors.base import DetectorConfig, ScanContext, SkipDetector
from bartizan.detectors.registry import detector
from bartizan.text.views import View
from bartizan.types import Finding, Span

NAME = "canary"
CATEGORY = "canary_leak"
MIN_SKELETON = 6  # shorter canaries would match ordinary words
MAX_SPANS = 64  # spans reported per canary (a text may repeat a canary thousands of times)

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_DROP_ASCII_PUNCT = str.maketrans("", "", "".join(chr(i) for i in range(128) if not chr(i).isalnum()))
_ALNUM_RUN = re.compile(r"[0-9A-Za-z]+")

# How a leaked canary may be rewritten, as transforms of the canary's skeleton.
_TRANSFORMS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("", lambda s: s),
    ("reversed", lambda s: s[::-1]),
    ("rot13", lambda s: codecs.encode(s, "rot13")),
)


class CanaryConfig(DetectorConfig):
    min_partial: int = Field(
        default=8, ge=4, description="consecutive characters of the random part that count as a leak"
    )
    prefix: str = Field(
        default=DEFAULT_PREFIX, description="prefix before the random part, not counted in partial leaks"
    )
    decoded: bool = Field(default=True, description="also search base64, hex, URL and HTML-decoded views")


def skeleton(text: str) -> str:
    """Letters and digits of `text`, lower case (non-ASCII characters dropped)."""
    out = text.translate(_DROP_ASCII_PUNCT)  # several times faster than a regex on ASCII text
    if not out.isascii():
        out = _NOT_ALNUM.sub("", out)
    return out.lower()


@dataclass(frozen=True, slots=True)
class _Canary:
    index: int
    key: str  # skeleton of the whole canary
    body_start: int  # where the random part starts in `key`


@dataclass(frozen=True, slots=True)
class _Hit:
    canary: _Canary
    span: Span
    matched: int  # characters of the random part matched
    full: bool
    view: str


def _prepare(canaries: tuple[str, ...], prefix: str) -> list[_Canary]:
    out = []
    pre = skeleton(prefix)
    for i, raw in enumerate(canaries):
        key = skeleton(raw)
        if len(key) < MIN_SKELETON:
            continue
        body_start = len(pre) if pre and key.startswith(pre) and len(key) - len(pre) >= MIN_SKELETON else 0
        out.append(_Canary(i, key, body_start))
    return out


def _maximal_matches(hay: str, needle: str, min_len: int) -> set[tuple[int, int, int]]:
    """(hay_start, needle_start, length) of every maximal common run of at least `min_len` characters."""
    found: set[tuple[int, int, int]] = set()
    for i in range(len(needle) - min_len + 1):
        piece = needle[i : i + min_len]
        pos = hay.find(piece)
        while pos >= 0:
            hs, ns = pos, i
            while hs > 0 and ns > 0 and hay[hs - 1] == needle[ns - 1]:
                hs, ns = hs - 1, ns - 1
            length = min_len + (i - ns)
            while hs + length < len(hay) and ns + length < len(needle) and hay[hs + length] == needle[ns + length]:
                length += 1
            found.add((hs, ns, length))
            pos = hay.find(piece, pos + 1)
    return found


class _Skeleton:
    """A view's skeleton with the offsets to map skeleton positions back into the view."""

    __slots__ = ("_starts", "_view_starts", "text", "view")

    def __init__(self, view: View) -> None:
        self.view = view
        self.text = skeleton(view.text)
        self._starts: list[int] = []
        self._view_starts: list[int] = []

    def span(self, start: int, end: int) -> Span:
        if not self._starts:
            pos = 0
            for m in _ALNUM_RUN.finditer(self.view.text):
                self._starts.append(pos)
                self._view_starts.append(m.start())
                pos += m.end() - m.start()
        return self.view.span(self._to_view(start), self._to_view(end - 1) + 1)

    def _to_view(self, pos: int) -> int:
        i = bisect_right(self._starts, pos) - 1
        return self._view_starts[i] + (pos - self._starts[i])


@detector(
    NAME,
    config=CanaryConfig,
    categories=(CATEGORY,),
    description="A canary from the system prompt leaked in output: spaced, case-changed, encoded, reversed or partial.",
)
class Canary:
    """Finds the session's canaries in a message (whole or partial, through encodings)."""

    def __init__(self, config: CanaryConfig) -> None:
        self.config = config

    def scan(self, ctx: ScanContext) -> Iterable[Finding]:
        if not ctx.canaries:
            raise SkipDetector("no canary set for this session")
        canaries = _prepare(ctx.canaries, self.config.prefix)
        if not canaries:
            raise SkipDetector(f"no canary of at least {MIN_SKELETON} letters or digits")
        views = [ctx.views.normalized]
        if ctx.views.tags is not None:
            views.append(ctx.views.tags)
        if self.config.decoded:
            views.extend(ctx.views.decoded())
        hits: list[_Hit] = []
        for view in views:
            ctx.check_deadline()
            skel = _Skeleton(view)
            for canary in canaries:
                hits.extend(self._find(skel, canary))
        return [self._finding(group) for group in _by_canary(hits)]

    def _find(self, skel: _Skeleton, canary: _Canary) -> Iterable[_Hit]:
        key, n = canary.key, self.config.min_partial
        body_len = len(key) - canary.body_start
        for label, transform in _TRANSFORMS:
            needle = transform(key)
            # The random part's range inside the transformed needle.
            lo, hi = (0, body_len) if label == "reversed" else (canary.body_start, len(key))
            for hs, ns, length in _maximal_matches(skel.text, needle, min(n, len(key))):
                full = length == len(key)
                matched = max(0, min(ns + length, hi) - max(ns, lo))
                if full or (body_len >= n and matched >= n):
                    view = f"{skel.view.name}>{label}" if label else skel.view.name
                    yield _Hit(canary, skel.span(hs, hs + length), matched, full, view)

    def _finding(self, hits: list[_Hit]) -> Finding:
        best = max(hits, key=lambda h: (h.full, h.matched))
        canary = best.canary
        total = len(canary.key) - canary.body_start
        if best.full:
            kind, score = "full", 1.0
        else:
            kind, score = "partial", 0.7 + 0.3 * best.matched / total
        spans = tuple(sorted({h.span for h in hits}, key=lambda s: (s.start, s.end))[:MAX_SPANS])
        return Finding(
            detector=NAME,
            category=CATEGORY,
            score=min(score, 1.0),
            spans=spans,
            evidence=f"canary #{canary.index + 1} leaked ({kind}, {best.matched} of {total} chars, view {best.view})",
            rule_id=f"{NAME}.{kind}",
            view=best.view,
            atlas=(tx.SYSTEM_PROMPT_EXTRACTION, tx.DATA_LEAKAGE),
            owasp=(tx.LLM07,),
        )


def _by_canary(hits: list[_Hit]) -> list[list[_Hit]]:
    groups: dict[int, list[_Hit]] = {}
    for hit in hits:
        groups.setdefault(hit.canary.index, []).append(hit)
    return [groups[i] for i in sorted(groups)]
