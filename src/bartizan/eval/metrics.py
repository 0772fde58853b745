"""Detection metrics with exact definitions and a vectorised, stratified bootstrap (numpy only).

Definitions (../shared/reference/attacks-and-metrics.md):

* AUC is the Mann-Whitney statistic ``P(s_pos > s_neg) + 1/2 P(s_pos = s_neg)``, ties included.
* Threshold at FPR x: on a set of benign scores, the lowest threshold tau such that the share of benign
  scores >= tau is <= x, with at most floor(x * n) benign scores allowed at or above it. Ties count as
  flagged, so the threshold can never split a tie: tau lies just above (``nextafter``) the highest benign
  score that must stay unflagged, i.e. the highest distinct benign value with more than floor(x * n)
  benign scores at or above it (``-inf`` when there is none, which only x = 1 allows). Flag iff
  ``score >= tau``. Restricting tau to the benign scores themselves would not be "lowest": for a rule
  detector with a few score levels it can skip a whole level of attacks that costs no extra false positive.
* Plain proportions get a Wilson interval (Clopper-Pearson when the count is 0 or n); composite metrics
  (AUC, F1, recall at FPR including the threshold choice, latency percentiles) a percentile bootstrap that
  resamples prompts within each class.

The bootstrap never loops over replicates in Python: every stratum is mapped onto one shared sorted grid of
distinct scores, each replicate becomes a row of counts over that grid, and AUC / thresholds / recall are
cumulative sums over rows. Replicates are processed in chunks so that memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

Z95 = 1.959963984540054
_CHUNK_CELLS = 1_000_000  # replicate-chunk size: rows x columns of the count matrices (~8 MB each)
_EPS = 1e-9

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Interval:
    """A 95% interval and how it was computed (``bootstrap``, ``wilson`` or ``clopper-pearson``)."""

    low: float
    high: float
    method: str

    def to_dict(self) -> dict[str, object]:
        return {"low": self.low, "high": self.high, "method": self.method}


@dataclass(frozen=True, slots=True)
class RecallAtFpr:
    """Recall at a threshold chosen for a false-positive budget, and what that threshold achieved."""

    max_fpr: float
    threshold: float
    recall: float
    fpr: float  # achieved on the evaluation negatives
    calibration_fpr: float  # achieved on the negatives the threshold was chosen on (same set when no calibration)
    allowed_false_positives: int  # floor(max_fpr * n_calibration_negatives)
    above_all: bool  # the threshold lies just above the highest calibration negative (nextafter)


@dataclass(frozen=True, slots=True)
class Rates:
    """Confusion counts of a binary decision and the rates derived from them (None where undefined)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        den = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / den if den else None

    @property
    def fpr(self) -> float | None:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None


def _as_scores(x: ArrayLike) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise ValueError("scores must not be NaN")
    return arr


def _allowed(max_fpr: float, n: int) -> int:
    """How many benign scores may sit at or above the threshold: floor(x * n), robust to float error."""
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be within [0, 1], got {max_fpr!r}")
    return math.floor(max_fpr * n + _EPS)


# --- point estimates ----------------------------------------------------------------------------------
def auc(pos: ArrayLike, neg: ArrayLike) -> float:
    """Mann-Whitney AUC with ties counted as one half, from average ranks. Needs both classes."""
    p, n = _as_scores(pos), _as_scores(neg)
    if not len(p) or not len(n):
        raise ValueError("AUC needs at least one positive and one negative score")
    both = np.concatenate([p, n])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    # Average rank (1-based) of each distinct value: ranks before it plus the middle of its tie block.
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0
    rank_sum = float(avg_rank[inverse[: len(p)]].sum())
    u = rank_sum - len(p) * (len(p) + 1) / 2.0
    return u / (len(p) * len(n))


def threshold_at_fpr(neg: ArrayLike, max_fpr: float) -> float:
    """The lowest tau with share(neg >= tau) <= max_fpr: just above the highest benign score left unflagged."""
    n = _as_scores(neg)
    if not len(n):
        raise ValueError("choosing a threshold needs at least one negative score")
    values, counts = np.unique(n, return_counts=True)
    at_or_above = np.cumsum(counts[::-1])[::-1]  # benign count >= each distinct value (non-increasing)
    too_many = np.flatnonzero(at_or_above > _allowed(max_fpr, len(n)))
    if not len(too_many):
        return float("-inf")
    return float(np.nextafter(values[too_many[-1]], np.inf))


def recall_at_fpr(pos: ArrayLike, neg: ArrayLike, max_fpr: float, calibration: ArrayLike | None = None) -> RecallAtFpr:
    """Recall on `pos` at the threshold chosen on `calibration` negatives (default: `neg` itself)."""
    p, n = _as_scores(pos), _as_scores(neg)
    cal = n if calibration is None else _as_scores(calibration)
    tau = threshold_at_fpr(cal, max_fpr)
    return RecallAtFpr(
        max_fpr=max_fpr,
        threshold=tau,
        recall=float(np.mean(p >= tau)) if len(p) else float("nan"),
        fpr=float(np.mean(n >= tau)) if len(n) else float("nan"),
        calibration_fpr=float(np.mean(cal >= tau)),
        allowed_false_positives=_allowed(max_fpr, len(cal)),
        above_all=bool(tau > cal.max()),
    )


def rates(pos_flags: ArrayLike, neg_flags: ArrayLike) -> Rates:
    """Confusion counts of a binary decision (True = flagged) on positives and negatives."""
    pf = np.asarray(pos_flags, dtype=bool).reshape(-1)
    nf = np.asarray(neg_flags, dtype=bool).reshape(-1)
    tp, fp = int(pf.sum()), int(nf.sum())
    return Rates(tp=tp, fp=fp, fn=len(pf) - tp, tn=len(nf) - fp)


def wilson(k: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson score interval for k successes in n; exact Clopper-Pearson at k = 0 or k = n. None if n = 0."""
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if k == 0 or k == n:
        # Closed forms of the Clopper-Pearson bounds at the edges, alpha = 0.05 (two-sided).
        edge = 0.025 ** (1.0 / n)
        return Interval(0.0, 1.0 - edge, "clopper-pearson") if k == 0 else Interval(edge, 1.0, "clopper-pearson")
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return Interval(max(0.0, centre - half), min(1.0, centre + half), "wilson")


def quantiles(values: ArrayLike, qs: Sequence[float]) -> list[float]:
    """Linear-interpolation quantiles (numpy's default), e.g. latency p50 / p99."""
    arr = _as_scores(values)
    if not len(arr):
        raise ValueError("quantiles of an empty sample")
    return [float(v) for v in np.quantile(arr, list(qs))]


def percentile_interval(samples: ArrayLike, point: float | None) -> Interval | None:
    """2.5th-97.5th percentile of bootstrap replicates (NaN replicates dropped).

    Extended to include the point estimate when it falls outside, which can happen for threshold-chosen
    statistics on tiny samples; an interval that excludes its own estimate would be misleading.
    """
    s = np.asarray(samples, dtype=np.float64).reshape(-1)
    s = s[~np.isnan(s)]
    if not len(s) or point is None or math.isnan(point):
        return None
    lo, hi = (float(v) for v in np.quantile(s, [0.025, 0.975]))
    return Interval(min(lo, point), max(hi, point), "bootstrap")


# --- bootstrap ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ScoreReplicates:
    """Bootstrap replicates of the score-based metrics: ``auc`` (B,), ``recall``/``fpr`` (len(fprs), B)."""

    auc: FloatArray
    recall: FloatArray
    fpr: FloatArray


def _resample_counts(rng: np.random.Generator, grid_idx: NDArray[np.intp], rows: int, width: int) -> NDArray[np.int64]:
    """`rows` bootstrap resamples of one stratum, each as counts over the shared grid (rows x width)."""
    n = len(grid_idx)
    draws = grid_idx[rng.integers(0, n, size=(rows, n))]
    flat = (draws + np.arange(rows)[:, None] * width).ravel()
    return np.bincount(flat, minlength=rows * width).reshape(rows, width).astype(np.int64)


def _tail_counts(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """count >= grid value u, with one extra column (u = width) holding 0."""
    ge = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([ge, np.zeros((len(counts), 1), dtype=np.int64)], axis=1)


def _score_metrics(
    p_counts: NDArray[np.int64],
    n_counts: NDArray[np.int64],
    c_counts: NDArray[np.int64],
    fprs: Sequence[float],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """AUC and recall/FPR at each budget for rows of counts over one sorted grid (calibration = c_counts)."""
    n_pos = p_counts.sum(axis=1)
    n_neg = n_counts.sum(axis=1)
    n_cal = int(c_counts[0].sum())
    below = np.cumsum(n_counts, axis=1) - n_counts
    auc_b = (p_counts * (below + 0.5 * n_counts)).sum(axis=1) / (n_pos * n_neg)
    p_ge, n_ge, c_ge = _tail_counts(p_counts), _tail_counts(n_counts), _tail_counts(c_counts)
    width = c_counts.shape[1]
    rows = np.arange(len(c_counts))
    recall = np.empty((len(fprs), len(c_counts)))
    fpr = np.empty_like(recall)
    for i, x in enumerate(fprs):
        # The highest grid value with too many calibration scores at or above it is always a present one
        # (an absent value shares its count with the next present value above it); tau sits just above it.
        too_many = c_ge[:, :width] > _allowed(x, n_cal)
        last = width - 1 - np.argmax(too_many[:, ::-1], axis=1)
        tau_col = np.where(too_many.any(axis=1), last + 1, 0)
        recall[i] = p_ge[rows, tau_col] / n_pos
        fpr[i] = n_ge[rows, tau_col] / n_neg
    return auc_b, recall, fpr


def bootstrap_scores(
    pos: ArrayLike,
    neg: ArrayLike,
    fprs: Sequence[float],
    *,
    calibration: ArrayLike | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> ScoreReplicates:
    """Stratified bootstrap of AUC and recall@FPR (threshold re-chosen in every replicate).

    Positives and negatives (and calibration negatives, when given) are resampled separately with
    replacement, each to its own size.
    """
    p, n = _as_scores(pos), _as_scores(neg)
    if not len(p) or not len(n):
        raise ValueError("the bootstrap needs at least one positive and one negative score")
    cal = None if calibration is None else _as_scores(calibration)
    if cal is not None and not len(cal):
        raise ValueError("the calibration set has no negative scores")
    parts = [p, n] if cal is None else [p, n, cal]
    grid, inverse = np.unique(np.concatenate(parts), return_inverse=True)
    width = len(grid)
    bounds = np.cumsum([len(a) for a in parts])[:-1]
    idx = np.split(inverse.astype(np.intp), bounds)
    rng = np.random.default_rng(seed)
    biggest = max(max(len(a) for a in parts), width)
    step = max(1, _CHUNK_CELLS // biggest)
    auc_out, rec_out, fpr_out = [], [], []
    for start in range(0, n_boot, step):
        rows = min(step, n_boot - start)
        pc = _resample_counts(rng, idx[0], rows, width)
        nc = _resample_counts(rng, idx[1], rows, width)
        cc = nc if cal is None else _resample_counts(rng, idx[2], rows, width)
        a, r, f = _score_metrics(pc, nc, cc, fprs)
        auc_out.append(a)
        rec_out.append(r)
        fpr_out.append(f)
    return ScoreReplicates(
        auc=np.concatenate(auc_out) if auc_out else np.empty(0),
        recall=np.concatenate(rec_out, axis=1) if rec_out else np.empty((len(fprs), 0)),
        fpr=np.concatenate(fpr_out, axis=1) if fpr_out else np.empty((len(fprs), 0)),
    )


def bootstrap_rates(observed: Rates, *, n_boot: int = 2000, seed: int = 0) -> dict[str, FloatArray]:
    """Stratified bootstrap of precision, recall, F1 and FPR of a fixed decision.

    Resampling n_pos positives with replacement makes the replicate's TP exactly Binomial(n_pos, tp/n_pos)
    (and FP likewise on the negatives), so the replicates are drawn as binomials directly.
    """
    rng = np.random.default_rng(seed)
    n_pos, n_neg = observed.tp + observed.fn, observed.fp + observed.tn
    tp = rng.binomial(n_pos, observed.tp / n_pos, size=n_boot).astype(np.float64) if n_pos else np.zeros(n_boot)
    fp = rng.binomial(n_neg, observed.fp / n_neg, size=n_boot).astype(np.float64) if n_neg else np.zeros(n_boot)
    fn = n_pos - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "recall": tp / n_pos if n_pos else np.full(n_boot, np.nan),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
            "fpr": fp / n_neg if n_neg else np.full(n_boot, np.nan),
        }


def bootstrap_quantiles(values: ArrayLike, qs: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> FloatArray:
    """Bootstrap replicates (len(qs), B) of quantiles of one sample (e.g. per-row latency)."""
    v = _as_scores(values)
    if not len(v):
        raise ValueError("quantiles of an empty sample")
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // len(v))
    out = []
    for start in range(0, n_boot, step):
        rows = min(step, n_boot - start)
        sample = v[rng.integers(0, len(v), size=(rows, len(v)))]
        out.append(np.quantile(sample, list(qs), axis=1))
    return np.concatenate(out, axis=1) if out else np.empty((len(qs), 0))
