"""Fit one head, calibrate it (Platt), pick its threshold for a stated FPR, and measure it.

The head is a logistic regression over `bartizan.models.features` vectors (class-balanced, fixed seed), or
a one-hidden-layer ReLU network (scikit-learn's MLPClassifier, Adam, early stopping on a seeded 10% of the
training rows) whose output logit becomes the margin.
Calibration and threshold use only the calibration split; every reported number uses only the test split,
whose seeds (and whose benign sources, partly) the training never saw.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bartizan.models.heads import fit_platt, threshold_for_fpr

FPR_POINTS = (0.001, 0.01, 0.05)


@dataclass(frozen=True)
class FittedHead:
    """Raw parameters of a calibrated head: p = sigmoid(a * (w·h + bias) + b) with h = x (linear) or
    h = relu(x @ W1 + b1) (`hidden` = (W1, b1)); flag iff p >= threshold."""

    weights: np.ndarray
    bias: float
    platt_a: float
    platt_b: float
    threshold: float
    target_fpr: float
    hidden: tuple[np.ndarray, np.ndarray] | None = None

    def margin(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(_margin(X, self.weights, self.bias, self.hidden), dtype=np.float64)

    def as_head(self, name: str, metadata: dict[str, Any]) -> Any:
        """The run-time `LinearHead` (or `MLPHead`) with these parameters."""
        from bartizan.models.heads import LinearHead, MLPHead

        common: dict[str, Any] = {
            "name": name,
            "weights": self.weights,
            "bias": self.bias,
            "platt_a": self.platt_a,
            "platt_b": self.platt_b,
            "threshold": self.threshold,
            "target_fpr": self.target_fpr,
            "metadata": metadata,
        }
        if self.hidden is None:
            return LinearHead(**common)
        return MLPHead(**common, hidden_weights=self.hidden[0], hidden_bias=self.hidden[1])

    def score(self, X: np.ndarray) -> np.ndarray:
        return sigmoid(self.platt_a * self.margin(X) + self.platt_b)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64))))


def _margin(X: np.ndarray, w: np.ndarray, b: float, hidden: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    h = X if hidden is None else np.maximum(np.asarray(X, dtype=np.float32) @ hidden[0] + hidden[1], 0.0)
    return np.asarray(h @ w + b, dtype=np.float64)


def fit_mlp(
    X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None, hidden: int, seed: int = 0
) -> tuple[np.ndarray, float, tuple[np.ndarray, np.ndarray]]:
    """One ReLU hidden layer; returns (w, b, (W1, b1)) so that the margin is relu(x @ W1 + b1) @ w + b."""
    from sklearn.neural_network import MLPClassifier  # type: ignore[import-untyped]

    clf = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        alpha=1e-3,
        batch_size=256,
        max_iter=60,
        early_stopping=True,
        random_state=seed,
    )
    clf.fit(X, y, sample_weight=sample_weight)
    w1, w2 = clf.coefs_
    b1, b2 = clf.intercepts_
    hid = (w1.astype(np.float32), b1.astype(np.float32))
    return w2[:, 0].astype(np.float32), float(b2[0]), hid


def fit_logreg(
    X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, C: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression (scikit-learn, lbfgs; a build-time dependency only)."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed)
    clf.fit(X, y, sample_weight=sample_weight)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged)."""
    from scipy.stats import rankdata  # type: ignore[import-untyped]

    y = np.asarray(y)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    tau = threshold_for_fpr(s[y == 0], fpr)
    pos = s[y == 1]
    return float((pos >= tau).mean()) if len(pos) else float("nan")


def fit_head(
    X_tr: np.ndarray,
    y_tr: np.ndarray,
    w_tr: np.ndarray | None,
    X_cal: np.ndarray,
    y_cal: np.ndarray,
    thr_mask: np.ndarray,
    target_fpr: float,
    C: float = 1.0,
    seed: int = 0,
    X_cal_alt: np.ndarray | None = None,
    hidden: int = 0,
) -> FittedHead:
    """Train on the train split; Platt + threshold on the calibration split (`thr_mask`: the calibration
    rows that count as benign traffic for the FPR). With `X_cal_alt` (features of each row's ask
    sentences) the threshold is chosen for the run-time rule score = max(score(text), score(ask)).
    `hidden` > 0: an MLP head with that many hidden units (`C` unused) instead of logistic regression."""
    hid: tuple[np.ndarray, np.ndarray] | None = None
    if hidden > 0:
        w, b, hid = fit_mlp(X_tr, y_tr, w_tr, hidden, seed=seed)
    else:
        w, b = fit_logreg(X_tr, y_tr, w_tr, C=C, seed=seed)
    m_cal = _margin(X_cal, w, b, hid)
    a, c = fit_platt(m_cal, y_cal)
    p_cal = sigmoid(a * m_cal + c)
    if X_cal_alt is not None:
        p_cal = np.maximum(p_cal, sigmoid(a * _margin(X_cal_alt, w, b, hid) + c))
    tau = threshold_for_fpr(p_cal[thr_mask], target_fpr)
    return FittedHead(weights=w, bias=b, platt_a=a, platt_b=c, threshold=tau, target_fpr=target_fpr, hidden=hid)


def evaluate(
    head: FittedHead,
    X: np.ndarray,
    y: np.ndarray,
    sources: Sequence[str],
    styles: Sequence[str],
    benign_mask: np.ndarray,
    X_alt: np.ndarray | None = None,
) -> dict[str, object]:
    """Test-split metrics of `head` on feature rows `X` (see `evaluate_scores`). `X_alt`: as in `fit_head`."""
    p = head.score(X)
    if X_alt is not None:
        p = np.maximum(p, head.score(X_alt))
    return evaluate_scores(p, head.threshold, y, sources, styles, benign_mask)


def evaluate_scores(
    p: np.ndarray,
    threshold: float | np.ndarray,
    y: np.ndarray,
    sources: Sequence[str],
    styles: Sequence[str],
    benign_mask: np.ndarray,
) -> dict[str, object]:
    """Metrics of probabilities `p`: AUC and recall at 0.1/1/5% FPR (against `benign_mask` negatives),
    recall and FPR at `threshold` (one value, or one per row for per-surface thresholds), FPR per benign
    source, recall per style and per attack source."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y)
    pos = y == 1
    neg_eval = benign_mask & (y == 0)
    ys = np.concatenate([np.ones(int(pos.sum())), np.zeros(int(neg_eval.sum()))])
    ss = np.concatenate([p[pos], p[neg_eval]])
    flagged = p >= threshold
    out: dict[str, object] = {
        "n_pos": int(pos.sum()),
        "n_benign": int(neg_eval.sum()),
        "auc": round(auc(ys, ss), 4),
        **{f"recall_at_{f * 100:g}pct_fpr": round(recall_at_fpr(ys, ss, f), 4) for f in FPR_POINTS},
        "threshold": round(float(np.min(threshold)), 6) if np.ndim(threshold) else round(float(threshold), 6),
        "recall_at_threshold": round(float(flagged[pos].mean()), 4) if pos.any() else None,
        "fpr_at_threshold": round(float(flagged[neg_eval].mean()), 4) if neg_eval.any() else None,
    }
    by_src: dict[str, list[int]] = defaultdict(list)
    by_style: dict[str, list[int]] = defaultdict(list)
    by_pos_src: dict[str, list[int]] = defaultdict(list)
    for i in range(len(y)):
        if y[i] == 1:
            by_style[styles[i]].append(i)
            by_pos_src[sources[i].split("+")[0]].append(i)
        elif benign_mask[i]:
            by_src[sources[i]].append(i)
    out["fpr_per_source"] = {
        k: {"n": len(v), "fpr": round(float(flagged[v].mean()), 4)} for k, v in sorted(by_src.items())
    }
    out["recall_per_style"] = {
        k: {"n": len(v), "recall": round(float(flagged[v].mean()), 4)} for k, v in sorted(by_style.items())
    }
    out["recall_per_source"] = {
        k: {"n": len(v), "recall": round(float(flagged[v].mean()), 4)} for k, v in sorted(by_pos_src.items())
    }
    return out


#: quantiles of the benign calibration maxima tried as chunk and sentence thresholds (`choose_sentence_threshold`)
_JOINT_QUANTILES = (0.98, 0.985, 0.99, 0.992, 0.995, 0.997, 0.999, 1.0)


def choose_sentence_threshold(
    chunk: np.ndarray, sentence: np.ndarray, y: np.ndarray, benign: np.ndarray, target_fpr: float
) -> tuple[float, float, float]:
    """(chunk threshold, sentence threshold, calibration recall) for a surface scored both ways.

    A row is flagged when its best chunk reaches the chunk threshold or its best sentence the sentence
    threshold. Both are taken from a grid of quantiles of the benign rows' maxima; the pair with the best
    recall whose joint false-positive rate on `benign` stays within `target_fpr` wins (on a tie, the first
    found, scanning from the lowest thresholds)."""
    chunk, sentence = np.asarray(chunk, dtype=np.float64), np.asarray(sentence, dtype=np.float64)
    neg, pos = benign & (y == 0), y == 1
    if not neg.any() or not pos.any():
        raise ValueError("need benign and positive rows to choose a sentence threshold")
    grid_c = [threshold_for_fpr(chunk[neg], 1.0 - q) for q in _JOINT_QUANTILES]
    grid_s = [threshold_for_fpr(sentence[neg], 1.0 - q) for q in _JOINT_QUANTILES]
    best: tuple[float, float, float] | None = None
    for tc in grid_c:
        for ts in grid_s:
            flagged = (chunk >= tc) | (sentence >= ts)
            if flagged[neg].mean() > target_fpr:
                continue
            recall = float(flagged[pos].mean())
            if best is None or recall > best[2]:
                best = (tc, ts, recall)
    if best is None:  # the grid's corner (nothing benign flagged) always qualifies; kept for type narrowing
        raise ValueError("no threshold pair meets the target FPR")
    return best
