"""RFC 8785 (JCS) canonicalisation: the RFC's own examples and number vectors, plus properties."""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.a2as.jcs import JCSError, canonicalize, format_number

# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "text"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, text: str) -> None:
    assert format_number(_double(bits)) == text
    assert canonicalize(_double(bits)) == text.encode()


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e30, "1e+30"), (4.5, "4.5"), (4.50, "4.5"), (0.002, "0.002"), (1e-7, "1e-7"), (-0.0, "0"), (1e-27, "1e-27")],
)
def test_spec_number_examples(value: float, text: str) -> None:
    assert format_number(value) == text


def test_integers_are_doubles() -> None:
    assert canonicalize([0, -1, 100, 2**53, -(2**53)]) == b"[0,-1,100,9007199254740992,-9007199254740992]"
    assert canonicalize(1e21) == b"1e+21" and canonicalize(10**20) == b"100000000000000000000"


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinity_rejected(bits: str) -> None:
    with pytest.raises(JCSError):
        canonicalize({"x": _double(bits)})


@pytest.mark.parametrize("value", [{1: "a"}, {"k": 2**53 + 1}, 10**400, "\ud800", {"s": {1, 2}}, b"bytes", bool])
def test_values_without_a_canonical_form_rejected(value: object) -> None:
    with pytest.raises(JCSError):
        canonicalize(value)


def test_rfc8785_section_3_2_2_example() -> None:
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(json.loads(text)) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_sorting_by_utf16_code_units() -> None:
    value = json.loads(
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
        ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control",'
        ' "\\u00f6": "Latin Small Letter O With Diaeresis"}'
    )
    out = canonicalize(value).decode("utf-8")
    keys = list(json.loads(out))
    # The emoji (surrogates D83D DE00) sorts before U+FB33 in UTF-16, though after it by code point.
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert out.startswith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')


def test_string_escapes_are_minimal() -> None:
    assert (
        canonicalize('\b\f\n\r\t"\\/\x00\x1f\x7f\u2028é😀')
        == b'"\\b\\f\\n\\r\\t\\"\\\\/\\u0000\\u001f\x7f\xe2\x80\xa8\xc3\xa9\xf0\x9f\x98\x80"'
    )


def test_no_whitespace_and_nested_order() -> None:
    assert canonicalize({"b": [1, {"d": None, "c": "x"}], "a": (True,)}) == b'{"a":[true],"b":[1,{"c":"x","d":null}]}'


def _es_int(text: str) -> int | float:
    n = int(text)
    return n if abs(n) <= 2**53 else float(n)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_form_parses_back_to_the_same_value_and_is_a_fixed_point(value: object) -> None:
    out = canonicalize(value)
    parsed = json.loads(out, parse_int=_es_int)  # read numbers the way an ECMAScript parser does
    assert parsed == value or (isinstance(value, float) and math.isclose(parsed, value))
    assert canonicalize(parsed) == out


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), st.integers(-1000, 1000), min_size=1, max_size=8), st.randoms())
def test_member_order_does_not_matter(obj: dict[str, int], rnd: random.Random) -> None:
    items = list(obj.items())
    rnd.shuffle(items)
    assert canonicalize(dict(items)) == canonicalize(obj)


@settings(max_examples=1000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip_exactly(x: float) -> None:
    assert float(format_number(x)) == x


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed (ECMAScript oracle)")
def test_numbers_match_ecmascript_number_to_string() -> None:
    rnd = random.Random(8785)
    values: list[float] = []
    while len(values) < 3000:
        x = _double(f"{rnd.getrandbits(64):016x}")
        if math.isfinite(x):
            values.append(x)
    values += [rnd.uniform(-1, 1) * 10 ** rnd.randint(-25, 25) for _ in range(1000)]
    script = "const a=JSON.parse(require('fs').readFileSync(0,'utf8'));console.log(JSON.stringify(a.map(String)))"
    node = shutil.which("node")
    assert node is not None
    proc = subprocess.run([node, "-e", script], input=json.dumps(values), capture_output=True, text=True, check=True)
    expected = json.loads(proc.stdout)
    assert [format_number(v) for v in values] == expected
