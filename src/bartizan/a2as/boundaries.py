"""A2AS security boundaries (spec §2): neutralise forged tags, then wrap untrusted content in tagged blocks.

Neutralisation works on a *detection view* of the text: Unicode compatibility forms decomposed (NFKD, with
combining marks dropped), invisible characters (zero-width, bidi, Unicode tag characters, variation
selectors) removed, confusables folded to ASCII, and HTML entities (named, decimal, hex), percent escapes
(UTF-8 aware) and backslash escapes (``\\u003c``, ``\\x3c``) decoded in a single pass. Every view character
maps back to the original through a `SpanMap`, so each ``<\\s*/?\\s*a2as\\s*:`` found in the view replaces
exactly the original characters it came from, with ``&lt;a2as:`` or ``&lt;/a2as:``. Nothing else is deleted:
deleting text could join fragments into a new tag.

Fix to the spec [ours]: the spec both decodes ``&lt;`` in the view and uses ``&lt;a2as:`` as the replacement,
which would make neutralised text look forged again. The exact canonical forms ``&lt;a2as:`` and
``&lt;/a2as:`` (lowercase, contiguous, ASCII) are therefore read as already neutral; every other spelling that
decodes to ``<`` is rewritten to them. `neutralize` is idempotent.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bartizan.a2as.events import BOUNDARY_SPOOF_NEUTRALIZED, A2ASEvent
from bartizan.a2as.tokens import boundary_token, unkeyed_token
from bartizan.text.spanmap import SpanMap
from bartizan.text.unicode import classify_invisible, confusables

OPEN_NEUTRAL = "&lt;a2as:"
CLOSE_NEUTRAL = "&lt;/a2as:"

# Lookalikes of the tag's delimiters that the packaged confusables table lacks (spec §2.2 minimum list plus
# angle brackets a model may read as "<").
_EXTRA_FOLDS = {
    "\u3008": "<",  # LEFT ANGLE BRACKET (U+2329 decomposes to it)
    "\u27e8": "<",  # MATHEMATICAL LEFT ANGLE BRACKET
    "\u276c": "<",
    "\u2770": "<",
    "\u29fc": "<",
    "\u05c3": ":",
    "\u0703": ":",
    "\u0704": ":",
    "\u1361": ":",
}
_NAMED_ENTITIES = {
    "lt": "<",
    "sol": "/",
    "colon": ":",
    "lang": "\u27e8",
    "langle": "\u27e8",
    "leftanglebracket": "\u27e8",
    "lsaquo": "\u2039",
    "frasl": "\u2044",
}
_CONT = r"%[89abAB][0-9a-fA-F]"
_SPECIAL = re.compile(
    r"&#(?:[0-9]{1,8}|[xX][0-9a-fA-F]{1,8});?"
    r"|&[A-Za-z][A-Za-z0-9]{1,31};"
    r"|&[lL][tT]"
    rf"|%(?:[0-7][0-9a-fA-F]|[cdCD][0-9a-fA-F]{_CONT}|[eE][0-9a-fA-F](?:{_CONT}){{2}}|[fF][0-4](?:{_CONT}){{3}})"
    r"|\\(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|U[0-9a-fA-F]{8}|u\{[0-9a-fA-F]{1,6}\})"
    r"|[^\x00-\x7f]+"
    r"|[\x00-\x08\x0e-\x1b\x7f]"  # control characters that some pipelines strip before the model
)
_ESCAPE_START = re.compile(r"[&%\\]")
_NEEDS_VIEW = re.compile(r"[&%\\\x00-\x08\x0e-\x1b\x7f]")
_HIT = re.compile(r"<\s*(/)?\s*a2as\s*:", re.IGNORECASE)
_MAX_PASSES = 8


@lru_cache(maxsize=65536)
def _fold(ch: str) -> str:
    """Detection skeleton of one character: "" for invisibles, ASCII where a lookalike exists."""
    if classify_invisible(ch) is not None or (unicodedata.category(ch) == "Cc" and not ch.isspace()):
        return ""
    table = confusables()
    out = []
    for c in unicodedata.normalize("NFKD", ch):
        if unicodedata.category(c) in ("Mn", "Me") or classify_invisible(c) is not None:
            continue
        out.append(_EXTRA_FOLDS.get(c) or table.get(c, c))
    folded = "".join(out)
    return " " if folded and folded.isspace() else folded


def _decode(token: str) -> str | None:
    """The text an escape sequence stands for, or None when it is not a valid escape."""
    try:
        if token.startswith("&#"):
            body = token[2:].rstrip(";")
            cp = int(body[1:], 16) if body[:1] in "xX" else int(body)
            return chr(cp) if cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else None
        if token.startswith("&"):
            return _NAMED_ENTITIES.get(token[1:].rstrip(";").lower())
        if token.startswith("%"):
            return bytes.fromhex(token.replace("%", "")).decode("utf-8")
        hexdigits = token[2:].strip("{}")
        cp = int(hexdigits, 16)
        return chr(cp) if cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else None
    except (ValueError, UnicodeDecodeError):
        return None


def _may_hit(text: str) -> bool:
    """Cheap exact pre-check: False when the view cannot contain "<", "2" and ":", which every opener needs."""
    if _ESCAPE_START.search(text) is not None:
        return True
    missing = [c for c in "<2:" if c not in text]
    if not missing or text.isascii():
        return not missing
    folded = "".join({_fold(c) for c in set(text) if not c.isascii()})
    return all(c in folded for c in missing)


def _view(text: str) -> tuple[str, SpanMap | None]:
    """Detection view of `text` and its offset map (None when the view is the text itself)."""
    if text.isascii() and _NEEDS_VIEW.search(text) is None:
        return text, None
    pieces: list[str] = []
    smap = SpanMap()
    pos = 0
    for m in _SPECIAL.finditer(text):
        a, b = m.span()
        if a > pos:
            pieces.append(text[pos:a])
            smap.add(a - pos, a - pos)
        tok = m.group()
        if not tok.isascii():  # a run of non-ASCII characters
            folds = [_fold(c) for c in tok]
            if all(len(f) == 1 for f in folds):
                out = "".join(folds)  # one to one: the offsets do not move
            else:
                for f in folds:
                    pieces.append(f)
                    smap.add(len(f), 1)
                pos = b
                continue
        elif len(tok) == 1:
            out = _fold(tok)
        else:
            decoded = _decode(tok)
            if tok == "&lt;" and (text.startswith("a2as:", b) or text.startswith("/a2as:", b)):
                decoded = None  # the canonical neutralised form is ours: left as it is
            out = tok if decoded is None else "".join(_fold(c) if not c.isascii() else c for c in decoded)
        pieces.append(out)
        smap.add(len(out), b - a)
        pos = b
    if pos < len(text):
        pieces.append(text[pos:])
        smap.add(len(text) - pos, len(text) - pos)
    return "".join(pieces), smap


def _hits(text: str) -> list[tuple[int, int, bool]]:
    """Original spans (start, end, closing) of every tag opener in the detection view, merged when they overlap."""
    spans: list[tuple[int, int, bool]] = []
    if not _may_hit(text):
        return spans
    view, smap = _view(text)
    for m in _HIT.finditer(view):
        a, b = smap.to_parent(m.start(), m.end()) if smap is not None else m.span()
        closing = m.group(1) is not None
        if spans and a < spans[-1][1]:  # two view hits from one multi-character fold
            pa, pb, closing = spans.pop()
            a, b = pa, max(b, pb)
        spans.append((a, b, closing))
    return spans


def _variant(span: str) -> tuple[str, ...]:
    """Content-free labels for how a forged opener was spelled (for events and metrics)."""
    if span in ("<a2as:", "</a2as:"):
        return ("plain",)
    kinds = set()
    if "&" in span:
        kinds.add("entity")
    if "%" in span:
        kinds.add("percent")
    if "\\" in span:
        kinds.add("escape")
    if any(c.isspace() for c in span):
        kinds.add("spaced")
    for c in span:
        if c.isspace() or (c.isascii() and c.isprintable()):
            continue
        invisible = classify_invisible(c) is not None or unicodedata.category(c) in ("Mn", "Me", "Cc")
        kinds.add("invisible" if invisible else "confusable")
    if "a2as" not in span and "a2as" in span.lower():
        kinds.add("case")
    return tuple(sorted(kinds)) or ("other",)


@dataclass(frozen=True, slots=True)
class Neutralized:
    """Result of `neutralize`: the rewritten text, how many forged openers it had, and how they were spelled."""

    text: str
    count: int
    variants: tuple[str, ...]
    spans: tuple[tuple[int, int], ...] = ()  # replaced ranges in the input text (first pass)


def neutralize(text: str) -> Neutralized:
    """Replace every spelling of ``<a2as:`` / ``</a2as:`` in `text` with ``&lt;a2as:`` / ``&lt;/a2as:``."""
    count = 0
    variants: set[str] = set()
    first_spans: tuple[tuple[int, int], ...] | None = None
    for _ in range(_MAX_PASSES):
        spans = _hits(text)
        if first_spans is None:
            first_spans = tuple((a, b) for a, b, _ in spans)
        if not spans:
            return Neutralized(text, count, tuple(sorted(variants)), first_spans)
        parts: list[str] = []
        pos = 0
        for a, b, closing in spans:
            parts.append(text[pos:a])
            parts.append(CLOSE_NEUTRAL if closing else OPEN_NEUTRAL)
            variants.update(_variant(text[a:b]))
            pos = b
        parts.append(text[pos:])
        count += len(spans)
        text = "".join(parts)
    raise AssertionError("neutralize did not reach a fixed point")  # pragma: no cover - replacements are inert


def find_tag_leak(text: str) -> bool:
    """True when `text` (e.g. model output) contains an A2AS tag opener in any spelling the view reads."""
    if not _may_hit(text):
        return False
    view, _ = _view(text)
    return _HIT.search(view) is not None


class BoundaryError(ValueError):
    """Invalid use of `Boundaries` (unknown kind, bad index or tool name, missing key). Never carries content."""


CompatMode = Literal["a2as-paper", "higress", "demo"]
_KIND_ALIASES = {"user": "user", "tool": "tool", "retrieved": "tool", "agent": "agent", "system": "system"}
_TOOL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,127}")
_HEX_TOKEN = re.compile(r"[0-9a-f]{8,16}")
_BLOCK = re.compile(
    r"<a2as:(?P<k>[a-z]{1,16})(?::(?P<f>[^>\n]{1,128}))?>\n"
    r"(?P<body>.*)"
    r"\n</a2as:(?P<k2>[a-z]{1,16})(?::(?P<f2>[^>\n]{1,128}))?>",
    re.DOTALL,
)


class BoundaryConfig(BaseModel):
    """Settings of the S control (spec §2.3, §7). Neutralisation is always on and cannot be disabled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_len: int = Field(default=16, ge=8, le=16)
    wrap_user: bool = True
    wrap_tool: bool = True
    wrap_system: bool = False
    compat_mode: CompatMode = "a2as-paper"
    keyed: bool = True
    neutralize: Literal[True] = True


@dataclass(frozen=True, slots=True)
class _Parsed:
    kind: str
    field: str
    body: str
    content: str


class Boundaries:
    """Wraps untrusted content of one session in tagged blocks, and unwraps or verifies them.

    Tag forms per `compat_mode`: ``a2as-paper`` ``<a2as:KIND:TOKEN>`` (tool blocks start with a ``tool=NAME``
    line); ``higress`` ``<a2as:KIND>`` with no token (neutralisation is then the only protection);
    ``demo`` like a2as-paper for user/agent, ``<a2as:tool:NAME>`` for tools. The token covers the whole
    block body (for tools the ``tool=`` line too, binding the result to its tool) [ours].
    """

    def __init__(self, config: BoundaryConfig, session_key: bytes | None) -> None:
        if config.keyed and not session_key:
            raise BoundaryError("keyed boundaries need a session key")
        self.config = config
        self._key = session_key if config.keyed else None

    @property
    def auth_mode(self) -> str:
        """``keyed`` or ``unkeyed``, as recorded in audit events (spec §8)."""
        return "keyed" if self._key is not None else "unkeyed"

    def _enabled(self, kind: str) -> bool:
        cfg = self.config
        return {"user": cfg.wrap_user, "tool": cfg.wrap_tool, "agent": True, "system": cfg.wrap_system}[kind]

    def _token(self, kind: str, index: int, body: str) -> str:
        if self._key is not None:
            return boundary_token(self._key, kind, index, body, self.config.token_len)
        return unkeyed_token(body, self.config.token_len)

    def _tokenless(self, kind: str) -> bool:
        mode = self.config.compat_mode
        return mode == "higress" or (mode == "demo" and kind == "tool")

    def wrap(self, kind: str, index: int, content: str, tool_name: str | None = None) -> tuple[str, list[A2ASEvent]]:
        """Neutralise `content`, then wrap it as message `index` of `kind` (user, tool, retrieved, agent, system).

        Returns the text to send and the events raised (``a2as.boundary.spoof_neutralized`` with counts and
        variants, never content). A kind whose wrapping is switched off comes back neutralised but unwrapped;
        ``system`` with ``wrap_system`` off is trusted and returned unchanged.
        """
        canon = _KIND_ALIASES.get(kind)
        if canon is None:
            raise BoundaryError(f"unknown boundary kind {kind!r}")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise BoundaryError("index must be a non-negative integer")
        if canon == "system" and not self.config.wrap_system:
            return content, []
        if tool_name is not None and not _TOOL_NAME.fullmatch(tool_name):
            raise BoundaryError("tool name must match [A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
        result = neutralize(content)
        events: list[A2ASEvent] = []
        if result.count:
            detail = {"count": result.count, "variants": list(result.variants), "kind": canon, "index": index}
            detail |= {"auth_mode": self.auth_mode, "compat_mode": self.config.compat_mode}
            events.append(A2ASEvent(BOUNDARY_SPOOF_NEUTRALIZED, "neutralized", reason="forged_tag", detail=detail))
        if not self._enabled(canon):
            return result.text, events
        mode = self.config.compat_mode
        body = result.text
        if canon == "tool" and mode == "a2as-paper":
            body = f"tool={tool_name or ('retrieved' if kind == 'retrieved' else '')}\n{body}"
        if canon == "tool" and mode == "demo":
            if tool_name is None:
                raise BoundaryError("demo compat mode needs a tool name for tool blocks")
            field = tool_name
        elif self._tokenless(canon):
            field = ""
        else:
            field = self._token(canon, index, body)
        tag = f"{canon}:{field}" if field else canon
        return f"<a2as:{tag}>\n{body}\n</a2as:{tag}>", events

    def _parse(self, wrapped: str) -> _Parsed | None:
        m = _BLOCK.fullmatch(wrapped)
        if m is None or m["k"] != m["k2"] or m["f"] != m["f2"] or m["k"] not in _KIND_ALIASES.values():
            return None
        kind, field, body = m["k"], m["f"] or "", m["body"]
        mode = self.config.compat_mode
        if self._tokenless(kind):
            if mode == "higress" and field:
                return None
            if mode == "demo" and not _TOOL_NAME.fullmatch(field):
                return None
        elif not _HEX_TOKEN.fullmatch(field):
            return None
        content = body
        if kind == "tool" and mode == "a2as-paper":
            first, sep, content = body.partition("\n")
            name = first.removeprefix("tool=")
            if not sep or not first.startswith("tool=") or (name and not _TOOL_NAME.fullmatch(name)):
                return None
        if find_tag_leak(content):
            return None  # a forged tag inside: not a block this class produced
        return _Parsed(kind, field, body, content)

    def unwrap(self, wrapped: str) -> tuple[str, str, str] | None:
        """(kind, token, content) of a well-formed block, else None.

        `token` is the tag's third field: the hex token, the tool name in demo mode, "" when tokenless.
        `content` is the neutralised content (for a2as-paper tool blocks without the ``tool=`` line).
        """
        parsed = self._parse(wrapped)
        return None if parsed is None else (parsed.kind, parsed.field, parsed.content)

    def verify(self, kind: str, index: int, wrapped: str) -> bool:
        """True when `wrapped` is a well-formed block of `kind` whose token matches message `index`.

        Recomputes the token and compares in constant time. Tokenless forms (higress, demo tool blocks) can
        only be checked for structure and neutral content.
        """
        canon = _KIND_ALIASES.get(kind)
        parsed = self._parse(wrapped)
        if canon is None or parsed is None or parsed.kind != canon:
            return False
        if self._tokenless(canon):
            return True
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            return False
        return hmac.compare_digest(self._token(canon, index, parsed.body), parsed.field)
