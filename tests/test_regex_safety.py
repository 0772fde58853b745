"""Every regular expression bartizan ships is run on adversarial inputs: none may backtrack catastrophically.

Patterns come from every rule data file (compiled here with Python's backtracking `re`, the worst case
even where the detector itself uses RE2) and from every compiled pattern held by the detector and text
modules. On each 100 KB adversarial input a pattern must finish within two seconds, and when it takes more than
a third of a second its time must grow linearly: ten times the input may cost at most 30 times the time
(catastrophic backtracking grows quadratically or worse; a pattern with many matches only linearly).
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import yaml

from bartizan.detectors.registry import BUILTIN_MODULES

SIZE = 100_000
LIMIT_S = 2.0
SLOW_S = 0.05
MAX_GROWTH = 30.0
UNITS = [
    "a",
    "a ",
    "1",
    "1 ",
    "9-",
    "%41",
    "A0+/",
    "-",
    ".",
    "@",
    "a@",
    "a.",
    "<",
    "&#",
    "&#x4",
    "\\x41",
    "0x",
    "aA0",
    "http://",
    "![",
    "](",
    "\t",
    "\n",
    " \n",
    "=",
    "ab=",
    "_",
    "a_",
    "/",
    "a/",
    "{",
    '"',
    "'",
    "\\",
    ":",
    "a:",
    "0",
    "00 ",
    "-----",
    "key=",
    "sk-",
    "xn--",
    "<a2as:",
    "ignore ",
    "previous ",
    "\u200b",
    "\u0430",
    "$",
    "$a",
    "4111 ",
]


def _rule_patterns() -> Iterator[tuple[str, str]]:
    root = resources.files("bartizan.rules")

    def walk(node: Any) -> Iterator[Any]:
        for child in node.iterdir():
            if child.is_dir():
                yield from walk(child)
            elif child.name.endswith((".yaml", ".yml")):
                yield child

    for f in walk(root):
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
        for i, rule in enumerate((data or {}).get("rules", []) if isinstance(data, dict) else []):
            for key in ("pattern", "regex", "rule"):
                if isinstance(rule, dict) and isinstance(rule.get(key), str):
                    yield f"{f.name}#{rule.get('id', i)}", rule[key]


def _module_patterns() -> Iterator[tuple[str, Any]]:
    modules = [*BUILTIN_MODULES, "bartizan.text.views", "bartizan.text.decoders", "bartizan.text.unicode"]
    for name in modules:
        mod = importlib.import_module(name)
        for attr, value in vars(mod).items():
            if hasattr(value, "finditer") and hasattr(value, "pattern"):
                yield f"{name}.{attr}", value


def all_patterns() -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, pattern in _rule_patterns():
        try:
            out.append((name, re.compile(pattern, re.IGNORECASE)))
        except re.error:
            continue  # the rule loader's own tests reject patterns that do not compile
    out.extend(_module_patterns())
    return out


PATTERNS = all_patterns()


def test_there_are_patterns_to_check() -> None:
    assert len(PATTERNS) > 50


def _scan_time(pattern: Any, text: str) -> float:
    t0 = time.perf_counter()
    for _ in pattern.finditer(text):
        pass
    return time.perf_counter() - t0


@pytest.mark.parametrize("unit", UNITS)
def test_no_pattern_is_slow_on_adversarial_input(unit: str) -> None:
    base = (unit * (SIZE // len(unit) + 1))[:SIZE]
    slow = []
    for text in (base + "!", "x" + base + "\u0000"):
        small = text[: len(text) // 10]
        for name, pattern in PATTERNS:
            big_s = _scan_time(pattern, text)
            if big_s < SLOW_S:
                continue
            small_s = max(_scan_time(pattern, small), 1e-4)
            if big_s > LIMIT_S or (big_s > 0.3 and big_s / small_s > MAX_GROWTH):
                slow.append(f"{name}: {big_s:.3f}s on 100 KB, {small_s:.4f}s on 10 KB")
    assert not slow, f"slow on {unit!r}: {slow}"
