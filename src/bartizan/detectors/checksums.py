"""Check-digit and checksum validators shared by the `pii` and `secrets` detectors, with the layout checks
(card groupings, phone shapes, dates) and the small text helpers both use.

A number that merely has the right shape is not a finding; one whose check digits agree almost always
is. Every function here is pure and never raises on malformed input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable

# --- card numbers -------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check used by payment card numbers. `digits` must be ASCII digits only."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iin_matches(digits: str, prefixes: tuple[str, ...], lengths: tuple[int, ...]) -> bool:
    """A card number of one of `lengths` whose issuer prefix is "a" (starts with a) or "a-b" (its first
    len(a) digits lie in [a, b])."""
    if len(digits) not in lengths:
        return False
    for p in prefixes:
        lo, _, hi = p.partition("-")
        if lo <= digits[: len(lo)] <= (hi or lo):
            return True
    return False


# --- IBAN -----------------------------------------------------------------------------------------------


def iban_valid(iban: str, lengths: dict[str, int]) -> bool:
    """ISO 13616 check: known country, that country's length, and mod-97 of the rearranged value is 1.

    `iban` is upper-case with no spaces; `lengths` maps a country code to its IBAN length.
    """
    if len(iban) < 5 or not iban.isascii() or not iban.isalnum():
        return False
    country = iban[:2]
    if lengths.get(country) != len(iban) or not country.isalpha() or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    remainder = 0
    for ch in rearranged:
        if ch.isdigit():
            remainder = (remainder * 10 + ord(ch) - 48) % 97
        elif "A" <= ch <= "Z":
            remainder = (remainder * 100 + ord(ch) - 55) % 97
        else:
            return False
    return remainder == 1


# --- US social security numbers -------------------------------------------------------------------------

# Numbers the Social Security Administration has publicly voided after they were printed as samples.
_VOIDED_SSNS = frozenset({"078051120", "219099999"})


def ssn_valid(digits: str) -> bool:
    """SSA assignment rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in _VOIDED_SSNS


# --- number layouts ------------------------------------------------------------------------------------

_NON_DIGITS = re.compile(r"[^0-9]+")


def card_grouping_ok(groups: list[str]) -> bool:
    """Card layouts: one block of 13-19 digits, 4-4-4-4(-1..4), 4-6-5 (Amex) or 4-6-4 (Diners)."""
    sizes = [len(g) for g in groups]
    total = sum(sizes)
    if not 13 <= total <= 19:
        return False
    if len(sizes) == 1:
        return True
    if sizes in ([4, 6, 5], [4, 6, 4]):
        return True
    return len(sizes) >= 4 and all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4


def phone_shape(value: str) -> str | None:
    """Classify a numeric run as a phone number: 'e164', 'nanp', 'national', 'grouped', 'bare' or None."""
    groups = [g for g in _NON_DIGITS.split(value) if g]
    digits = "".join(groups)
    seps = {c for c in value if c in " .-"}
    n = len(digits)
    if n > 17 or digit_sequence(digits, 6) or len(set(digits)) <= 2:
        return None  # 1234567890, 5555555: an example, not a number
    if value.startswith("+"):
        return "e164" if 8 <= n <= 15 and digits[0] != "0" else None
    if 3 <= len(groups[0]) <= 5 and groups[0].startswith("00") and len(groups) >= 3:
        return "e164" if 10 <= n <= 17 and groups[0][2] != "0" else None  # 00 international prefix
    if n < 7 or n > 12 or (len(seps) > 1 and "(" not in value) or value.count("(") + value.count(")") > 2:
        return None
    if len(groups) == 2 and seps == {"."}:
        return None  # a decimal number
    if len(groups) == 3 and len(groups[0]) + len(groups[2]) <= 6 and any(len(g) == 4 for g in (groups[0], groups[2])):
        return None  # a date such as 2023-01-15 or 15.01.2023
    sizes = [len(g) for g in groups]
    nanp = sizes[-3:] == [3, 3, 4] and (len(sizes) == 3 or (sizes[:-3] == [1] and groups[0] == "1"))
    if nanp and groups[-3][0] in "23456789" and groups[-2][0] in "23456789":
        return "nanp"
    if len(groups) == 1:
        return "bare" if n in (10, 11) else None
    if min(sizes) < 2:
        return None
    if digits[0] == "0" and 9 <= n <= 11:
        return "national"
    return "grouped"


def digit_sequence(digits: str, run: int) -> bool:
    """`run` or more consecutive ascending or descending digits (123456, 987654): typed, not assigned."""
    up = down = 1
    for x, y in itertools.pairwise(digits):
        up = up + 1 if ord(y) - ord(x) == 1 else 1
        down = down + 1 if ord(x) - ord(y) == 1 else 1
        if up >= run or down >= run:
            return True
    return False


# --- dates ---------------------------------------------------------------------------------------------

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?P<dd>[0-9](?<![0-9][0-9])[0-9]?)"  # every branch opens with one character class: fast to scan
_DATE = re.compile(  # for lower-cased text
    r"(?P<n1>[0-9](?<![0-9][0-9])[0-9]?)[/.\-](?P<n2>[0-9]{1,2})[/.\-](?P<y>[0-9]{4}|[0-9]{2})(?![0-9])"
    r"|(?P<iy>[0-9](?<![0-9][0-9])[0-9]{3})[/.\-](?P<im>[0-9]{1,2})[/.\-](?P<id>[0-9]{1,2})(?![0-9])"
    rf"|{_DAY}(?:st|nd|rd|th)? (?:of )?(?P<dmon>{_MONTHS})\.?,? (?P<dy>[0-9]{{4}})(?![0-9])"
    rf"|(?P<mon>{_MONTHS})\.? (?P<md>[0-9]{{1,2}})(?:st|nd|rd|th)?,? (?P<my>[0-9]{{4}})(?![0-9])"
)


def find_date(text: str, pos: int, endpos: int) -> tuple[int, int, str] | None:
    """The first real calendar date in text[pos:endpos] (numeric in either day/month order, ISO, or with a
    month name) as (start, end, "numeric" | "textual"), or None."""
    window = lower_same_length(text[pos:endpos])
    m = _DATE.search(window)
    if m is None:
        return None
    start, end = pos + m.start(), pos + m.end()
    if m.group("mon") or m.group("dmon"):
        day, year = int(m.group("md") or m.group("dd")), int(m.group("my") or m.group("dy"))
        ok = 1 <= day <= 31 and 1800 <= year <= 2100
        return (start, end, "textual") if ok else None
    if m.group("iy"):
        year, month, day = int(m.group("iy")), int(m.group("im")), int(m.group("id"))
    else:
        first, second, year = int(m.group("n1")), int(m.group("n2")), int(m.group("y"))
        month, day = (first, second) if first <= 12 else (second, first)  # either order may be meant
    ok = (1800 <= year <= 2100 or len(m.group("y") or "") == 2) and 1 <= month <= 12 and 1 <= day <= 31
    return (start, end, "numeric") if ok else None


# --- Bitcoin --------------------------------------------------------------------------------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def base58check_version(address: str) -> int | None:
    """The version byte of a valid 25-byte Base58Check payload (P2PKH 0x00, P2SH 0x05, ...), else None."""
    num = 0
    for ch in address:
        idx = _B58_INDEX.get(ch)
        if idx is None:
            return None
        num = num * 58 + idx
    pad = len(address) - len(address.lstrip("1"))
    try:
        body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    except OverflowError:
        return None
    raw = b"\x00" * pad + body
    if len(raw) != 25:
        return None
    payload, checksum = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        return None
    return payload[0]


_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX = {c: i for i, c in enumerate(_BECH32_CHARSET)}
_BECH32_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3


def _bech32_polymod(values: Iterable[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _BECH32_GEN[i]
    return chk


def segwit_address_valid(address: str, hrp: str = "bc") -> bool:
    """BIP-173 / BIP-350 SegWit address: bech32 (v0) or bech32m (v1+) checksum and a valid program size."""
    if address.lower() != address and address.upper() != address:
        return False  # mixed case is invalid by definition
    addr = address.lower()
    sep = addr.rfind("1")
    if addr[:sep] != hrp or len(addr) > 90 or len(addr) - sep - 1 < 7:
        return False
    data = []
    for ch in addr[sep + 1 :]:
        idx = _BECH32_INDEX.get(ch)
        if idx is None:
            return False
        data.append(idx)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    const = _bech32_polymod(expanded + data)
    version = data[0]
    if version > 16 or const != (_BECH32_CONST if version == 0 else _BECH32M_CONST):
        return False
    # Regroup the 5-bit program (without version and checksum) into bytes.
    acc = bits = 0
    program = []
    for v in data[1:-6]:
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            program.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc << (8 - bits)) & 0xFF:
        return False
    if not 2 <= len(program) <= 40:
        return False
    return version != 0 or len(program) in (20, 32)


# --- Ethereum (EIP-55) ----------------------------------------------------------------------------------


def _keccak_tables() -> tuple[list[int], list[int]]:
    """Round constants and rotation offsets of Keccak-f[1600], derived as in the specification."""
    rc = []
    r = 1
    for _ in range(24):
        c = 0
        for j in range(7):
            r = ((r << 1) ^ ((r >> 7) * 0x71)) % 256
            if r & 2:
                c ^= 1 << ((1 << j) - 1)
        rc.append(c)
    rot = [0] * 25
    x, y = 1, 0
    for t in range(24):
        rot[x + 5 * y] = ((t + 1) * (t + 2) // 2) % 64
        x, y = y, (2 * x + 3 * y) % 5
    return rc, rot


_KECCAK_RC, _KECCAK_ROT = _keccak_tables()
_MASK64 = (1 << 64) - 1


def _keccak_f(a: list[int]) -> None:
    for rc in _KECCAK_RC:
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ ((c[(x + 1) % 5] << 1 | c[(x + 1) % 5] >> 63) & _MASK64) for x in range(5)]
        a[:] = [a[i] ^ d[i % 5] for i in range(25)]
        b = [0] * 25
        for x in range(5):
            for y in range(5):
                i = x + 5 * y
                n = _KECCAK_ROT[i]
                b[y + 5 * ((2 * x + 3 * y) % 5)] = ((a[i] << n) | (a[i] >> (64 - n))) & _MASK64 if n else a[i]
        a[:] = [b[i] ^ (~b[(i % 5 + 1) % 5 + 5 * (i // 5)] & b[(i % 5 + 2) % 5 + 5 * (i // 5)]) for i in range(25)]
        a[0] ^= rc


def keccak256(data: bytes) -> bytes:
    """Original Keccak-256 (Ethereum's hash; differs from NIST SHA3-256 only in the padding byte)."""
    rate = 136
    padded = bytearray(data) + b"\x01"
    padded += b"\x00" * (-len(padded) % rate)
    padded[-1] |= 0x80
    state = [0] * 25
    for off in range(0, len(padded), rate):
        for i in range(rate // 8):
            state[i] ^= int.from_bytes(padded[off + 8 * i : off + 8 * i + 8], "little")
        _keccak_f(state)
    return b"".join(state[i].to_bytes(8, "little") for i in range(4))


def eip55_valid(hex40: str) -> bool:
    """True when the mixed-case hex of an Ethereum address carries a correct EIP-55 checksum.

    All-lower or all-upper addresses carry no checksum and return False.
    """
    if len(hex40) != 40 or hex40.lower() == hex40 or hex40.upper() == hex40:
        return False
    digest = keccak256(hex40.lower().encode("ascii")).hex()
    for ch, h in zip(hex40, digest[:40], strict=True):
        if ch.isalpha() and ch.isupper() != (int(h, 16) >= 8):
            return False
    return True


# --- tokens ---------------------------------------------------------------------------------------------


def shannon_entropy(s: str) -> float:
    """Bits per character of the character distribution of `s`."""
    n = len(s)
    if not n:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def b64url_json(part: str) -> object | None:
    """Decode one base64url segment (padding optional) as JSON, or None."""
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value: object = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        return None
    return value


def jwt_header_valid(token: str) -> bool:
    """A JWS compact token whose first segment decodes to a JSON object naming an `alg`."""
    header = b64url_json(token.split(".", 1)[0])
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


def b64_digits(part: str) -> bool:
    """A base64url segment that decodes to ASCII digits only (the user-id part of a Discord bot token)."""
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        return False
    return 15 <= len(raw) <= 21 and raw.isdigit()


# --- text helpers ---------------------------------------------------------------------------------------

_DIGIT_BYTES = b"0123456789"


def digit_count(text: str | bytes) -> int:
    """ASCII digits in a text (or its UTF-8 bytes), counted at C speed."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return len(raw) - len(raw.translate(None, _DIGIT_BYTES))


def word_char(text: str, i: int) -> bool:
    """text[i] exists and is an ASCII letter, digit or underscore."""
    return 0 <= i < len(text) and text[i].isascii() and (text[i].isalnum() or text[i] == "_")


def whole_number(text: str, a: int, b: int) -> bool:
    """[a, b) is a whole value: no word character touches it, nor a "." or "-" that continues it, and it is
    not part of a path or an anchor."""
    if word_char(text, a - 1) or word_char(text, b) or text[a - 1 : a] in ("/", "#"):
        return False
    if text[a - 1 : a] in (".", "-") and word_char(text, a - 2):
        return False
    return not (text[b : b + 1] in (".", "-") and text[b + 1 : b + 2].isdigit())


def lower_same_length(text: str) -> str:
    """`text.lower()` with offsets kept: the few characters whose lower case is longer stay as they are."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
