"""Replace redacted spans of the original text with typed placeholders such as ``[EMAIL_1]``.

The same value gets the same placeholder within one text, so a model can still tell two e-mail addresses
apart; the values themselves never leave this function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bartizan.types import Span


@dataclass
class Numbering:
    """Placeholder numbers shared by several texts (the messages of one request), so that one value keeps
    one placeholder and two values never share one."""

    by_value: dict[tuple[str, str], int] = field(default_factory=dict)
    per_label: dict[str, int] = field(default_factory=dict)


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
    return redact_with_map(text, spans)[0]


def redact_with_map(
    text: str, spans: Iterable[tuple[Span, str]], numbering: Numbering | None = None
) -> tuple[str, dict[str, str]]:
    """`redact`, plus the map placeholder -> original value, so that a caller that owns the values (the
    gateway, for one request) can put them back into the model's answer. Pass one `Numbering` for all the
    texts of a request. The map holds raw values: keep it in memory for the request only, never log it."""
    merged = merge_spans(spans)
    if not merged:
        return text, {}
    state = numbering if numbering is not None else Numbering()
    by_value, per_label = state.by_value, state.per_label
    pieces: list[str] = []
    mapping: dict[str, str] = {}
    pos = 0
    for a, b, label in merged:
        tag = label.upper()
        value = text[a:b]
        key = (tag, value)
        if key not in by_value:
            per_label[tag] = per_label.get(tag, 0) + 1
            by_value[key] = per_label[tag]
        placeholder = f"[{tag}_{by_value[key]}]"
        mapping[placeholder] = value
        pieces.append(text[pos:a])
        pieces.append(placeholder)
        pos = b
    pieces.append(text[pos:])
    return "".join(pieces), mapping
