"""Decoders that recover text hidden in an encoding, each returning the decoded text and its offset map.

Two shapes:
- *inline* encodings (URL percent-escapes, HTML entities) are decoded in place: the view is the whole
  parent text with each escape replaced, so surrounding words stay next to the decoded ones;
- *blob* encodings (base64, hex) are decoded per candidate run: the view holds only the decoded runs,
  one per line, each mapped to the run it came from.

Every decoder is linear in its input, uses patterns without nested quantifiers, and gives up on output
that is not readable text (a hash or compressed bytes is not a hidden instruction).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Callable, Iterable
from typing import Any

from bartizan.text import fastre
from bartizan.text.spanmap import SpanMap

# Readable-text test for decoded bytes: printable share and a minimum of letters.
_MIN_PRINTABLE = 0.9
_MIN_LETTERS = 0.4


def substitute(text: str, pattern: Any, repl: Callable[[Any], str | None]) -> tuple[str, SpanMap] | None:
    """Replace every match of `pattern` by `repl(match)` (None keeps it). Returns None when nothing changed."""
    pieces: list[str] = []
    smap = SpanMap()
    pos = 0
    changed = False
    for m in pattern.finditer(text):
        new = repl(m)
        if new is None:
            continue
        a, b = m.span()
        if a > pos:
            pieces.append(text[pos:a])
            smap.add(a - pos, a - pos)
        pieces.append(new)
        # A same-length replacement merges into a linear segment; its characters then map one to one,
        # which still lands inside the replaced run.
        smap.add(len(new), b - a)
        pos = b
        changed = True
    if not changed:
        return None
    if pos < len(text):
        pieces.append(text[pos:])
        smap.add(len(text) - pos, len(text) - pos)
    return "".join(pieces), smap


def readable(raw: bytes) -> str | None:
    """Decode bytes as UTF-8 text if they read as text, else None."""
    if not raw:
        return None
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not s:
        return None
    printable = sum(1 for c in s if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in s if c.isalpha())
    if printable / len(s) < _MIN_PRINTABLE or letters / len(s) < _MIN_LETTERS:
        return None
    return s


def join_blobs(parent_len: int, blobs: Iterable[tuple[int, int, str]]) -> tuple[str, SpanMap] | None:
    """Build a view from decoded runs (start, end, decoded) sorted by start, one run per line."""
    pieces: list[str] = []
    smap = SpanMap()
    pos = 0
    for a, b, decoded in blobs:
        if a < pos:
            continue
        if pieces:
            pieces.append("\n")
            smap.add(1, a - pos)
        else:
            smap.add(0, a - pos)
        pieces.append(decoded)
        smap.add(len(decoded), b - a)
        pos = b
    if not pieces:
        return None
    smap.add(0, parent_len - pos)
    return "".join(pieces), smap


# --- base64 -----------------------------------------------------------------------------------------
_B64_RUN = fastre.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def decode_base64(text: str) -> tuple[str, SpanMap] | None:
    blobs = []
    for m in _B64_RUN.finditer(text):
        run = m.group()
        body = run.rstrip("=")
        if body.isdigit() or (body.isalpha() and (body.islower() or body.isupper() or body.istitle())):
            continue  # a long word or number, not an encoding
        alt = "-_" if ("-" in body or "_" in body) else None
        padded = body + "=" * (-len(body) % 4)
        try:
            raw = base64.b64decode(padded, altchars=alt.encode() if alt else None, validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = readable(raw)
        if decoded is not None:
            blobs.append((m.start(), m.end(), decoded))
    return join_blobs(len(text), blobs)


# --- hex --------------------------------------------------------------------------------------------
# Readable text encoded as hex has a first nibble of 2..7 (ASCII) or 8..f (UTF-8) in every byte; a
# run must stand alone (checked after the match: RE2 has no lookbehind).
_HEX_RUN = fastre.compile(
    r"(?:\\x[0-9A-Fa-f]{2}){4,}"  # \x69\x67...
    r"|[0-9A-Fa-f]{12,}"  # 69676e6f7265...
    r"|[0-9A-Fa-f]{2}(?:[ :][0-9A-Fa-f]{2}){5,}"  # 69 67 6e or 69:67:6e
)
_HEX_STRIP = re.compile(r"\\x|[ :]")


def decode_hex(text: str) -> tuple[str, SpanMap] | None:
    blobs = []
    for m in _HEX_RUN.finditer(text):
        a, b = m.span()
        if not m.group().startswith("\\x") and ((a and text[a - 1].isalnum()) or (b < len(text) and text[b].isalnum())):
            continue
        digits = _HEX_STRIP.sub("", m.group())
        if len(digits) % 2:
            digits = digits[:-1]
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            continue
        decoded = readable(raw)
        if decoded is not None:
            blobs.append((m.start(), m.end(), decoded))
    return join_blobs(len(text), blobs)


# --- URL percent-encoding ---------------------------------------------------------------------------
_PCT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _pct(m: re.Match[str]) -> str | None:
    raw = bytes.fromhex(m.group().replace("%", ""))
    return raw.decode("utf-8", errors="replace")


def decode_url(text: str) -> tuple[str, SpanMap] | None:
    if text.count("%") < 2:
        return None
    return substitute(text, _PCT_RUN, _pct)


# --- HTML entities ----------------------------------------------------------------------------------
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,30});")


def _entity(m: re.Match[str]) -> str | None:
    out = html.unescape(m.group())
    return None if out == m.group() else out


def decode_html(text: str) -> tuple[str, SpanMap] | None:
    if "&" not in text:
        return None
    return substitute(text, _ENTITY, _entity)


# name -> decoder; applied to the folded view and, recursively, to what they decode
DECODERS: dict[str, Callable[[str], tuple[str, SpanMap] | None]] = {
    "base64": decode_base64,
    "hex": decode_hex,
    "url": decode_url,
    "html": decode_html,
}
