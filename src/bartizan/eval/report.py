"""The report of `bartizan eval`: every metric with its 95% interval(s), as one JSON-ready dict.

Takes what `runner.collect` gathered (per-row scores, decisions, latencies) and applies the exact definitions
of `metrics`; knows nothing about files or the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bartizan.eval import metrics as m
from bartizan.eval.runner import DEFAULT_FPRS, Collected


def _estimate(value: float | None, samples: Any = None, k: int | None = None, n: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value}
    ci = m.percentile_interval(samples, value) if samples is not None and value is not None else None
    out["ci"] = ci.to_dict() if ci else None
    if k is not None and n is not None:
        w = m.wilson(k, n)
        out["wilson"] = w.to_dict() if w else None
    return out


def summarise(
    data: Collected,
    calibration: Collected | None,
    *,
    fprs: Sequence[float] = DEFAULT_FPRS,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric with its 95% interval(s), as a JSON-ready dict (intervals None where undefined)."""
    pos, neg = data.split()
    cal = calibration.split()[1] if calibration is not None else None
    boot = n_boot > 0
    warnings: list[str] = []
    for name, n in (("positives", len(pos)), ("negatives", len(neg))):
        if n < 30:
            warnings.append(f"only {n} {name}: intervals are wide and AUC / recall@FPR may be undefined")
    thr_neg = cal if cal is not None else neg
    report: dict[str, Any] = {"auc": None, "recall_at_fpr": []}
    if len(pos) and len(neg) and (cal is None or len(cal)):
        reps = m.bootstrap_scores(pos, neg, fprs, calibration=cal, n_boot=n_boot, seed=seed) if boot else None
        report["auc"] = _estimate(m.auc(pos, neg), reps.auc if reps else None)
        for i, x in enumerate(fprs):
            r = m.recall_at_fpr(pos, neg, x, calibration=cal)
            if r.allowed_false_positives == 0:
                warnings.append(
                    f"{len(thr_neg)} negatives cannot resolve {x:.1%} FPR: the threshold sits above every negative"
                )
            report["recall_at_fpr"].append(
                {
                    "max_fpr": x,
                    "threshold": r.threshold if math.isfinite(r.threshold) else None,
                    # The highest benign score left unflagged: the rule flags scores strictly above it.
                    "flag_above": float(np.nextafter(r.threshold, -np.inf)) if math.isfinite(r.threshold) else None,
                    "threshold_above_all_negatives": r.above_all,
                    "allowed_false_positives": r.allowed_false_positives,
                    "recall": _estimate(
                        r.recall, reps.recall[i] if reps else None, round(r.recall * len(pos)), len(pos)
                    ),
                    "fpr": _estimate(r.fpr, reps.fpr[i] if reps else None, round(r.fpr * len(neg)), len(neg)),
                    "calibration_fpr": r.calibration_fpr,
                }
            )
    flags = np.frombuffer(bytes(data.flagged), dtype=np.uint8).astype(bool) if data.flagged else np.empty(0, bool)
    is_pos = np.frombuffer(bytes(data.positive), dtype=np.uint8).astype(bool) if data.positive else np.empty(0, bool)
    rates = m.rates(flags[is_pos], flags[~is_pos])
    rb = m.bootstrap_rates(rates, n_boot=n_boot, seed=seed + 1) if boot and len(flags) else None
    flagged_total = rates.tp + rates.fp
    report["shipped"] = {
        "counts": {"tp": rates.tp, "fp": rates.fp, "fn": rates.fn, "tn": rates.tn},
        "precision": _estimate(rates.precision, rb["precision"] if rb else None, rates.tp, flagged_total),
        "recall": _estimate(rates.recall, rb["recall"] if rb else None, rates.tp, len(pos)),
        "f1": _estimate(rates.f1, rb["f1"] if rb else None),
        "fpr": _estimate(rates.fpr, rb["fpr"] if rb else None, rates.fp, len(neg)),
    }
    lat = np.frombuffer(data.latency_ms, dtype=np.float64) if len(data.latency_ms) else np.empty(0)
    if len(lat):
        p50, p99 = m.quantiles(lat, (0.5, 0.99))
        lb = m.bootstrap_quantiles(lat, (0.5, 0.99), n_boot=n_boot, seed=seed + 2) if boot else None
        chars = np.frombuffer(data.chars, dtype=np.int64)
        report["latency_ms"] = {
            "p50": _estimate(p50, lb[0] if lb is not None else None),
            "p99": _estimate(p99, lb[1] if lb is not None else None),
            "mean": float(lat.mean()),
            "max": float(lat.max()),
        }
        report["chars"] = {"mean": float(chars.mean()), "p50": float(np.median(chars)), "max": int(chars.max())}
    else:
        report["latency_ms"] = None
        report["chars"] = None
    report["counts"] = {
        "rows_read": data.read,
        "scanned": len(data.scores),
        "positives": len(pos),
        "negatives": len(neg),
        "malformed": data.malformed,
        "other_label": data.other_label,
        "detector_failures": data.detector_failures,
        "detector_failure_reasons": dict(data.failure_reasons),
        "limit_reached": data.limit_reached,
    }
    report["malformed_rows"] = [{"line": ln, "error": e} for ln, e in data.errors]
    report["thresholds_chosen_on"] = "calibration negatives" if cal is not None else "evaluation negatives"
    if cal is None and report["recall_at_fpr"]:
        warnings.append(
            "recall@FPR thresholds were chosen on these same negatives (optimistic); pass --calibration "
            "with other benign data to choose them there and report the achieved FPR here"
        )
    if calibration is not None:
        report["calibration"] = {
            "negatives": len(cal) if cal is not None else 0,
            "rows_read": calibration.read,
            "malformed": calibration.malformed,
            "skipped_positive_or_other": calibration.other_label,
            "overlap_with_data": data.overlap,
        }
        if data.overlap:
            warnings.append(f"{data.overlap} evaluation rows also appear in the calibration file")
    if data.detector_failures:
        top = sorted(data.failure_reasons.items(), key=lambda kv: -kv[1])[:3]
        why = "; ".join(f"{reason} x{count}" for reason, count in top)
        warnings.append(f"{data.detector_failures} rows had a detector error or timeout (scored by fail mode): {why}")
    report["groups"] = _groups(data, [x["threshold"] for x in report["recall_at_fpr"]], fprs)
    report["bootstrap"] = {"replicates": n_boot, "seed": seed, "stratified": True, "interval": "percentile 95%"}
    report["warnings"] = warnings
    return report


def _bools(buf: bytearray) -> np.ndarray:
    return np.frombuffer(bytes(buf), dtype=np.uint8).astype(bool) if buf else np.empty(0, bool)


def _groups(data: Collected, thresholds: Sequence[float | None], fprs: Sequence[float]) -> list[dict[str, Any]]:
    """Per-group (e.g. per-source) share flagged: recall on positives, FPR on negatives, at the shipped
    decision (with Wilson intervals) and at each recall@FPR threshold."""
    if not data.group_names or len(data.group_ids) != len(data.scores):
        return []
    ids = np.frombuffer(data.group_ids, dtype=np.int32)
    scores = np.frombuffer(data.scores, dtype=np.float64)
    is_pos, flags = _bools(data.positive), _bools(data.flagged)
    out = []
    for name, gid in sorted(data.group_names.items()):
        entry: dict[str, Any] = {"group": name}
        for cls, mask in (("positives", is_pos), ("negatives", ~is_pos)):
            sel = (ids == gid) & mask
            n = int(sel.sum())
            k = int(flags[sel].sum())
            w = m.wilson(k, n)
            at = (
                [
                    {"max_fpr": x, "flagged": float(np.mean(scores[sel] >= (t if t is not None else -np.inf)))}
                    for x, t in zip(fprs, thresholds, strict=False)
                ]
                if n
                else []
            )
            entry[cls] = {
                "n": n,
                "flagged": k / n if n else None,
                "wilson": w.to_dict() if w else None,
                "flagged_at_fpr_thresholds": at,
            }
        out.append(entry)
    return out
