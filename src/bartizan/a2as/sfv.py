"""Strict RFC 8941 Structured Field Values: the Dictionary parser and Inner List serialiser that RFC 9421 needs.

The parser follows RFC 8941 §4.2 and is stricter where leniency would blur what was signed: duplicate
dictionary keys and duplicate parameters are errors (the RFC lets the last one win), and byte sequences
must be canonical padded base64 (the RFC lets parsers accept other forms), so one signature value has one
spelling. Anything that does not parse raises `SFError`, and nothing else.
"""

from __future__ import annotations

import base64
import binascii
from decimal import ROUND_HALF_EVEN, Decimal

BareItem = bool | int | Decimal | str | bytes
Params = dict[str, BareItem]
Item = tuple[BareItem, Params]
InnerList = tuple[list[Item], Params]
Member = Item | InnerList

_LCALPHA = "abcdefghijklmnopqrstuvwxyz"
_ALPHA = _LCALPHA + _LCALPHA.upper()
_DIGIT = "0123456789"
_KEY_FIRST = frozenset(_LCALPHA + "*")
_KEY_CHARS = frozenset(_LCALPHA + _DIGIT + "_-.*")
_TOKEN_FIRST = frozenset(_ALPHA + "*")
_TOKEN_CHARS = frozenset(_ALPHA + _DIGIT + "!#$%&'*+-.^_`|~:/")
_B64_CHARS = frozenset(_ALPHA + _DIGIT + "+/=")


class SFError(ValueError):
    """A header value that is not a valid structured field (the message never quotes the value)."""


class Token(str):
    """An RFC 8941 Token: serialised bare, unlike a String."""

    __slots__ = ()


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip(self, chars: str) -> None:
        while self.i < len(self.s) and self.s[self.i] in chars:
            self.i += 1

    def dictionary(self) -> dict[str, Member]:
        out: dict[str, Member] = {}
        self.skip(" ")
        if self.i == len(self.s):
            return out
        while True:
            key = self.key()
            if key in out:
                raise SFError("duplicate dictionary key")
            if self.peek() == "=":
                self.i += 1
                out[key] = self.inner_list() if self.peek() == "(" else self.item()
            else:
                out[key] = (True, self.params())
            self.skip(" \t")
            if self.i == len(self.s):
                return out
            if self.s[self.i] != ",":
                raise SFError("expected ','")
            self.i += 1
            self.skip(" \t")
            if self.i == len(self.s):
                raise SFError("trailing ','")

    def inner_list(self) -> InnerList:
        self.i += 1
        items: list[Item] = []
        while self.i < len(self.s):
            self.skip(" ")
            if self.peek() == ")":
                self.i += 1
                return items, self.params()
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise SFError("bad inner list")
        raise SFError("unterminated inner list")

    def item(self) -> Item:
        return self.bare_item(), self.params()

    def params(self) -> Params:
        out: Params = {}
        while self.peek() == ";":
            self.i += 1
            self.skip(" ")
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare_item()
            if key in out:
                raise SFError("duplicate parameter")
            out[key] = value
        return out

    def key(self) -> str:
        start = self.i
        if self.peek() not in _KEY_FIRST or not self.peek():
            raise SFError("bad key")
        self.i += 1
        while self.i < len(self.s) and self.s[self.i] in _KEY_CHARS:
            self.i += 1
        return self.s[start : self.i]

    def bare_item(self) -> BareItem:
        c = self.peek()
        if c and (c == "-" or c in _DIGIT):
            return self.number()
        if c == '"':
            return self.string()
        if c and c in _TOKEN_FIRST:
            return self.token()
        if c == ":":
            return self.byte_sequence()
        if c == "?":
            return self.boolean()
        raise SFError("bad item")

    def number(self) -> int | Decimal:
        negative = self.peek() == "-"
        if negative:
            self.i += 1
        if not self.peek() or self.peek() not in _DIGIT:
            raise SFError("bad number")
        start, is_decimal = self.i, False
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in _DIGIT:
                pass
            elif c == "." and not is_decimal:
                if self.i - start > 12:
                    raise SFError("decimal too long")
                is_decimal = True
            else:
                break
            self.i += 1
            if self.i - start > (16 if is_decimal else 15):
                raise SFError("number too long")
        text = self.s[start : self.i]
        if not is_decimal:
            return -int(text) if negative else int(text)
        if text.endswith(".") or len(text.split(".")[1]) > 3:
            raise SFError("bad decimal")
        return -Decimal(text) if negative else Decimal(text)

    def string(self) -> str:
        self.i += 1
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == "\\":
                nxt = self.peek()
                if nxt not in ('"', "\\") or not nxt:
                    raise SFError("bad escape")
                out.append(nxt)
                self.i += 1
            elif c == '"':
                return "".join(out)
            elif not " " <= c <= "~":
                raise SFError("bad string character")
            else:
                out.append(c)
        raise SFError("unterminated string")

    def token(self) -> Token:
        start = self.i
        self.i += 1
        while self.i < len(self.s) and self.s[self.i] in _TOKEN_CHARS:
            self.i += 1
        return Token(self.s[start : self.i])

    def byte_sequence(self) -> bytes:
        end = self.s.find(":", self.i + 1)
        if end < 0:
            raise SFError("unterminated byte sequence")
        text = self.s[self.i + 1 : end]
        self.i = end + 1
        if any(c not in _B64_CHARS for c in text):
            raise SFError("bad byte sequence")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SFError("bad byte sequence") from None
        if base64.b64encode(data).decode("ascii") != text:
            raise SFError("non-canonical byte sequence")
        return data

    def boolean(self) -> bool:
        c = self.s[self.i + 1 : self.i + 2]
        if c not in ("0", "1") or not c:
            raise SFError("bad boolean")
        self.i += 2
        return c == "1"


def parse_dictionary(text: str) -> dict[str, Member]:
    """Parse a Dictionary field value (RFC 8941 §4.2.2), strictly; an inner list member is ``(list, params)``."""
    return _Parser(text).dictionary()


def serialize_bare_item(value: BareItem) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > 999_999_999_999_999:
            raise SFError("integer out of range")
        return str(value)
    if isinstance(value, Decimal):
        q = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)
        if abs(q) >= 10**12:
            raise SFError("decimal out of range")
        whole, _, frac = format(q, "f").partition(".")
        return f"{whole}.{frac.rstrip('0') or '0'}"
    if isinstance(value, Token):
        if not value or value[0] not in _TOKEN_FIRST or any(c not in _TOKEN_CHARS for c in value):
            raise SFError("bad token")
        return str(value)
    if isinstance(value, str):
        if any(not " " <= c <= "~" for c in value):
            raise SFError("bad string character")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ":" + base64.b64encode(value).decode("ascii") + ":"


def _check_key(key: str) -> str:
    if not key or key[0] not in _KEY_FIRST or any(c not in _KEY_CHARS for c in key):
        raise SFError("bad key")
    return key


def serialize_params(params: Params) -> str:
    return "".join(";" + _check_key(k) + ("" if v is True else "=" + serialize_bare_item(v)) for k, v in params.items())


def serialize_inner_list(items: list[Item], params: Params) -> str:
    """Serialise an Inner List with parameters (RFC 8941 §4.1.1.1); the canonical form RFC 9421 signs."""
    inner = " ".join(serialize_bare_item(v) + serialize_params(p) for v, p in items)
    return f"({inner}){serialize_params(params)}"
