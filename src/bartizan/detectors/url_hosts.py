"""Judging a link's host: literal IP addresses, punycode, mixed scripts and confusables, imitated brands.

Used by the `urls` detector. The brand and image-host lists are data (rules/url_hosts.yaml), loaded on first use.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

from bartizan.schema import load_yaml_model
from bartizan.text.unicode import fold

IP_HOST, PUNYCODE, LOOKALIKE = "ip_host", "punycode", "lookalike_domain"

_CONFUSABLE_SCRIPTS = frozenset({"CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC", "LISU"})
_LEET = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"})
_LURES = frozenset({"login", "signin", "secure", "verify", "account", "support", "update", "wallet", "auth", "billing"})


@dataclass(frozen=True, slots=True)
class Signal:
    """One reason to distrust a link: its category, score, rule and safe evidence."""

    category: str
    score: float
    rule: str
    evidence: str


class _Brand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    domains: tuple[str, ...] = Field(min_length=1)


class _HostFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1
    image_hosts: tuple[str, ...] = ()
    two_level_suffixes: tuple[str, ...] = ()
    brands: tuple[_Brand, ...]


@lru_cache(maxsize=1)
def host_lists() -> _HostFile:
    """The packaged host lists, loaded on first use."""
    text = resources.files("bartizan.rules").joinpath("url_hosts.yaml").read_text(encoding="utf-8")
    return load_yaml_model(_HostFile, text, "bartizan/rules/url_hosts.yaml")


def known_image_host(host: str) -> bool:
    """A public image service whose logs an attacker cannot read (see rules/url_hosts.yaml)."""
    return any(fnmatchcase(host, glob) for glob in host_lists().image_hosts)


def _number(part: str) -> int | None:
    """One part of an IPv4 address as `inet_aton` reads it: decimal, 0x-hex or 0-octal."""
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part, 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def ip_signal(host: str) -> Signal | None:
    """A literal IP host; the numeric spellings browsers accept (2130706433, 0x7f.1, 0177.0.0.1) score highest."""
    if host[-1] not in "0123456789abcdefABCDEF]" and ":" not in host:
        return None  # a name ending in a non-hex letter: no numeric spelling of an address does
    if ":" in host:
        try:
            ip6 = ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return None
        return Signal(IP_HOST, 0.3 if ip6.is_loopback else 0.5, "ip_host.ipv6", "IPv6 literal host")
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    numbers = [_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    if len(parts) == 4 and all(p.isdigit() and str(int(p)) == p and int(p) <= 255 for p in parts):
        ip = ipaddress.IPv4Address(host)
        if ip.is_link_local:
            return Signal(IP_HOST, 0.8, "ip_host.link_local", "link-local IPv4 host (cloud metadata address range)")
        if ip.is_loopback or ip.is_unspecified:
            return Signal(IP_HOST, 0.3, "ip_host.loopback", "loopback IPv4 host")
        if ip.is_private:
            return Signal(IP_HOST, 0.4, "ip_host.private", "private-network IPv4 host")
        return Signal(IP_HOST, 0.5, "ip_host.ipv4", "public IPv4 literal host")
    return Signal(IP_HOST, 0.9, "ip_host.numeric", f"IPv4 host written in an unusual numeric form ({len(parts)} parts)")


def _scripts(label: str) -> set[str]:
    return {unicodedata.name(c, "?").split(" ")[0] for c in label if c.isalpha()}


def registrable(host: str) -> tuple[str, str]:
    """(name, domain) of a host: ("paypal", "paypal.co.uk") for "www.paypal.co.uk"."""
    labels = host.split(".")
    n = 3 if len(labels) >= 3 and ".".join(labels[-2:]) in host_lists().two_level_suffixes else 2
    domain = ".".join(labels[-n:])
    return labels[-n] if len(labels) >= n else labels[0], domain


@lru_cache(maxsize=1)
def _brand_maps() -> tuple[dict[str, _Brand], dict[str, _Brand]]:
    """Listed brands by name and by the domains they own."""
    listed = host_lists().brands
    return {b.name: b for b in listed}, {d: b for b in listed for d in b.domains}


def _one_edit(a: str, b: str) -> bool:
    """Whether a and b differ by one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, longer = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == longer[i]:
        i += 1
    return short[i:] == longer[i + 1 :]


def _imitated(name: str) -> tuple[_Brand, str] | None:
    """The brand a registrable name imitates, and how ("leet", "lure" or "typo"); None when it imitates none."""
    by_name = _brand_maps()[0]
    skeleton = name.translate(_LEET).replace("rn", "m").replace("vv", "w")
    if skeleton != name and skeleton in by_name:
        return by_name[skeleton], "leet"
    tokens = name.split("-")
    if len(tokens) > 1 and _LURES.intersection(tokens):
        for token in tokens:
            if token in by_name:
                return by_name[token], "lure"
    for brand in by_name.values():
        # Short names have too many innocent one-letter neighbours; a plural is a different word.
        if len(brand.name) >= 6 and name != brand.name + "s" and _one_edit(name, brand.name):
            return brand, "typo"
    return None


def brand_signal(host: str, homoglyphs: bool) -> Signal | None:
    """A host made to look like a listed brand's: homoglyphs, leetspeak, one typo, or brand plus a lure word."""
    by_name, by_domain = _brand_maps()
    name, domain = registrable(host)
    if name in by_name or domain in by_domain:
        if not homoglyphs:
            return None
        brand = by_name.get(name) or by_domain[domain]
        return Signal(LOOKALIKE, 0.95, "lookalike.brand_homoglyph", f"confusable characters imitate {brand.domains[0]}")
    found = _imitated(name)
    if found is None or any(host == d or host.endswith("." + d) for d in found[0].domains):
        return None
    brand, how = found
    if how == "leet":
        return Signal(LOOKALIKE, 0.7, "lookalike.brand_leet", f"digit or letter swaps imitate {brand.domains[0]}")
    if how == "lure":
        return Signal(
            LOOKALIKE, 0.6, "lookalike.brand_lure", f"{brand.name} plus a login/security word, not {brand.domains[0]}"
        )
    return Signal(LOOKALIKE, 0.5, "lookalike.brand_typo", f"one typo away from {brand.domains[0]}")


def _decode_punycode(host: str) -> str:
    labels = []
    for label in host.split("."):
        try:
            labels.append(label[4:].encode("ascii").decode("punycode") if label.startswith("xn--") else label)
        except (UnicodeError, ValueError):
            labels.append(label)
    return ".".join(labels)


def host_signals(host: str) -> Iterator[Signal]:
    """Everything suspicious about a host: IP literal, punycode, mixed scripts, confusables, brand imitation."""
    ip = ip_signal(host)
    if ip is not None:
        yield ip
        return
    display = host  # the host as a browser shows it
    if "xn--" in host:
        display = _decode_punycode(host)
        labels = display.split(".")
        tricky = display != fold(display)[0] and any(_scripts(lab) & _CONFUSABLE_SCRIPTS for lab in labels)
        score, rule = (0.85, "punycode.confusable") if tricky else (0.5, "punycode.idn")
        count = host.count("xn--")
        yield Signal(PUNYCODE, score, rule, f"{count} punycode labels" + (", confusable letters" if tricky else ""))
    folded = display
    if not display.isascii():
        text, _, hidden = fold(display)
        folded = text.lower()
        labels = display.split(".")
        if hidden.any:
            yield Signal(LOOKALIKE, 0.9, "lookalike.invisible", "invisible characters inside the host name")
        elif any(len(s := _scripts(lab)) > 1 and s & _CONFUSABLE_SCRIPTS for lab in labels):
            yield Signal(LOOKALIKE, 0.85, "lookalike.mixed_script", "host label mixes Latin with look-alike letters")
        elif folded.isascii() and any(_scripts(lab) & _CONFUSABLE_SCRIPTS for lab in labels):
            yield Signal(
                LOOKALIKE, 0.75, "lookalike.confusable", "host spelled in look-alike letters of another script"
            )
    if folded.isascii():
        brand = brand_signal(folded, homoglyphs=folded != display)
        if brand is not None:
            yield brand
