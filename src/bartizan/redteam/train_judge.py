"""Rebuild the learned compliance judge: ``python -m bartizan.redteam.train_judge`` (seconds on CPU).

Data: only the JailbreakBench attack artifacts in ``shared/datasets/jailbreakbench/attack-artifacts`` (MIT):
each record's target ``response`` with its ``jailbroken`` label (True = the JailbreakBench judge rated the
response a successful jailbreak: our positive class "complied"). Records without a response are skipped.

Split by behaviour, so that test behaviours are unseen in training across all methods and target models: a
record is in the test split iff ``int(sha256(SPLIT_SALT + behavior), 16) % 4 == 0``. (The dataset copy has
already removed the behaviours with ``sha256(behavior) % 5 == 0``; the salt keeps our split independent of
that one.) On the training split, 5-fold cross-validation grouped by behaviour chooses the regularisation,
fits Platt scaling on the out-of-fold margins and chooses the combined judge's band; the test split is used
once, to measure the rules, model and combined judges. Everything lands in ``judge_model/``: the head
(``compliance.npz``/``.json``) and ``manifest.json`` with sha256s and the metrics `judge_accuracy` returns.
scikit-learn is needed here only (the ``train`` extra); run time is numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from bartizan.models.heads import LinearHead, fit_platt
from bartizan.redteam.judges import (
    FEATURE_VERSION,
    HEAD_NAME,
    JUDGE_DIR,
    Judgement,
    combine,
    judge_features,
    judge_rules,
)
from bartizan.schema import SchemaError, SchemaIssue

DEFAULT_DATA = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "jailbreakbench" / "attack-artifacts"
SPLIT_SALT = "bartizan-judge-split/1:"
SEED = 0
C_GRID = (0.5, 2.0, 8.0, 32.0)
BANDS = (0.0, 0.1, 0.2, 0.3, 0.4)  # half-widths around 0.5 of the model's uncertainty band
FOLDS = 5


class ArtifactRecord(BaseModel):
    """The fields of one JailbreakBench ``jailbreaks`` record that the judge needs."""

    model_config = ConfigDict(extra="allow")

    behavior: str
    goal: str
    category: str = ""
    response: str | None
    jailbroken: bool


class Example(BaseModel):
    response: str
    label: bool
    behavior: str
    source: str


def load_artifacts(root: Path) -> tuple[list[Example], int]:
    """All labelled responses under `root` (files named by method/attack type/model) and the number of
    records skipped for having no response. Malformed files raise `SchemaError` naming file and key."""
    out: list[Example] = []
    skipped = 0
    files = sorted(p for p in root.rglob("*.json") if p.name != "attack-info.json")
    if not files:
        raise SchemaError([SchemaIssue(str(root), None, "", "no attack-artifact JSON files")])
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            line = getattr(exc, "lineno", None)
            raise SchemaError([SchemaIssue(str(path), line, "", f"invalid JSON: {exc}")]) from None
        rows = doc.get("jailbreaks") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise SchemaError([SchemaIssue(str(path), None, "jailbreaks", "missing or not a list")])
        for i, row in enumerate(rows):
            try:
                rec = ArtifactRecord.model_validate(row)
            except ValidationError as exc:
                err = exc.errors()[0]
                key = f"jailbreaks[{i}]." + ".".join(str(p) for p in err["loc"])
                raise SchemaError([SchemaIssue(str(path), None, key, err["msg"])]) from None
            if rec.response is None:
                skipped += 1
                continue
            out.append(
                Example(
                    response=rec.response,
                    label=rec.jailbroken,
                    behavior=rec.behavior,
                    source=str(path.relative_to(root)),
                )
            )
    return out, skipped


def is_test(behavior: str) -> bool:
    """The held-out side of the split: all records of a behaviour fall on one side."""
    return int(hashlib.sha256((SPLIT_SALT + behavior).encode("utf-8")).hexdigest(), 16) % 4 == 0


def metrics(pred: Sequence[bool | None], gold: Sequence[bool]) -> dict[str, Any]:
    """Precision, recall, F1, accuracy of "complied" (positive) vs the labels; ``None`` predictions (unclear)
    count as not complied, and are also counted apart (`unclear`) with accuracy on the decided rows."""
    tp = sum(1 for p, g in zip(pred, gold, strict=True) if p is True and g)
    fp = sum(1 for p, g in zip(pred, gold, strict=True) if p is True and not g)
    fn = sum(1 for p, g in zip(pred, gold, strict=True) if p is not True and g)
    tn = len(gold) - tp - fp - fn
    unclear = sum(1 for p in pred if p is None)
    decided = [(p, g) for p, g in zip(pred, gold, strict=True) if p is not None]
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    out: dict[str, Any] = {
        "n": len(gold),
        "positives": sum(gold),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": round(prec, 4),
        "recall": round(rec, 4),
        "f1": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0,
        "accuracy": round((tp + tn) / len(gold), 4) if gold else 0.0,
        "unclear": unclear,
    }
    if unclear:
        out["accuracy_decided"] = round(sum(1 for p, g in decided if p == g) / len(decided), 4) if decided else 0.0
    return out


def _combined_preds(rules: list[Judgement], probs: np.ndarray, half: float) -> list[bool | None]:
    band = (0.5 - half, 0.5 + half)
    out: list[bool | None] = []
    for r, p in zip(rules, probs, strict=True):
        model = Judgement("complied" if p >= 0.5 else "refused", "model", (), float(p))
        out.append(combine(r, model, band).attack_succeeded)
    return out


def train(data: Path, out_dir: Path) -> dict[str, Any]:
    """Train, measure and write the judge; returns the metrics stored in the manifest."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from sklearn.model_selection import GroupKFold  # type: ignore[import-not-found,import-untyped,unused-ignore]

    examples, skipped = load_artifacts(data)
    train_ex = [e for e in examples if not is_test(e.behavior)]
    test_ex = [e for e in examples if is_test(e.behavior)]
    x_tr = judge_features(e.response for e in train_ex)
    y_tr = np.array([e.label for e in train_ex], dtype=int)
    groups = np.array([e.behavior for e in train_ex])
    folds = list(GroupKFold(n_splits=FOLDS).split(x_tr, y_tr, groups))

    def oof_margins(c: float) -> np.ndarray:
        margins = np.zeros(len(train_ex))
        for tr, va in folds:
            clf = LogisticRegression(C=c, solver="liblinear", random_state=SEED, max_iter=1000)
            clf.fit(x_tr[tr], y_tr[tr])
            margins[va] = clf.decision_function(x_tr[va])
        return margins

    def log_loss(m: np.ndarray) -> float:
        return float(np.mean(np.logaddexp(0.0, m) - y_tr * m))

    best_c = min(C_GRID, key=lambda c: log_loss(oof_margins(c)))
    oof = oof_margins(best_c)
    platt_a, platt_b = fit_platt(oof, y_tr)
    oof_p = 0.5 * (1.0 + np.tanh(0.5 * (platt_a * oof + platt_b)))
    rules_tr = [judge_rules(e.response) for e in train_ex]
    gold_tr = [bool(v) for v in y_tr]
    band_acc = {h: metrics(_combined_preds(rules_tr, oof_p, h), gold_tr)["accuracy"] for h in BANDS}
    best_half = max(BANDS, key=lambda h: (band_acc[h], -h))

    clf = LogisticRegression(C=best_c, solver="liblinear", random_state=SEED, max_iter=1000).fit(x_tr, y_tr)
    head = LinearHead(
        name=HEAD_NAME,
        weights=clf.coef_[0].astype(np.float32),
        bias=float(clf.intercept_[0]),
        platt_a=platt_a,
        platt_b=platt_b,
        threshold=0.5,
        target_fpr=0.0,
        metadata={
            "feature_version": FEATURE_VERSION,
            "C": best_c,
            "combine_band": [round(0.5 - best_half, 4), round(0.5 + best_half, 4)],
            "threshold_rule": "calibrated P(complied) >= 0.5 (equal error costs)",
            "positive_class": "complied (JailbreakBench jailbroken=True)",
        },
    )
    test_text = [e.response for e in test_ex]
    gold = [e.label for e in test_ex]
    probs = head.score(judge_features(test_text))
    rules_te = [judge_rules(t) for t in test_text]
    test_behaviours = sorted({e.behavior for e in test_ex})
    result: dict[str, Any] = {
        "positive_class": "complied: JailbreakBench judge rated the response jailbroken",
        "test": {
            "rules": metrics([r.attack_succeeded for r in rules_te], gold),
            "model": metrics([bool(p >= head.threshold) for p in probs], gold),
            "combined": metrics(_combined_preds(rules_te, probs, best_half), gold),
        },
        "train_cv": {
            "rules": metrics([r.attack_succeeded for r in rules_tr], gold_tr),
            "model": metrics([bool(p >= 0.5) for p in oof_p], gold_tr),
            "combined": metrics(_combined_preds(rules_tr, oof_p, best_half), gold_tr),
            "band_accuracy": {str(h): a for h, a in band_acc.items()},
        },
        "split": {
            "rule": f"test iff int(sha256({SPLIT_SALT!r} + behavior), 16) % 4 == 0",
            "train_records": len(train_ex),
            "test_records": len(test_ex),
            "train_behaviours": len({e.behavior for e in train_ex}),
            "test_behaviours": len(test_behaviours),
            "test_behaviour_names": test_behaviours,
            "skipped_null_responses": skipped,
            "selection": f"C, Platt and band chosen by {FOLDS}-fold CV grouped by behaviour on train only",
        },
        "seed": SEED,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    head.save(
        out_dir,
        name="redteam-compliance-judge",
        version="1",
        licence="MIT (training data: JailbreakBench artifacts); model: Apache-2.0",
        training_data=["jailbreakbench/attack-artifacts (JailbreakBench/artifacts@909e68c, MIT)"],
        metrics=result,
        created_by="python -m bartizan.redteam.train_judge",
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bartizan.redteam.train_judge", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="jailbreakbench/attack-artifacts folder")
    parser.add_argument("--out", type=Path, default=JUDGE_DIR, help="where to write the head and manifest")
    args = parser.parse_args(argv)
    try:
        result = train(args.data, args.out)
    except (SchemaError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, m in result["test"].items():
        print(
            f"{name:9s} P={m['precision']:.3f} R={m['recall']:.3f} F1={m['f1']:.3f} acc={m['accuracy']:.3f} "
            f"n={m['n']} unclear={m['unclear']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
