"""Text a person does not see but a model reads: invisible characters and markup styled to be invisible.

The character classes come from the folding step (`ctx.views.hidden`), which already walked the text once;
this detector only judges the runs it recorded, and forgives the legitimate uses: a zero-width joiner inside
an emoji sequence or between letters of a joining script, a leading byte-order mark, a soft hyphen inside a
word, one variation selector after a character, the tag letters of a subdivision flag (England, Scotland,
Wales), and bidi marks or balanced isolates in right-to-left text. Markup is checked only when the text
holds a ``<`` or a markdown link definition.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

from pydantic import Field

from bartizan import taxonomy as tx
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.detectors.registry import detector
from bartizan.text import fastre
from bartizan.text.unicode import BIDI, INVISIBLE, TAG, VARIATION
from bartizan.types import Finding, Span

NAME = "hidden_text"
TAGS = "tag_characters"
ZERO_WIDTH = "zero_width"
BIDI_CONTROL = "bidi_control"
VARIATION_SELECTORS = "variation_selectors"
HIDDEN_MARKUP = "hidden_markup"

_OBFUSCATION = (tx.PROMPT_OBFUSCATION,)
_SMUGGLING = (tx.PROMPT_OBFUSCATION, tx.INDIRECT_INJECTION)
_OWASP = (tx.LLM01,)

_BLACK_FLAG = "\U0001f3f4"
_CANCEL_TAG = "\U000e007f"
_ZWJ, _BOM, _SHY = "\u200d", "\ufeff", "\u00ad"
# Joiners and breaks that Arabic, Persian, Indic and Thai writing use between letters.
_SCRIPT_JOINERS = frozenset("\u200b\u200c\u200d\u2060")
_BIDI_MARKS = frozenset("\u200e\u200f\u061c")
_BIDI_OPENERS = frozenset("\u202a\u202b\u202d\u202e\u2066\u2067\u2068")
_BIDI_CLOSERS = {"\u202c": frozenset("\u202a\u202b\u202d\u202e"), "\u2069": frozenset("\u2066\u2067\u2068")}
_KEYCAP = "\u20e3"

# --- markup ------------------------------------------------------------------------------------------
_OPEN_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]{0,15})\b([^<>]{1,2000})>")
_STYLE_ATTR = re.compile(r"""\bstyle\s*=\s*(?:"([^"]{0,2000})"|'([^']{0,2000})')""", re.IGNORECASE)
_COLOR_ATTR = re.compile(r"""\b(color|bgcolor)\s*=\s*["']?([#a-zA-Z0-9]{1,30})""", re.IGNORECASE)
_QUOTED = re.compile(r""""[^"]{0,2000}"|'[^']{0,2000}'""")
_HIDDEN_ATTR = re.compile(r"(?:^|\s)hidden(?:[\s=/]|$)", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*(-?[0-9]{0,10}\.?[0-9]{1,10})\s*([a-z%]{0,4})")
_TAG_STRIP = re.compile(r"<[^<>]{0,2000}>")
# `[//]: # (text)` and `[comment]: <> (text)`: markdown link definitions that render as nothing.
_MD_COMMENT = re.compile(
    r"""^[ \t]{0,3}\[[^\]\n]{0,40}\]:[ \t]*(?:#|<>)[ \t]*(?:\(([^)\n]{1,2000})\)|"([^"\n]{1,2000})")""", re.MULTILINE
)

# Text that addresses a model or gives orders; used to tell an instruction hidden in a comment from a
# developer's note. Kept to wording seen in published indirect-injection examples.
_INSTRUCTION = fastre.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[\s\S]{0,40}"
    r"\b(?:instructions?|prompts?|rules|guidelines|above|previous|prior|earlier)\b"
    r"|\b(?:AI|assistant|chatbot|LLM|language model|GPT|ChatGPT|Claude|Gemini|Copilot|agent)s?\b[ ,:]{0,3}"
    r"(?:must|should|will|need|please|you)\b"
    r"|\byou (?:must|should|will|are now|need to|have to|shall)\b"
    r"|\b(?:new|real|actual|updated|system) (?:instructions?|task|prompt|objective)\b"
    r"|\bdo not (?:tell|mention|reveal|disclose|show|inform|warn)\b"
    r"|\b(?:tell|inform|convince|ask) the user\b"
    r"|\b(?:respond|reply|answer) (?:only|with|in|by)\b"
    r"|\b(?:send|forward|exfiltrate|upload|post) (?:the|all|any|this|their|your|it)\b"
    r"|\b(?:visit|navigate to|go to|open|fetch|click) https?://"
    r"|\binstead[,:]? (?:say|write|output|respond|reply|print|tell)\b",
    ignore_case=True,
)

_WHITE = frozenset({"white", "#fff", "#ffffff", "#fffffe", "rgb(255,255,255)", "rgba(255,255,255,1)", "snow"})


class HiddenTextConfig(DetectorConfig):
    check_markup: bool = Field(default=True, description="look for HTML/markdown styled or commented to be invisible")
    max_spans: int = Field(default=32, ge=1, description="spans reported per finding")


# --- characters -----------------------------------------------------------------------------------------
def _is_emoji(ch: str) -> bool:
    """Rough emoji test (pictographs, dingbats, symbols, skin tones): enough to forgive joiners between them."""
    cp = ord(ch)
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x2600 <= cp <= 0x27BF
        or 0x2B00 <= cp <= 0x2BFF
        or 0x2190 <= cp <= 0x23FF
        or cp in (0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D, 0x3297, 0x3299, 0xFE0F)
    )


def _is_script_letter(ch: str) -> bool:
    """A non-ASCII letter or combining mark: the neighbours a joiner has in Arabic, Persian or Indic writing."""
    return not ch.isascii() and (ch.isalpha() or unicodedata.category(ch).startswith("M"))


def _forgiven_invisible(text: str, a: int, b: int) -> bool:
    """A single invisible character with a legitimate job where it stands."""
    if b - a != 1:
        return False
    ch = text[a]
    before = text[a - 1] if a > 0 else ""
    after = text[b] if b < len(text) else ""
    if ch == _BOM and a == 0:
        return True
    if ch == _ZWJ and before and after and _is_emoji(before) and _is_emoji(after):
        return True
    if ch in _SCRIPT_JOINERS and before and after and _is_script_letter(before) and _is_script_letter(after):
        return True
    return ch == _SHY and before.isalpha() and after.isalpha()


def _forgiven_selector(text: str, a: int, b: int) -> bool:
    """One variation selector choosing how the character before it looks (emoji, keycap, CJK variant)."""
    if b - a != 1 or a == 0:
        return False
    before = text[a - 1]
    if not before.isascii():
        return True
    return before in "0123456789#*" and text[b : b + 1] == _KEYCAP


def _is_flag_sequence(text: str, a: int, b: int) -> bool:
    """Tag letters spelling a subdivision flag after U+1F3F4 and ending in CANCEL TAG (🏴 + 'gbeng' + cancel)."""
    if a == 0 or text[a - 1] != _BLACK_FLAG or text[b - 1] != _CANCEL_TAG or not 3 <= b - a <= 8:
        return False
    return all(0xE0030 <= ord(c) <= 0xE0039 or 0xE0061 <= ord(c) <= 0xE007A for c in text[a : b - 1])


def _has_rtl(text: str) -> bool:
    return any(
        0x0590 <= ord(c) <= 0x08FF or 0xFB1D <= ord(c) <= 0xFDFF or 0xFE70 <= ord(c) <= 0xFEFF
        for c in text
        if not c.isascii()
    )


def _balanced(text: str, runs: list[tuple[int, int]]) -> bool:
    """Whether every bidi embedding/override/isolate is closed by its terminator on the same line."""
    stack: list[str] = []
    line_end = -1
    for a, b in runs:
        if a > line_end:
            if stack:
                return False
            nl = text.find("\n", a)
            line_end = nl if nl >= 0 else len(text)
        for ch in text[a:b]:
            if ch in _BIDI_OPENERS:
                stack.append(ch)
            elif ch in _BIDI_CLOSERS:
                if not stack or stack[-1] not in _BIDI_CLOSERS[ch]:
                    return False
                stack.pop()
    return not stack


@detector(
    NAME,
    config=HiddenTextConfig,
    categories=(TAGS, ZERO_WIDTH, BIDI_CONTROL, VARIATION_SELECTORS, HIDDEN_MARKUP),
    description="Invisible text: Unicode tags, zero-width runs, bidi controls, variation selectors, hidden markup.",
)
class HiddenText:
    """Unicode tags, zero-width runs, bidi controls, variation-selector smuggling and invisible markup."""

    def __init__(self, config: HiddenTextConfig) -> None:
        self.config = config

    def scan(self, ctx: ScanContext) -> Iterable[Finding]:
        text = ctx.text
        out: list[Finding] = []
        if not text.isascii():
            out.extend(self._characters(text, ctx))
        if self.config.check_markup and ("<" in text or "]:" in text):
            out.extend(self._markup(text, text.lower(), ctx))
        return out

    # --- characters ---------------------------------------------------------------------------------
    def _characters(self, text: str, ctx: ScanContext) -> Iterator[Finding]:
        hidden = ctx.views.hidden
        if not hidden.runs:
            return
        by_kind: dict[str, list[tuple[int, int]]] = {TAG: [], INVISIBLE: [], BIDI: [], VARIATION: []}
        for a, b, kind in hidden.runs:
            by_kind.setdefault(kind, []).append((a, b))
        yield from self._tags(text, by_kind[TAG])
        yield from self._zero_width(text, by_kind[INVISIBLE])
        yield from self._bidi(text, by_kind[BIDI])
        yield from self._selectors(text, by_kind[VARIATION])

    def _finding(
        self, category: str, score: float, runs: list[tuple[int, int]], evidence: str, rule: str, atlas: tuple[str, ...]
    ) -> Finding:
        return Finding(
            detector=NAME,
            category=category,
            score=min(score, 1.0),
            spans=tuple(Span(a, b) for a, b in runs[: self.config.max_spans]),
            evidence=evidence,
            rule_id=f"{NAME}.{rule}",
            atlas=atlas,
            owasp=_OWASP,
        )

    def _tags(self, text: str, runs: list[tuple[int, int]]) -> Iterator[Finding]:
        runs = [r for r in runs if not _is_flag_sequence(text, *r)]
        if not runs:
            return
        count = sum(b - a for a, b in runs)
        decoded = sum(1 for a, b in runs for c in text[a:b] if 0xE0020 <= ord(c) <= 0xE007E)
        evidence = f"{count} Unicode tag characters in {len(runs)} runs; {decoded} decode to ASCII text"
        yield self._finding(TAGS, 0.95, runs, evidence, "tags", _SMUGGLING)

    def _zero_width(self, text: str, runs: list[tuple[int, int]]) -> Iterator[Finding]:
        runs = [r for r in runs if not _forgiven_invisible(text, *r)]
        if not runs:
            return
        count = sum(b - a for a, b in runs)
        longest = max(b - a for a, b in runs)
        # A run between two letters splits a word (keyword-filter evasion); a long run encodes data.
        splits = sum(1 for a, b in runs if 0 < a and b < len(text) and text[a - 1].isalnum() and text[b].isalnum())
        # Stray single characters (web copy often holds a few) weigh little; split words and runs weigh more.
        score = 0.2 + 0.05 * count + 0.2 * min(splits, 2)
        if longest >= 8:
            score = max(score, 0.9)
        elif longest >= 4:
            score = max(score, 0.6)
        evidence = f"{count} invisible characters in {len(runs)} runs (longest {longest}, {splits} inside words)"
        yield self._finding(ZERO_WIDTH, min(score, 0.95), runs, evidence, "zero_width", _OBFUSCATION)

    def _bidi(self, text: str, runs: list[tuple[int, int]]) -> Iterator[Finding]:
        if not runs:
            return
        controls = [(a, b) for a, b in runs if any(c not in _BIDI_MARKS for c in text[a:b])]
        rtl = _has_rtl(text)
        if controls:
            overrides = sum(1 for a, b in controls for c in text[a:b] if c in "\u202d\u202e")
            balanced = _balanced(text, controls)
            # Latin-only text has no use for bidi controls; right-to-left text uses balanced embeddings and
            # isolates, but hardly ever an override (the Trojan Source trick).
            if not rtl or not balanced or overrides:
                count = sum(b - a for a, b in controls)
                evidence = f"{count} bidi controls ({overrides} overrides, {'balanced' if balanced else 'unbalanced'})"
                yield self._finding(BIDI_CONTROL, 0.8, controls, evidence, "controls", _OBFUSCATION)
                return
        if not rtl:
            count = sum(b - a for a, b in runs)
            yield self._finding(BIDI_CONTROL, 0.3, runs, f"{count} bidi marks in text without right-to-left script",
                                "marks", _OBFUSCATION)  # fmt: skip

    def _selectors(self, text: str, runs: list[tuple[int, int]]) -> Iterator[Finding]:
        runs = [r for r in runs if not _forgiven_selector(text, *r)]
        if not runs:
            return
        count = sum(b - a for a, b in runs)
        longest = max(b - a for a, b in runs)
        if longest >= 8 or count >= 16:
            score = 0.9
        elif longest >= 2:
            score = 0.7
        else:
            score = min(0.4 + 0.05 * count, 0.85)
        evidence = f"{count} variation selectors in {len(runs)} runs (longest {longest}; up to {count} smuggled bytes)"
        yield self._finding(VARIATION_SELECTORS, score, runs, evidence, "selectors", _SMUGGLING)

    # --- markup -------------------------------------------------------------------------------------
    def _markup(self, text: str, lower: str, ctx: ScanContext) -> Iterator[Finding]:
        if "<!--" in text:
            yield from self._comments(text)
        if "]:" in text:
            yield from self._md_comments(text)
        if "style" in lower or "hidden" in lower or "color" in lower:
            yield from self._styled(text, lower, ctx)

    def _comments(self, text: str) -> Iterator[Finding]:
        pos = text.find("<!--")
        while pos >= 0:
            end = text.find("-->", pos + 4)
            if end < 0:
                return  # no later comment can close either
            body = text[pos + 4 : end]
            if _INSTRUCTION.search(body):
                evidence = f"HTML comment with instruction-like text ({len(body.strip())} chars)"
                yield self._finding(HIDDEN_MARKUP, 0.9, [(pos, end + 3)], evidence, "html_comment", _SMUGGLING)
            pos = text.find("<!--", end + 3)

    def _md_comments(self, text: str) -> Iterator[Finding]:
        for m in _MD_COMMENT.finditer(text):
            body = m.group(1) or m.group(2) or ""
            if _INSTRUCTION.search(body):
                evidence = f"markdown comment (empty link definition) with instruction-like text ({len(body)} chars)"
                yield self._finding(HIDDEN_MARKUP, 0.9, [m.span()], evidence, "markdown_comment", _SMUGGLING)

    def _styled(self, text: str, lower: str, ctx: ScanContext) -> Iterator[Finding]:
        for m in _OPEN_TAG.finditer(text):
            reason = _invisible_reason(m.group(2))
            if reason is None:
                continue
            ctx.check_deadline()
            tag = m.group(1).lower()
            # The element's content runs to the first closing tag of its name (nesting is not followed).
            close = lower.find(f"</{tag}", m.end(), m.end() + 5_000)
            if close >= 0:
                end = close
            else:  # unclosed: up to the next tag
                nxt = text.find("<", m.end(), m.end() + 2_000)
                end = nxt if nxt >= 0 else min(len(text), m.end() + 2_000)
            inner = _TAG_STRIP.sub(" ", text[m.end() : end]).strip()
            if not inner:
                continue
            stop = text.find(">", close) + 1 if close >= 0 else end
            instruction = _INSTRUCTION.search(inner) is not None
            # Invisible styling alone is common in real pages (menus, screen-reader text); it counts at the
            # default threshold only when the hidden words read as instructions.
            score = 0.9 if instruction else 0.4
            kind = "instruction-like text" if instruction else "text"
            evidence = f"<{tag}> hidden by {reason} holds {kind} ({len(inner)} chars)"
            yield self._finding(HIDDEN_MARKUP, score, [(m.start(), max(stop, end))], evidence, "styled", _SMUGGLING)


def _css_length_is_tiny(value: str) -> bool:
    m = _NUMBER.match(value)
    if m is None:
        return False
    number, unit = float(m.group(1)), m.group(2)
    return number <= 0 or (unit in ("px", "pt") and number <= 1) or (unit in ("em", "rem", "%") and number <= 0.05)


def _norm_color(value: str) -> str:
    return value.lower().replace(" ", "").removesuffix("!important")


def _invisible_reason(attributes: str) -> str | None:
    """Why an element with these attributes would not be seen, or None."""
    lowered = attributes.lower()
    if "style" not in lowered and "hidden" not in lowered and "color" not in lowered:
        return None
    if _HIDDEN_ATTR.search(_QUOTED.sub('""', attributes)):
        return "the hidden attribute"
    colors = {k.lower(): _norm_color(v) for k, v in _COLOR_ATTR.findall(attributes)}
    style = _STYLE_ATTR.search(attributes)
    decl: dict[str, str] = {}
    if style is not None:
        for declaration in (style.group(1) or style.group(2) or "").split(";"):
            prop, colon, value = declaration.partition(":")
            if colon:
                decl[prop.strip().lower()] = value.strip().lower()
    if decl.get("display", "").startswith("none"):
        return "display:none"
    if decl.get("visibility", "").startswith(("hidden", "collapse")):
        return "visibility:hidden"
    if "opacity" in decl and _css_length_is_tiny(decl["opacity"].replace("%", "")):
        return "opacity:0"
    if "font-size" in decl and _css_length_is_tiny(decl["font-size"]):
        return "a zero font size"
    if any(_css_length_is_tiny(decl[p]) for p in ("width", "height", "max-width", "max-height") if p in decl) and (
        decl.get("overflow", "").startswith("hidden")
    ):
        return "a zero-size box"
    for prop in ("left", "top", "text-indent", "margin-left"):
        m = _NUMBER.match(decl.get(prop, ""))
        if m is not None and float(m.group(1)) <= -1000:
            return "off-screen positioning"
    color = _norm_color(decl.get("color", colors.get("color", "")))
    background = _norm_color(decl.get("background-color", decl.get("background", colors.get("bgcolor", ""))))
    if color in ("transparent", "rgba(0,0,0,0)"):
        return "transparent text"
    if color and (color == background or (color in _WHITE and (not background or background in _WHITE))):
        return "text coloured like the background"
    return None
