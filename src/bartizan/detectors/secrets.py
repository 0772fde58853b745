"""Secrets detector: provider API keys, cloud credentials, private keys, JWTs, passwords in URLs and in
assignments, and high-entropy tokens next to a credential word.

Rules are data (src/bartizan/rules/secrets.yaml); this module adds the checks a regex cannot make (JWT
header, Discord user id, PEM extent, placeholder values, entropy) and keeps the cost low on ordinary text:
almost every credential contains a run of 20+ token characters, so the provider rules run only when such a
run exists (one byte translation and one substring search decide it). Key-word rules run only when a
credential word occurs. Evidence is the provider and the length, never the value.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator

from bartizan import taxonomy as tx
from bartizan.detectors import checksums as ck
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.detectors.registry import detector
from bartizan.rules.loader import Rule, compiled_rules
from bartizan.text.views import View
from bartizan.types import Finding

CATEGORIES = (
    "api_key", "cloud_credentials", "private_key", "jwt", "url_credentials", "password_assignment",
    "high_entropy_token",
)  # fmt: skip
RULE_FILE = "secrets.yaml"
Kind = Literal["token", "jwt", "discord", "pem", "url", "near", "assignment", "entropy"]


class SecretRule(Rule):
    """A secrets.yaml rule: the common fields plus how to check and describe a match."""

    ignore_case: bool = False
    provider: str = Field(min_length=1)
    kind: Kind = "token"
    group: int = Field(default=0, ge=0)
    prefixes: tuple[str, ...] = ()
    literals: tuple[str, ...] = ()
    near: str | None = None
    distance: int = Field(default=200, ge=1)
    keywords: tuple[str, ...] = ()
    stop_words: frozenset[str] = frozenset()
    min_classes: int = Field(default=1, ge=1, le=3)

    @model_validator(mode="after")
    def _one_trigger(self) -> SecretRule:
        found_by_context = self.kind in ("near", "assignment", "entropy")
        if not found_by_context and bool(self.prefixes) == bool(self.literals):
            raise ValueError("a rule needs either prefixes (anchored at a long token) or literals, not both")
        if self.kind == "near" and not self.near:
            raise ValueError("a near rule names the rule it must be near")
        if self.kind in ("assignment", "entropy") and not self.keywords:
            raise ValueError("a key-word rule needs keywords")
        return self


class SecretsConfig(DetectorConfig):
    scan_decoded: bool = True  # also read base64 / hex / URL / HTML-decoded payloads
    min_entropy: float = Field(default=3.5, ge=0.0, le=8.0)  # bits per character for high_entropy_token
    context_window: int = Field(default=40, ge=0, le=200)


_Compiled = tuple[SecretRule, re.Pattern[str]]


@dataclass(frozen=True)
class _RuleSet:
    by_first: dict[str, tuple[_Compiled, ...]]  # prefixed rules by the first character of a prefix, file order
    literal: tuple[tuple[str, SecretRule, re.Pattern[str]], ...]  # one entry per literal
    near: tuple[_Compiled, ...]
    keyword: tuple[_Compiled, ...]
    stems: tuple[str, ...]  # the shortest key words: every key word contains one


@lru_cache(maxsize=1)
def rule_set() -> _RuleSet:
    """The compiled rules, split by how they are triggered; built on first use, once per process."""
    typed = [(r, p) for r, p in compiled_rules(RULE_FILE, SecretRule) if isinstance(r, SecretRule)]
    by_first: dict[str, list[_Compiled]] = {}
    for r, p in typed:
        for first in dict.fromkeys(x[0] for x in r.prefixes):
            by_first.setdefault(first, []).append((r, p))
    keyword = tuple((r, p) for r, p in typed if r.kind in ("assignment", "entropy"))
    for r, p in keyword:
        if r.kind == "assignment" and p.groups != 4:
            raise ValueError(f"{r.id}: an assignment pattern has 4 groups (three quoted forms, then bare)")
    words = sorted({w for r, _ in keyword for w in r.keywords}, key=len)
    stems = [w for i, w in enumerate(words) if not any(v in w for v in words[:i])]
    return _RuleSet(
        by_first={k: tuple(v) for k, v in by_first.items()},
        literal=tuple((lit, r, p) for r, p in typed for lit in r.literals),
        near=tuple((r, p) for r, p in typed if r.kind == "near"),
        keyword=keyword,
        stems=tuple(stems),
    )


_TOKEN_MASK = bytes(97 if (chr(i).isalnum() and i < 128) or chr(i) in "_-" else 32 for i in range(256))
# Base64, percent-encoding and Azure secrets add these: a run of them can hold a key with no 20-run above.
_WIDE_MASK = bytes(97 if (chr(i).isalnum() and i < 128) or chr(i) in "_-~.+/=%" else 32 for i in range(256))
_LONG_RUN = b"a" * 20
_IDENT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,20}$")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/_=-")
_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_ENTITY = re.compile(r"&#?[A-Za-z0-9]{1,10};")
_PEM_LINE = re.compile(r"(?:(?:\r?\n|\\n)[ \t]*|(?<![ \t])[ \t]+)([A-Za-z0-9+/=]{1,20000})")
_REPEAT = re.compile(r"(.)\1{5}")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_PIECE = re.compile(r"[a-z]+")
_CAP_WORD = re.compile(r"[A-Z][a-z]{2,}")
_SEPARATORS = re.compile(r"[-_/.]")
_PLACEHOLDER_MARKS = (
    "xxxx", "****", "....", "<", ">", "{", "}", "${", "$(", "%(", "%s", "example", "sample", "dummy",
    "placeholder", "your", "redacted", "changeme", "change_me", "insert", "replace", "todo", "fixme", "abc123",
    "abcd", "xyz123", "getenv", "environ", "process.env", "secrets.", "config.", "settings.", "input(", "(",
)  # fmt: skip
_PLACEHOLDER_VALUES = frozenset(
    {
        "password", "passwd", "pass", "pwd", "secret", "token", "apikey", "api_key", "key", "string", "str",
        "text", "none", "null", "nil", "undefined", "true", "false", "required", "optional", "hidden",
        "admin", "root", "user", "username", "test", "testing", "default", "empty", "bearer", "value",
    }
)  # fmt: skip


def _classes(value: str) -> int:
    return sum((any(c.isupper() for c in value), any(c.islower() for c in value), any(c.isdigit() for c in value)))


def _looks_placeholder(value: str) -> bool:
    """Documentation stand-ins: repeated characters, 'your_key_here', template syntax, env lookups."""
    low = value.lower()
    if low in _PLACEHOLDER_VALUES or any(m in low for m in _PLACEHOLDER_MARKS):
        return True
    return len(set(value)) < max(3, min(8, len(value) // 4)) or _REPEAT.search(value) is not None


def _name_pieces(name: str) -> list[str]:
    """Lower-case words of a key name: "tokenScope" and "token_scope" both give ["token", "scope"]."""
    return _PIECE.findall(_CAMEL.sub(r"\1 \2", name).lower())


def _word_piece(piece: str) -> bool:
    """A word, optionally followed by up to three digits: "base", "GODEL", "Seq", "v1", "httplib2"."""
    core = piece.rstrip("0123456789")
    return len(piece) - len(core) <= 3 and core.isalpha() and (core.islower() or core.isupper() or core.istitle())


def _rules_for_name(rules: _RuleSet, name: str) -> list[_Compiled]:
    """The key-word rules whose key words occur in `name` and none of whose stop words is a word of it."""
    low = name.lower()
    pieces = _name_pieces(name)
    return [
        (r, p)
        for r, p in rules.keyword
        if any(w in low for w in r.keywords) and not any(x in r.stop_words for x in pieces)
    ]


def _identifier_like(token: str) -> bool:
    """Names, not random strings: camelCase words (AutoModelForSeq2SeqLM) or dash/underscore/slash-joined
    words (bert-base-uncased, from_pretrained). Random tokens almost never have these shapes."""
    if token.isalnum():
        for i, c in enumerate(token):
            if c.islower() and i and not token[i - 1].isalpha():
                return False
        return len(_CAP_WORD.findall(token)) >= 2
    pieces = [p for p in _SEPARATORS.split(token) if p]
    letters = sum(c.isalpha() for c in token)
    wordy = sum(len(p) for p in pieces if _word_piece(p))
    return len(pieces) >= 2 and wordy >= 0.6 * max(1, letters)


@detector(
    "secrets",
    config=SecretsConfig,
    categories=CATEGORIES,
    description="Credentials: provider API keys, cloud keys, private keys, JWTs, passwords in URLs and assignments.",
)
class SecretsDetector:
    """Finds credentials in every plain view and, optionally, in decoded payloads."""

    def __init__(self, config: SecretsConfig) -> None:
        self.config = config

    def scan(self, ctx: ScanContext) -> Iterator[Finding]:
        views = list(ctx.views.plain())
        original = views[0].text
        encoded = ("%" in original and _URL_ESCAPE.search(original)) or ("&" in original and _ENTITY.search(original))
        if self.config.scan_decoded and (encoded or _long_runs(original)):
            views.extend(ctx.views.decoded())
        found = [f for view in views for f in _ViewScan(self.config, ctx, view).run()]
        # Where views disagree (a folded or decoded view sees a whole key, the original only a piece of
        # it), the most confident and then the longest finding keeps the place.
        found.sort(key=lambda f: (-f.score, f.spans[0].start - f.spans[0].end))
        taken = _SpanSet()
        kept = [f for f in found if taken.add(f.spans[0].start, f.spans[0].end)]
        return iter(sorted(kept, key=lambda f: f.spans[0].start))


class _SpanSet:
    """Non-overlapping [a, b) intervals; `add` refuses one that overlaps. O(log n) per call."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def free(self, a: int, b: int) -> bool:
        i = bisect.bisect_left(self.starts, b)  # intervals starting before b
        return i == 0 or self.ends[i - 1] <= a

    def add(self, a: int, b: int) -> bool:
        if not self.free(a, b):
            return False
        i = bisect.bisect_left(self.starts, a)
        self.starts.insert(i, a)
        self.ends.insert(i, b)
        return True


def _long_runs(text: str, table: bytes = _TOKEN_MASK) -> list[int]:
    """Start offsets of the runs of 20+ token characters (one byte per character, so offsets agree)."""
    mask = text.encode("ascii", "replace").translate(table)
    starts = []
    i = mask.find(_LONG_RUN)
    while i != -1:
        starts.append(i)  # the leftmost hit of 20 in a run is the run's start
        j = mask.find(b" ", i)
        i = -1 if j == -1 else mask.find(_LONG_RUN, j)
    return starts


class _ViewScan:
    """One view: provider rules at long runs, literal-triggered rules, `near` rules, then key-word rules."""

    def __init__(self, config: SecretsConfig, ctx: ScanContext, view: View) -> None:
        self.config = config
        self.ctx = ctx
        self.view = view
        self.text = view.text
        self.taken = _SpanSet()
        self.hits: dict[str, list[tuple[int, int]]] = {}
        self.verdicts: dict[tuple[str, str], bool] = {}  # value checks already made (repeated text)
        self.by_name: dict[str, list[_Compiled]] = {}  # key-word rules that apply to a key name

    def finding(self, rule: SecretRule, a: int, b: int, evidence: str) -> Finding:
        self.taken.add(a, b)
        self.hits.setdefault(rule.id, []).append((a, b))
        return Finding(
            detector="secrets",
            category=rule.category,
            score=rule.score,
            spans=(self.view.span(a, b),),
            evidence=evidence,
            rule_id=rule.id,
            view=self.view.name,
            atlas=rule.atlas or (tx.UNSECURED_CREDENTIALS, tx.DATA_LEAKAGE),
            owasp=rule.owasp or (tx.LLM02,),
        )

    def run(self) -> Iterator[Finding]:
        text = self.text
        rules = rule_set()
        starts = _long_runs(text)
        wide = bool(starts) or _long_runs(text, _WIDE_MASK)
        for s in starts:
            self.ctx.check_deadline()
            for rule, pattern in rules.by_first.get(text[s], ()):
                if any(text.startswith(p, s) for p in rule.prefixes):
                    m = pattern.match(text, s)
                    if m is not None:
                        yield from self.check(rule, m)
        for literal, rule, pattern in rules.literal:
            # Apart from URLs, what a literal announces is a long credential: no long run, nothing to find.
            if (wide or rule.kind == "url") and literal in text:
                for m in pattern.finditer(text):
                    self.ctx.check_deadline()
                    yield from self.check(rule, m)
        for rule, pattern in rules.near:
            for a, b in self.hits.get(rule.near or "", ()):
                lo, hi = max(0, a - rule.distance), min(len(text), b + rule.distance)
                for m in pattern.finditer(text, lo, hi):
                    yield from self.check(rule, m)
        if rules.keyword and (starts or "=" in text or ":" in text):
            yield from self.keyword_rules(rules, bool(starts))

    # -- value checks ----------------------------------------------------------------------------------
    def check(self, rule: SecretRule, m: re.Match[str]) -> Iterator[Finding]:
        text = self.text
        a, b = m.span(rule.group)
        if a < 0 or not self.taken.free(a, b):
            return
        value = text[a:b]
        if rule.kind in ("token", "discord", "jwt", "near"):
            prev = text[m.start() - 1 : m.start()]
            if (prev and (prev.isalnum() or prev in "_+/")) or _looks_placeholder(value):
                return
            if _classes(value) < rule.min_classes:
                return
        if rule.kind == "discord" and not ck.b64_digits(value.split(".", 1)[0]):
            return
        if rule.kind == "jwt" and not ck.jwt_header_valid(value):
            return
        if rule.kind == "url":
            scheme = _SCHEME.search(text[max(0, m.start() - 21) : m.start()])
            if scheme is None or _looks_placeholder(value):
                return
        if rule.kind == "pem":
            block_end = self.pem_end(b)
            if block_end is None:
                return
            b = block_end
        yield self.finding(rule, a, b, f"{rule.provider} ({b - a} chars)")

    def pem_end(self, header_end: int) -> int | None:
        """End of a PEM block: its END line when present, else the base64 body; None when there is no body."""
        text = self.text
        end = text.find("-----END", header_end, header_end + 20_000)
        if end != -1:
            close = text.find("-----", end + 8, end + 80)
            if close != -1 and sum(c.isalnum() for c in text[header_end:end]) >= 32:
                return close + 5
        # No END line (a truncated paste): base64 lines, separated by newlines, escaped newlines or spaces.
        pos, body = header_end, 0
        while (m := _PEM_LINE.match(text, pos)) is not None and body < 100_000:
            chunk = m.group(1)
            if len(chunk) < 16 and not chunk.endswith("="):
                break  # a word after the key, not key material
            pos, body = m.end(), body + len(chunk)
        return pos if body >= 32 else None

    # -- key-word rules --------------------------------------------------------------------------------
    def keyword_rules(self, rules: _RuleSet, long_run: bool) -> Iterator[Finding]:
        text = self.text
        low = ck.lower_same_length(text)
        hits = []
        for stem in rules.stems:
            i = low.find(stem)
            while i != -1:
                hits.append((i, i + len(stem)))
                i = low.find(stem, i + 1)
        last_end = -1
        for start, end in sorted(hits):
            if start < last_end:
                continue  # another key word in the same name
            self.ctx.check_deadline()
            while start > 0 and text[start - 1] in _IDENT:
                start -= 1
            while end < len(text) and text[end] in _IDENT:
                end += 1
            last_end = end
            name = text[start:end]
            if name not in self.by_name:
                self.by_name[name] = _rules_for_name(rules, name)
            for rule, pattern in self.by_name[name]:
                if rule.kind == "entropy" and not long_run:
                    continue
                span = self.value_span(rule, pattern, end)
                if span is None:
                    continue
                a, b, quoted = span
                key = (rule.id + ("'" if quoted else ""), text[a:b])
                if key not in self.verdicts:
                    self.verdicts[key] = self.value_ok(rule, text[a:b], quoted)
                if self.verdicts[key] and self.taken.free(a, b):
                    yield self.finding(rule, a, b, f"{rule.provider}, value {b - a} chars")
                    break

    def value_span(self, rule: SecretRule, pattern: re.Pattern[str], end: int) -> tuple[int, int, bool] | None:
        """Where the value of the name ending at `end` lies, and whether it is quoted."""
        text = self.text
        if rule.kind == "entropy":
            # The first token within the window after the name, on the same line.
            window_end = end + self.config.context_window
            m = pattern.search(text, end, window_end + 202)
            if m is None or m.start() > window_end or "\n" in text[end : m.start()]:
                return None
            if m.end() == window_end + 202 and m.end() < len(text) and text[m.end()] in _TOKEN_CHARS:
                return None  # the token runs past the search bound: longer than any value we check
            return m.start(), m.end(), True
        m = pattern.match(text, end)
        if m is None:
            return None
        group = next(i for i in range(1, 5) if m.group(i) is not None)
        a, b = m.span(group)
        if group == 4 and text[b : b + 1] in ("(", "["):
            return None  # a call or an index: code, not a literal
        return a, b, group < 4

    def value_ok(self, rule: SecretRule, value: str, quoted: bool) -> bool:
        if rule.kind == "entropy":
            return (
                _classes(value) >= 2
                and any(c.isdigit() for c in value)
                and ck.shannon_entropy(value) >= self.config.min_entropy
                and not _identifier_like(value)
                and not _looks_placeholder(value)
            )
        # assignment: a literal that could be a credential, not a type, a variable or a sentence
        if len(value) < 6 or " " in value or "://" in value or _looks_placeholder(value) or _identifier_like(value):
            return False
        pieces = _SEPARATORS.split(value)
        if len(pieces) > 1 and all(p.isalpha() for p in pieces):
            return False  # snake_case or dotted words: a name or a scope, not a secret
        if quoted:
            return _classes(value) >= 2 or (not value.isalnum() and any(c.isalpha() for c in value))
        if value.replace("_", "").replace(".", "").isalpha():
            return False  # an identifier or a type name, not a literal
        return _classes(value) >= 2 and not value.replace(".", "").isdigit()
