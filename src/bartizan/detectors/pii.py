"""PII detector: e-mail addresses, phone numbers, payment cards, IBANs, US SSNs, IP addresses, crypto
wallets and dates of birth, each validated (checksums, number plans, context) before it is reported.

Only the original and the folded (`normalized`) views are read: PII is a value, not an instruction, and a
fullwidth or homoglyph-spelled number is still found through `normalized` and mapped back. Every span
covers exactly the value, so that redaction replaces exactly it. Evidence names the type and shape only.

Cost control: one cheap pass builds gates (digit count, '@', long alphanumeric runs, ...) and each family
runs only when its gate opens; all digit-based values are found from one scan for numeric runs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bartizan import taxonomy as tx
from bartizan.detectors import checksums as ck
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.detectors.registry import detector
from bartizan.rules.loader import read_rule_text
from bartizan.schema import load_yaml_model
from bartizan.text.views import View
from bartizan.types import Finding

PiiType = Literal["email", "phone", "card", "iban", "ssn", "ip_address", "crypto_wallet", "date_of_birth"]
ALL_TYPES: tuple[PiiType, ...] = (
    "email", "phone", "card", "iban", "ssn", "ip_address", "crypto_wallet", "date_of_birth",
)  # fmt: skip


class PiiConfig(DetectorConfig):
    types: tuple[PiiType, ...] = ALL_TYPES
    context_window: int = Field(default=40, ge=0, le=200)  # characters searched for a context word


# --- reference tables (src/bartizan/rules/pii.yaml) ------------------------------------------------------


class CardBrand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    prefixes: tuple[str, ...]
    lengths: tuple[int, ...]

    def matches(self, digits: str) -> bool:
        return ck.iin_matches(digits, self.prefixes, self.lengths)


class PiiTables(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1
    source: str = ""
    license: str = ""
    iban_lengths: dict[str, int]
    card_brands: tuple[CardBrand, ...]
    context: dict[str, tuple[str, ...]]
    email_file_extensions: frozenset[str]


@dataclass(frozen=True)
class _Tables:
    data: PiiTables
    context: dict[str, re.Pattern[str]] = field(default_factory=dict)


@lru_cache(maxsize=1)
def tables() -> _Tables:
    """The packaged tables with context-word patterns compiled; loaded on first use, once per process."""
    text, source = read_rule_text("pii.yaml")
    data = load_yaml_model(PiiTables, text, source)
    ctx = {}
    for kind, words in data.context.items():
        alts = "|".join(re.escape(w).replace(r"\ ", r"[\s_-]?") for w in sorted(words, key=len, reverse=True))
        ctx[kind] = re.compile(rf"(?<![a-z0-9])(?:{alts})(?![a-z0-9])")  # matched against lower-cased text
    return _Tables(data, ctx)


# --- patterns (all linear: single character classes, separators that cannot overlap their neighbours) ---

_RUN = re.compile(r"[0-9][0-9() .\-]{5,}", re.ASCII)  # anything digit-based worth a closer look
_CARD = re.compile(r"[0-9](?:[ -]?[0-9]){12,}", re.ASCII)
_SSN = re.compile(r"[0-9][0-9]{2}([- ])[0-9]{2}\1[0-9]{4}", re.ASCII)
_BARE9 = re.compile(r"[0-9][0-9]{8}", re.ASCII)
_IPV4 = re.compile(r"[0-9][0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", re.ASCII)
_IPV6 = re.compile(r"[0-9A-Fa-f:][0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}", re.ASCII)
_EXT = re.compile(r" ?(?:x|ext\.?|extension) ?[0-9]{1,6}(?![0-9A-Za-z])", re.IGNORECASE)
_DOMAIN = re.compile(r"(?<![A-Za-z0-9-])(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")
_IBAN = re.compile(r"[A-Z][A-Z][0-9]{2}(?:[A-Z0-9]|[ ](?=[A-Z0-9])){11,40}")
_B58 = re.compile(r"[13](?<![0-9A-Za-z][13])[1-9A-HJ-NP-Za-km-z]{25,34}(?![0-9A-Za-z])")
_BECH32 = re.compile(r"(?:bc1[02-9ac-hj-np-z]{11,71}|BC1[02-9AC-HJ-NP-Z]{11,71})(?![0-9A-Za-z])")
_ETH = re.compile(r"0x[0-9a-fA-F]{40}(?![0-9A-Za-z])")
_PERSONAL = re.compile(r"(?<![a-z])(?:i|i'm|im|me|my|we|our|you|your|you're)(?![a-z])")  # on lower case
_ALNUM_MASK = bytes(97 if chr(i).isascii() and chr(i).isalnum() else 32 for i in range(256))
_UPPER_DIGIT_MASK = bytes(65 if 65 <= i <= 90 else 57 if 48 <= i <= 57 else 32 for i in range(256))
_CARD_SEP = re.compile(r"([ -])")


def _card_brand(digits: str) -> str | None:
    """The brand of a Luhn-valid number with a known IIN and length; None for anything else."""
    if not ck.luhn_valid(digits) or ck.digit_sequence(digits, 7):
        return None
    return next((br.name for br in tables().data.card_brands if br.matches(digits)), None)


@detector(
    "pii",
    config=PiiConfig,
    categories=ALL_TYPES,
    description="Personal data (e-mail, phone, card, IBAN, SSN, IP, crypto wallet, date of birth), validated.",
)
class PiiDetector:
    """Finds personal data in the original and folded text; every value is checked before it is reported."""

    def __init__(self, config: PiiConfig) -> None:
        self.config = config
        self.types = frozenset(config.types)

    def scan(self, ctx: ScanContext) -> Iterator[Finding]:
        seen: set[tuple[str, int, int]] = set()
        for view in ctx.views.plain():
            for f in _ViewScan(self, ctx, view).run():
                key = (f.category, f.spans[0].start, f.spans[0].end)
                if key not in seen:
                    seen.add(key)
                    yield f


class _ViewScan:
    """One pass over one view: gates first, then each family whose gate opened."""

    def __init__(self, det: PiiDetector, ctx: ScanContext, view: View) -> None:
        self.types = det.types
        self.window = det.config.context_window
        self.ctx = ctx
        self.view = view
        self.text = view.text
        self.taken: list[tuple[int, int]] = []  # spans reported in the current numeric run

    # -- helpers ---------------------------------------------------------------------------------------
    def near(self, kind: str, a: int, b: int, after: int = 0) -> bool:
        """A context word of `kind` within the window before [a, b) (or `after` characters after it)."""
        pat = tables().context[kind]
        # One character more on the far side, so that the word-boundary checks see a cut word as cut.
        if pat.search(self.text[max(0, a - self.window - 1) : a].lower()):
            return True
        return bool(after) and bool(pat.search(self.text[b : b + after + 1].lower()))

    def finding(self, category: str, a: int, b: int, score: float, evidence: str, rule_id: str) -> Finding:
        self.taken.append((a, b))
        return Finding(
            detector="pii",
            category=category,
            score=score,
            spans=(self.view.span(a, b),),
            evidence=evidence,
            rule_id=rule_id,
            view=self.view.name,
            atlas=(tx.DATA_LEAKAGE,),
            owasp=(tx.LLM02,),
        )

    def overlaps(self, a: int, b: int) -> bool:
        return any(a < y and x < b for x, y in self.taken)

    # -- driver ----------------------------------------------------------------------------------------
    def run(self) -> Iterator[Finding]:
        text = self.text
        raw = text.encode("utf-8", "surrogatepass")  # shared by the byte-level gates below
        digits = ck.digit_count(raw)
        if "email" in self.types and "@" in text:
            yield from self.emails()
        if digits >= 4:
            for m in _RUN.finditer(text):
                self.ctx.check_deadline()
                yield from self.numeric_run(m.start(), m.end())
        if digits >= 8 and "iban" in self.types and b"AA99" in raw.translate(_UPPER_DIGIT_MASK):
            yield from self.ibans()
        if "ip_address" in self.types and ("::" in text or text.count(":") >= 7):
            yield from self.ipv6()
        if "crypto_wallet" in self.types and digits:
            yield from self.wallets(b"a" * 26 in raw.translate(_ALNUM_MASK))
        if "date_of_birth" in self.types and digits >= 4:
            low = ck.lower_same_length(text)
            if "born" in low or "birth" in low or "dob" in low or "d.o.b" in low:
                yield from self.dates_of_birth(low)

    # -- e-mail ----------------------------------------------------------------------------------------
    def emails(self) -> Iterator[Finding]:
        text = self.text
        excluded = tables().data.email_file_extensions
        at = text.find("@")
        while at != -1:
            self.ctx.check_deadline()
            if at == 0 or text[at - 1] not in _LOCAL_CHARS or not ck.word_char(text, at + 1):
                at = text.find("@", at + 1)
                continue
            m = _DOMAIN.match(text, at + 1)
            start = at
            while start > 0 and at - start < 64 and text[start - 1] in _LOCAL_CHARS:
                start -= 1
            while start < at and text[start] in ".'":
                start += 1
            local = text[start:at]
            if m and local and not local.endswith(".") and ".." not in local:
                end = m.end()
                scp = text[end : end + 1] == ":" and ck.word_char(text, end + 1)  # git@host:org/repo
                userinfo = text[max(0, start - 3) : start] == "://"
                if not scp and not userinfo and m.group().rsplit(".", 1)[1].lower() not in excluded:
                    yield self.finding("email", start, end, 0.9, f"email address, {end - start} chars", "pii.email")
            at = text.find("@", at + 1)

    # -- digit-based values ----------------------------------------------------------------------------
    def numeric_run(self, a: int, b: int) -> Iterator[Finding]:
        """Cards, SSNs, IPv4 addresses and phone numbers of one numeric run; a phone never overlaps the others."""
        text = self.text
        self.taken = []
        while b > a and not text[b - 1].isdigit():
            b -= 1
        run = text[a:b]
        n = ck.digit_count(run)
        if n < 4:
            return
        if n >= 13 and "card" in self.types:
            for m in _CARD.finditer(run):
                yield from self.card(a + m.start(), a + m.end())
        if n >= 9 and "ssn" in self.types:
            for m in _SSN.finditer(run):
                yield from self.ssn(a + m.start(), a + m.end(), m.group(1))
            if n == 9:
                for m in _BARE9.finditer(run):
                    yield from self.ssn(a + m.start(), a + m.end(), "")
        if "." in run and "ip_address" in self.types:
            for m in _IPV4.finditer(run):
                yield from self.ipv4(a + m.start(), a + m.end())
        if n >= 7 and "phone" in self.types:
            # A phone may share a run with a card or an SSN: try what they leave free.
            for x, y in [*sorted(self.taken), (b, b)]:
                seg_end = min(x, b)
                while seg_end > a and not text[seg_end - 1].isdigit():
                    seg_end -= 1
                if ck.digit_count(text[a:seg_end]) >= 7:
                    yield from self.phone(a, seg_end)
                a = y
                while a < b and not text[a].isdigit():
                    a += 1

    def card(self, a: int, b: int) -> Iterator[Finding]:
        """Cards among the digit groups of [a, b): windows of at most 19 digits, longest first from each
        group, since a run may carry an order number before a card or an expiry date after it."""
        text = self.text
        parts = _CARD_SEP.split(text[a:b])
        groups, seps = parts[0::2], parts[1::2]
        offsets = [a]
        for g in groups:
            offsets.append(offsets[-1] + len(g) + 1)
        checked: dict[str, str | None] = {}  # repeated runs repeat their windows
        i = 0
        while i < len(groups):
            j, total = i, 0
            if len(groups[i]) == 4 or 13 <= len(groups[i]) <= 19:  # every layout opens with 4 or is one block
                while j < len(groups) and total + len(groups[j]) <= 19:
                    total += len(groups[j])
                    j += 1
            while j > i and total >= 13:
                window = groups[i:j]
                if len(set(seps[i : j - 1])) <= 1 and ck.card_grouping_ok(window):
                    digits = "".join(window)
                    if digits not in checked:
                        checked[digits] = _card_brand(digits)
                    start, end = offsets[i], offsets[j] - 1
                    if checked[digits] and ck.whole_number(text, start, end):
                        score = 0.95 if self.near("card", start, end) else 0.9
                        ev = f"card: {checked[digits]}, {len(digits)} digits, Luhn valid"
                        yield self.finding("card", start, end, score, ev, "pii.card")
                        break
                j -= 1
                total -= len(groups[j])
            i = j if j > i and total >= 13 else i + 1

    def ssn(self, a: int, b: int, sep: str) -> Iterator[Finding]:
        text = self.text
        if not ck.whole_number(text, a, b):
            return
        digits = text[a:b].replace(sep, "") if sep else text[a:b]
        if not ck.ssn_valid(digits) or self.overlaps(a, b):
            return
        context = self.near("ssn", a, b)
        if sep == "-":
            score, shape = (0.95 if context else 0.8), "dashed"
        elif context:
            score, shape = 0.8, ("spaced" if sep else "bare")
        else:
            return
        yield self.finding("ssn", a, b, score, f"ssn: {shape} 3-2-4 format, valid area/group/serial", "pii.ssn")

    def ipv4(self, a: int, b: int) -> Iterator[Finding]:
        text = self.text
        if not ck.whole_number(text, a, b):
            return  # part of a longer token: a version, an OID, a decimal
        octets = text[a:b].split(".")
        if any(len(o) > 1 and o[0] == "0" for o in octets) or any(int(o) > 255 for o in octets):
            return
        # Decision: a dotted quad right after a version word ("version 1.2.3.4", "v1.2.3.4") is a version.
        if tables().context["ip_version"].search(text[max(0, a - 13) : a].lower()):
            return
        ip = ipaddress.IPv4Address(text[a:b])
        yield from self._ip(ip, a, b, "pii.ipv4")

    def ipv6(self) -> Iterator[Finding]:
        text = self.text
        for m in _IPV6.finditer(text):
            self.ctx.check_deadline()
            a, b = m.span()
            if ck.word_char(text, a - 1) or text[a - 1 : a] == ":" or ck.word_char(text, b) or text[b : b + 1] == ":":
                continue
            value = m.group()
            groups = [g for g in re.split(r"[:.]", value) if g]
            if len(groups) < 3 or not any(c.isdigit() for c in value):
                continue
            try:
                ip = ipaddress.IPv6Address(value)
            except ValueError:
                continue
            yield from self._ip(ip, a, b, "pii.ipv6")

    def _ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, a: int, b: int, rule: str) -> Iterator[Finding]:
        if ip.is_loopback or ip.is_unspecified or ip.is_multicast or str(ip).startswith("255."):
            return
        kind = "internal" if (ip.is_private or ip.is_reserved or ip.is_link_local) else "public"
        score = 0.4 if kind == "internal" else 0.7
        yield self.finding("ip_address", a, b, score, f"ipv{ip.version} address ({kind})", rule)

    def phone(self, a: int, b: int) -> Iterator[Finding]:
        text = self.text
        if text[a - 1 : a] == "(":
            a -= 1
        elif text[a - 1 : a] == "+":
            a -= 1
        ext = _EXT.match(text, b)
        end = ext.end() if ext else b
        if not ck.whole_number(text, a, end) or text[a - 1 : a] == "$":
            return
        kind = ck.phone_shape(text[a:b])
        if kind is None:
            return
        context = self.near("phone", a, b, after=15)
        if kind in ("e164", "nanp"):
            score = 0.85
        elif kind == "national":
            score = 0.75 if context else 0.6
        elif context:
            score = 0.6
        else:
            return
        n = ck.digit_count(text[a:b])
        yield self.finding("phone", a, end, score, f"phone: {kind} format, {n} digits", f"pii.phone.{kind}")

    # -- IBAN ------------------------------------------------------------------------------------------
    def ibans(self) -> Iterator[Finding]:
        text = self.text
        lengths = tables().data.iban_lengths
        for m in _IBAN.finditer(text):
            self.ctx.check_deadline()
            a = m.start()
            want = lengths.get(m.group()[:2])
            if want is None or ck.word_char(text, a - 1):
                continue
            # Walk to the country's length in alphanumerics; the IBAN must end at a group boundary.
            count, end = 0, a
            while end < m.end() and count < want:
                count += text[end] != " "
                end += 1
            if count < want or ck.word_char(text, end):
                continue
            value = text[a:end].replace(" ", "")
            if ck.iban_valid(value, lengths):
                ev = f"iban: {value[:2]}, {len(value)} chars, mod-97 valid"
                yield self.finding("iban", a, end, 0.95, ev, "pii.iban")

    # -- crypto wallets --------------------------------------------------------------------------------
    def wallets(self, long_alnum: bool) -> Iterator[Finding]:
        text = self.text
        if long_alnum:
            for m in _B58.finditer(text):
                a, b = m.span()
                if ck.word_char(text, a - 1):
                    continue
                version = ck.base58check_version(m.group())
                if version in (0, 5):
                    kind = "P2PKH" if version == 0 else "P2SH"
                    ev = f"bitcoin {kind} address, Base58Check valid"
                    yield self.finding("crypto_wallet", a, b, 0.9, ev, "pii.wallet.btc_base58")
            if "bc1" in text or "BC1" in text:
                for m in _BECH32.finditer(text):
                    a, b = m.span()
                    if not ck.word_char(text, a - 1) and ck.segwit_address_valid(m.group()):
                        ev = "bitcoin SegWit address, bech32 checksum valid"
                        yield self.finding("crypto_wallet", a, b, 0.9, ev, "pii.wallet.btc_bech32")
        if "0x" in text:
            for m in _ETH.finditer(text):
                a, b = m.span()
                if ck.word_char(text, a - 1):
                    continue
                if ck.eip55_valid(m.group()[2:]):
                    ev, score = "ethereum address, EIP-55 checksum valid", 0.9
                elif m.group()[2:] in (m.group()[2:].lower(), m.group()[2:].upper()) and self.near("wallet", a, b):
                    ev, score = "ethereum address, wallet context", 0.7
                else:
                    continue
                yield self.finding("crypto_wallet", a, b, score, ev, "pii.wallet.eth")

    # -- dates of birth --------------------------------------------------------------------------------
    def dates_of_birth(self, low: str) -> Iterator[Finding]:
        text = self.text
        for c in tables().context["dob"].finditer(low):
            self.ctx.check_deadline()
            date = ck.find_date(text, c.end(), c.end() + self.window)
            if date is None or ck.word_char(text, date[0] - 1):
                continue
            a, b, shape = date
            # "born" alone mostly introduces a public figure ("Ada Lovelace (born 10 December 1815)"): report
            # it below the default threshold unless the writer speaks about themselves or the reader.
            personal = c.group() != "born" or _PERSONAL.search(low, max(0, c.start() - 30), c.start())
            score = 0.8 if personal else 0.45
            yield self.finding("date_of_birth", a, b, score, f"date of birth, {shape} date", "pii.dob")
