"""Rebuild src/bartizan/text/confusables.tsv from Unicode's confusables data.

Needs `pip install confusable-homoglyphs==3.3.1` (its confusables.json is generated from Unicode's
confusables.txt). Only characters that NFKD does not already fold to ASCII are kept, each mapped to the
single ASCII letter, digit or symbol it is confusable with.
"""

from __future__ import annotations

import json
import pathlib
import unicodedata

import confusable_homoglyphs  # type: ignore[import-untyped]

OUT = pathlib.Path(__file__).resolve().parents[1] / "src/bartizan/text/confusables.tsv"
SYMBOLS = "<>/:.-_=|@!"


def main() -> None:
    data = json.loads((pathlib.Path(confusable_homoglyphs.__file__).parent / "confusables.json").read_text())
    table: dict[str, str] = {}
    for ch, entries in data.items():
        if len(ch) != 1 or ord(ch) < 128:
            continue
        folded = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if folded and folded.isascii():
            continue
        ascii_forms = [
            e["c"]
            for e in entries
            if len(e["c"]) == 1 and ord(e["c"]) < 128 and (e["c"].isalnum() or e["c"] in SYMBOLS)
        ]
        if not ascii_forms:
            continue
        repl = ascii_forms[0]
        if ch.isupper() and repl == "l":
            repl = "I"
        if ch.islower() and repl.isupper():
            repl = repl.lower()
        table[ch] = repl
    with OUT.open("w", encoding="utf-8") as f:
        f.write("# Non-ASCII characters that look like one ASCII character, folded for detection.\n")
        f.write("# Derived from Unicode confusables.txt (Unicode Security Mechanisms, UTS #39), via the JSON in the\n")
        f.write("# PyPI package confusable-homoglyphs 3.3.1; Unicode data is under the Unicode License v3.\n")
        f.write("# Regenerate with scripts/build_confusables.py. Columns: code point (hex), ASCII replacement.\n")
        for ch in sorted(table):
            f.write(f"{ord(ch):04X}\t{table[ch]}\n")
    print(f"wrote {len(table)} entries to {OUT}")


if __name__ == "__main__":
    main()
