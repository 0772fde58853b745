"""Write the held-out TEST split of each learned head as JSONL, for `bartizan eval`.

The rows are exactly those `python -m bartizan.train` scores as its test split (same loaders, the same
seeded augmentation, the same split rule: a sha256 of each seed's group key), so the README's results
table can be produced by the public `bartizan eval` command rather than by the trainer's own code.
Usage: python bench/export_eval_splits.py --out /tmp/bartizan-eval [--datasets ../shared/datasets]
Writes OUT/<head>.test.jsonl with fields text, label (attack | benign), source, style, role.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bartizan.train.__main__ import build_examples
from bartizan.train.data import HEADS, split_of

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--datasets", type=Path, default=DATASETS)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    examples = [ex for ex in build_examples(args.datasets) if split_of(ex) == "test"]
    for head in HEADS:
        path = args.out / f"{head}.test.jsonl"
        n = 0
        with path.open("w", encoding="utf-8") as f:
            for ex in examples:
                if head not in ex.labels:
                    continue
                label = "attack" if ex.labels[head] == 1 else "benign"
                row = {"text": ex.text, "label": label, "source": ex.source, "style": ex.style, "role": ex.role}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        print(f"{path}: {n} rows")


if __name__ == "__main__":
    main()
