"""Exact metric definitions and the vectorised bootstrap, checked against brute force and by properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.eval import metrics as m
from bartizan.eval.metrics import _score_metrics

# Scores drawn from a small set so that ties are common.
score = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])
scores = st.lists(score, min_size=1, max_size=40)
fpr = st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0])


def brute_auc(pos: list[float], neg: list[float]) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def brute_threshold(neg: list[float], x: float) -> float:
    """The rule as written: the lowest tau with share(>= tau) <= x. Flag counts only change at benign scores,
    so the candidates are just above each benign score (and -inf, below everything)."""
    candidates = [float("-inf"), *sorted(float(np.nextafter(v, np.inf)) for v in set(neg))]
    return next(t for t in candidates if sum(v >= t for v in neg) / len(neg) <= x + 1e-12)


# --- AUC ----------------------------------------------------------------------------------------------
@given(scores, scores)
def test_auc_matches_pairwise_definition_and_is_a_probability(pos: list[float], neg: list[float]) -> None:
    a = m.auc(pos, neg)
    assert 0.0 <= a <= 1.0
    assert a == pytest.approx(brute_auc(pos, neg), abs=1e-12)


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50, unique=True))
def test_auc_perfect_and_reversed(values: list[float]) -> None:
    v = sorted(values)
    k = len(v) // 2
    assert m.auc(v[k:], v[:k]) == 1.0
    assert m.auc(v[:k], v[k:]) == 0.0


@given(score, st.integers(1, 30), st.integers(1, 30))
def test_auc_all_ties_is_one_half(s: float, n_pos: int, n_neg: int) -> None:
    assert m.auc([s] * n_pos, [s] * n_neg) == 0.5


def test_auc_rejects_empty_class_and_nan() -> None:
    with pytest.raises(ValueError):
        m.auc([], [0.1])
    with pytest.raises(ValueError):
        m.auc([float("nan")], [0.1])


# --- threshold and recall at FPR ----------------------------------------------------------------------
def test_threshold_tie_rule_worked_example() -> None:
    neg = [0.1, 0.2, 0.2, 0.3]

    def up(v: float) -> float:
        return float(np.nextafter(v, np.inf))

    assert m.threshold_at_fpr(neg, 0.0) == up(0.3)  # nothing may be flagged: just above the maximum
    assert m.threshold_at_fpr(neg, 0.25) == up(0.2)  # one may be flagged: 0.3 is, the 0.2 tie is not
    assert m.threshold_at_fpr(neg, 0.5) == up(0.2)  # two allowed, but the tie at 0.2 is two more: above it
    assert m.threshold_at_fpr(neg, 0.75) == up(0.1)
    assert m.threshold_at_fpr(neg, 1.0) == float("-inf")


@given(scores, fpr)
def test_threshold_is_the_lowest_that_keeps_the_budget(neg: list[float], x: float) -> None:
    tau = m.threshold_at_fpr(neg, x)
    assert tau == brute_threshold(neg, x)
    arr = np.asarray(neg)
    assert np.mean(arr >= tau) <= x + 1e-12
    below = arr[arr < tau]
    if len(below):  # any lower threshold would flag the next benign score down, and break the budget
        assert np.mean(arr >= below.max()) > x


@given(scores, scores, fpr, fpr)
def test_recall_at_fpr_is_monotone_in_fpr(pos: list[float], neg: list[float], x: float, y: float) -> None:
    lo, hi = sorted((x, y))
    a, b = m.recall_at_fpr(pos, neg, lo), m.recall_at_fpr(pos, neg, hi)
    assert a.threshold >= b.threshold
    assert a.recall <= b.recall
    assert a.fpr <= b.fpr <= hi + 1e-12


def test_recall_at_fpr_with_separate_calibration_reports_achieved_fpr() -> None:
    cal = [0.0] * 98 + [0.55, 0.6]  # 1% budget: one benign may be flagged (0.6), 0.55 may not
    r = m.recall_at_fpr(pos=[0.5, 0.7, 0.9, 0.95], neg=[0.1, 0.65, 0.2, 0.3], max_fpr=0.01, calibration=cal)
    assert r.threshold == np.nextafter(0.55, 1) and r.allowed_false_positives == 1 and not r.above_all
    assert r.recall == 0.75
    assert r.fpr == 0.25  # achieved on the evaluation negatives, not the calibration ones
    assert r.calibration_fpr == 0.01


# --- proportions --------------------------------------------------------------------------------------
def test_wilson_known_values_and_exact_edges() -> None:
    w = m.wilson(5, 10)
    assert w is not None and w.method == "wilson"
    assert (w.low, w.high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    zero = m.wilson(0, 10)
    assert zero is not None and zero.method == "clopper-pearson"
    assert (zero.low, zero.high) == pytest.approx((0.0, 0.3085), abs=1e-4)
    full = m.wilson(10, 10)
    assert full is not None and (full.low, full.high) == pytest.approx((0.6915, 1.0), abs=1e-4)
    assert m.wilson(0, 0) is None


def test_rates_definitions() -> None:
    r = m.rates([True, True, False, True], [False, True, False, False, False])
    assert (r.tp, r.fp, r.fn, r.tn) == (3, 1, 1, 4)
    assert r.precision == 0.75 and r.recall == 0.75 and r.f1 == 0.75 and r.fpr == 0.2
    assert m.rates([False], [False]).precision is None


# --- bootstrap ----------------------------------------------------------------------------------------
@settings(max_examples=60)
@given(st.data())
def test_vectorised_replicates_equal_brute_force_on_expanded_samples(data: st.DataObject) -> None:
    """Each row of counts is one resample; the vectorised metrics must equal the plain ones on it."""
    grid = np.array([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    counts = st.lists(st.integers(0, 4), min_size=len(grid), max_size=len(grid)).filter(lambda c: sum(c) > 0)
    rows = 3
    p = np.array([data.draw(counts) for _ in range(rows)])
    n = np.array([data.draw(counts) for _ in range(rows)])
    # One sample size per stratum across rows, as in a real bootstrap: rescale by padding the last column.
    for mat in (p, n):
        mat[:, -1] += mat.sum(axis=1).max() - mat.sum(axis=1)
    fprs = [0.0, 0.1, 0.5]
    auc_b, rec_b, fpr_b = _score_metrics(p, n, n, fprs)
    for r in range(rows):
        pos, neg = np.repeat(grid, p[r]), np.repeat(grid, n[r])
        assert auc_b[r] == pytest.approx(m.auc(pos, neg), abs=1e-12)
        for i, x in enumerate(fprs):
            exact = m.recall_at_fpr(pos, neg, x)
            assert rec_b[i, r] == pytest.approx(exact.recall, abs=1e-12)
            assert fpr_b[i, r] == pytest.approx(exact.fpr, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(scores, scores, st.integers(0, 2**31))
def test_bootstrap_interval_contains_the_point_estimate(pos: list[float], neg: list[float], seed: int) -> None:
    fprs = (0.01, 0.1)
    reps = m.bootstrap_scores(pos, neg, fprs, n_boot=200, seed=seed)
    assert reps.auc.shape == (200,) and reps.recall.shape == (2, 200)
    assert ((reps.auc >= 0) & (reps.auc <= 1)).all()
    point = m.auc(pos, neg)
    ci = m.percentile_interval(reps.auc, point)
    assert ci is not None and ci.low <= point <= ci.high
    for i, x in enumerate(fprs):
        r = m.recall_at_fpr(pos, neg, x).recall
        ci = m.percentile_interval(reps.recall[i], r)
        assert ci is not None and ci.low <= r <= ci.high
    obs = m.rates(np.asarray(pos) >= 0.5, np.asarray(neg) >= 0.5)
    rb = m.bootstrap_rates(obs, n_boot=200, seed=seed)
    for key in ("precision", "recall", "f1", "fpr"):
        value = getattr(obs, key)
        ci = m.percentile_interval(rb[key], value)
        assert value is None or (ci is not None and ci.low <= value <= ci.high)


def test_bootstrap_is_seeded_and_centred() -> None:
    rng = np.random.default_rng(7)
    pos, neg = rng.normal(1.5, 1, 400), rng.normal(0, 1, 3000)
    a = m.bootstrap_scores(pos, neg, (0.01,), n_boot=500, seed=3)
    b = m.bootstrap_scores(pos, neg, (0.01,), n_boot=500, seed=3)
    assert np.array_equal(a.auc, b.auc) and np.array_equal(a.recall, b.recall)
    point = m.auc(pos, neg)
    assert abs(float(np.mean(a.auc)) - point) < 0.01  # the bootstrap mean of AUC is unbiased
    ci = m.percentile_interval(a.auc, point)
    assert ci is not None and 0.01 < ci.high - ci.low < 0.08


def test_bootstrap_with_calibration_resamples_three_strata() -> None:
    rng = np.random.default_rng(1)
    pos, neg, cal = rng.normal(2, 1, 200), rng.normal(0, 1, 500), rng.normal(0.3, 1, 800)
    reps = m.bootstrap_scores(pos, neg, (0.05,), calibration=cal, n_boot=300, seed=0)
    exact = m.recall_at_fpr(pos, neg, 0.05, calibration=cal)
    ci = m.percentile_interval(reps.fpr[0], exact.fpr)
    assert ci is not None and ci.low <= exact.fpr <= ci.high
    assert exact.fpr < 0.05  # calibrated on a shifted benign set: fewer false positives here


def test_bootstrap_quantiles() -> None:
    lat = np.arange(1, 1001, dtype=float)
    reps = m.bootstrap_quantiles(lat, (0.5, 0.99), n_boot=300, seed=0)
    assert reps.shape == (2, 300)
    p50, p99 = m.quantiles(lat, (0.5, 0.99))
    assert p50 == pytest.approx(500.5) and p99 == pytest.approx(990.01)
    assert abs(float(np.median(reps[0])) - p50) < 20


def test_percentile_interval_edge_cases() -> None:
    assert m.percentile_interval([], 0.5) is None
    assert m.percentile_interval([0.1, 0.2], None) is None
    ci = m.percentile_interval([0.2, 0.3, float("nan")], 0.9)  # extended to hold the estimate
    assert ci is not None and ci.high == 0.9 and not math.isnan(ci.low)
