"""Replace redacted spans of the original text with typed placeholders such as ``[EMAIL_1]``.

The same value gets the same placeholder within one text, so a model can still tell two e-mail addresses
apart; the values themselves never leave this function.
"""

from __future__ import annotations

from collections.abc import Iterable

from bartizan.types import Span


def merge_spans(spans: Iterable[tuple[Span, str]]) -> list[tuple[int, int, str]]:
    """Sorted, non-overlapping (start, end, label); overlapping spans merge, keeping the first label."""
    out: list[tuple[int, int, str]] = []
    for span, label in sorted(spans, key=lambda x: (x[0].start, -x[0].end)):
        if span.end <= span.start:
            continue
        if out and span.start < out[-1][1]:
            a, b, lab = out[-1]
            out[-1] = (a, max(b, span.end), lab)
        else:
            out.append((span.start, span.end, label))
    return out


def redact(text: str, spans: Iterable[tuple[Span, str]]) -> str:
    """`text` with every (span, label) replaced by ``[LABEL_n]``."""
    merged = merge_spans(spans)
    if not merged:
        return text
    numbering: dict[tuple[str, str], int] = {}
    per_label: dict[str, int] = {}
    pieces: list[str] = []
    pos = 0
    for a, b, label in merged:
        tag = label.upper()
        value = text[a:b]
        key = (tag, value)
        if key not in numbering:
            per_label[tag] = per_label.get(tag, 0) + 1
            numbering[key] = per_label[tag]
        pieces.append(text[pos:a])
        pieces.append(f"[{tag}_{numbering[key]}]")
        pos = b
    pieces.append(text[pos:])
    return "".join(pieces)
