"""RFC 8785 JSON Canonicalization Scheme (JCS): the byte form that certificate digests are computed over.

Two parties that hold the same JSON value must hash the same bytes, whatever their JSON/YAML library, key
order or number spelling. JCS fixes all three: object members sorted by their keys' UTF-16 code units, numbers
written with the ECMAScript ``Number.prototype.toString`` rules (shortest round-trip digits), strings with the
minimal JSON escapes, no whitespace, UTF-8 output.

Accepted Python values: ``None``, ``bool``, ``int`` (when it is exactly an IEEE-754 double: all of ±2**53, and
larger ones such as 10**20),
finite ``float``, ``str`` (no lone surrogates), ``list``/``tuple`` and ``dict`` with ``str`` keys. Anything else,
NaN and the infinities raise :class:`JCSError` rather than being coerced, so a digest is never computed over a
value that a different implementation would serialise differently.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

MAX_SAFE_INTEGER = 2**53


def int_is_exact_double(n: int) -> bool:
    """True when the integer `n` is exactly an IEEE-754 double (JCS numbers are doubles; no silent rounding)."""
    if abs(n) <= MAX_SAFE_INTEGER:
        return True
    try:
        return int(float(n)) == n
    except OverflowError:
        return False


class JCSError(ValueError):
    """A value that has no RFC 8785 canonical form (NaN, infinity, a non-string key, an unknown type...)."""


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of `value`."""
    out: list[str] = []
    _write(value, out, depth=0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise JCSError("string contains a lone surrogate (not valid I-JSON)") from None


def format_number(x: float | int) -> str:
    """ECMAScript Number::toString of `x` (RFC 8785 §3.2.2.3): "1e+30", "4.5", "0.002", "1e-7", -0 -> "0"."""
    if isinstance(x, bool):
        raise JCSError("a boolean is not a number")
    if isinstance(x, int):
        if not int_is_exact_double(x):
            raise JCSError("integer that is not exactly an IEEE-754 double (it would be rounded)")
        x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise JCSError("NaN and Infinity have no JSON form")
    if x == 0:
        return "0"  # also -0
    sign = "-" if x < 0 else ""
    # repr() gives the shortest digit string that round-trips, which is what ECMAScript requires.
    dec = Decimal(repr(abs(x)))
    _, digit_tuple, exp = dec.as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exp += len(digit_tuple) - len(digits)  # trailing zeros moved into the exponent
    digits = digits.lstrip("0") or "0"
    k = len(digits)
    n = exp + k  # value = 0.d1d2...dk × 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _utf16_key(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like the sequence of UTF-16 code units.
    return key.encode("utf-16-be", "surrogatepass")


_MAX_DEPTH = 500


def _write(value: Any, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise JCSError(f"nesting deeper than {_MAX_DEPTH}")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(format_number(value))
    elif isinstance(value, str):
        # json.dumps(ensure_ascii=False) escapes exactly what RFC 8785 §3.2.2.2 asks: " \ \b \f \n \r \t and
        # other controls below U+0020 as lowercase \u00xx; everything else is written as is.
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise JCSError(f"object key of type {type(key).__name__}; JSON keys are strings")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out, depth + 1)
        out.append("}")
    else:
        raise JCSError(f"a value of type {type(value).__name__} has no JSON form")
