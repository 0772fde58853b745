"""What the default policy does to the public data in ../shared/datasets: verdict rates per source.

Benign sets: how often ordinary traffic is blocked, redacted or flagged (false positives for block; for
redact and flag, mostly real e-mails, dates of birth and test card numbers in tool data). Attack sets: how
often the rule pipeline blocks (recall of rules alone; the learned detectors come with their own issue).
The rule data was written by hand; no rule was fitted to these rows, but rule authors looked at the public
sets, so treat the attack figures as in-sample for rules.
Usage: python bench/eval_default_policy.py [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from bartizan.pipeline import Firewall
from bartizan.types import Role

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def jsonl(path: Path, field: str = "text") -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            value = json.loads(line).get(field)
            if isinstance(value, str):
                yield value


def csv_rows(path: Path, field: str, where: tuple[str, str] | None = None) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if where is None or row.get(where[0]) == where[1]:
                yield row[field]


def benign_sets() -> Iterator[tuple[str, Role, Iterator[str]]]:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for path in sorted((DATA / "benign_prompts" / "data").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                by_kind[row["kind"]].append(row["text"])
    for kind, texts in sorted(by_kind.items()):
        role = Role.TOOL if kind in ("tool_output", "document", "api_doc", "tool_schema") else Role.USER
        yield f"benign_prompts/{kind}", role, iter(texts)
    yield "xstest safe", Role.USER, csv_rows(DATA / "xstest" / "xstest_prompts.csv", "prompt", ("label", "safe"))


def attack_sets() -> Iterator[tuple[str, Role, Iterator[str]]]:
    jb = DATA / "jailbreak_llms"
    for path in sorted(jb.rglob("*.csv")):
        if "jailbreak" in path.name and "question" not in path.name:
            yield f"jailbreak_llms/{path.name}", Role.USER, csv_rows(path, "prompt")
    for path in sorted((DATA / "cyberseceval" / "prompt_injection").glob("*.json")):
        cases = json.loads(path.read_text(encoding="utf-8"))
        texts = [c["user_input"] for c in cases if isinstance(c, dict) and "user_input" in c]
        yield f"cyberseceval/{path.name} (user_input)", Role.USER, iter(texts)
    yield (
        "giskard prompt_injections",
        Role.USER,
        csv_rows(DATA / "giskard_prompt_injections" / "prompt_injections.csv", "prompt"),
    )


def evaluate(fw: Firewall, role: Role, texts: Iterator[str]) -> dict[str, float]:
    counts: Counter[str] = Counter()
    n = 0
    for text in texts:
        n += 1
        counts[fw.scan(text, role).verdict.value] += 1
    return {"n": n, **{v: counts[v] / n if n else 0.0 for v in ("block", "redact", "flag", "allow")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    fw = Firewall()
    report = {
        "benign": {name: evaluate(fw, role, texts) for name, role, texts in benign_sets()},
        "attacks": {name: evaluate(fw, role, texts) for name, role, texts in attack_sets()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, rows in report.items():
        print(f"\n{section}: {'rows':>6} {'block':>7} {'redact':>7} {'flag':>7}")
        for name, r in rows.items():
            print(f"  {name:52} {r['n']:6.0f} {r['block']:7.2%} {r['redact']:7.2%} {r['flag']:7.2%}")


if __name__ == "__main__":
    main()
