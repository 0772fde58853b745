"""Train the contextual (second-stage) head of a learned detector (`bartizan.detectors.contextual_stage`).

Features: the all-MiniLM-L6-v2 sentence embedding of each text (mean pooling, at most 128 tokens), computed
by the same numpy encoder that runs at scan time (`bartizan.models.contextual`), so training and scanning
see identical vectors. The encoder costs tens of milliseconds per text on a CPU, so the head is trained on
a seeded subset of the training split: every positive, every hard negative (look-alikes, personas, real
chat, benign twins) and `BENIGN_SHARE` of the other benign rows. Embeddings can be kept in a cache file
keyed by the sha256 of each text (``--contextual-cache``), so that a rerun does not pay for them again.

Calibration, band and threshold: the stage only ever sees the fast stage's uncertain band, so Platt scaling
is fitted on the calibration rows inside the widest candidate band; the band (`choose_band`), for
harmful_intent the lower edge for verse-shaped text (`choose_verse_low`), and the threshold for the stated
FPR on the combined score (contextual probability inside the band, fast-stage probability outside) are all
chosen on the calibration split. Test-split metrics are measured through the registered detector with
``contextual: true``, i.e. exactly what a policy runs.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bartizan.detectors.contextual_stage import CONTEXTUAL_FEATURES, VERSE_LOWS, head_name, verse_shaped
from bartizan.models.heads import fit_platt, threshold_for_fpr
from bartizan.train.fit import FittedHead, _margin, evaluate_scores, fit_mlp

BENIGN_SHARE = 0.3
#: candidate bands of the fast stage's probability, narrowest first (`choose_band`)
BANDS = ((0.1, 0.9), (0.05, 0.95), (0.02, 0.98))
MAX_BENIGN_IN_BAND = 0.15
HIDDEN = 256
SUBSET_KINDS = frozenset({"lookalike", "persona", "chat", "twin"})


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """sha256(text) -> contextual embedding, in an .npz file (optional; `path` None keeps nothing)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            with np.load(path) as data:
                self.rows = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def embed(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], chunk: int = 2048) -> np.ndarray:
        keys = [_key(t) for t in texts]
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in self.rows}.items())
        t0 = time.perf_counter()
        for lo in range(0, len(missing), chunk):
            part = missing[lo : lo + chunk]
            for (k, _), v in zip(part, encode([t for _, t in part]), strict=True):
                self.rows[k] = v
            print(
                f"[contextual] embedded {lo + len(part)}/{len(missing)} ({time.perf_counter() - t0:.0f}s)",
                file=sys.stderr,
            )
        if missing and self.path is not None:
            self.save()
        return np.stack([self.rows[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        assert self.path is not None
        keys = sorted(self.rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, keys=np.array(keys), vectors=np.stack([self.rows[k] for k in keys]))


def training_subset(kinds: Sequence[str], y: np.ndarray, is_train: np.ndarray, seed: int) -> np.ndarray:
    """Indices of the training rows the contextual head learns from (see the module docstring)."""
    rng = np.random.default_rng(seed)
    draw = rng.random(len(y)) < BENIGN_SHARE
    keep = is_train & ((y == 1) | np.isin(np.asarray(kinds), list(SUBSET_KINDS)) | draw)
    return np.flatnonzero(keep)


def fit_contextual(
    X_tr: np.ndarray,
    y_tr: np.ndarray,
    w_tr: np.ndarray,
    X_band_cal: np.ndarray,
    y_band_cal: np.ndarray,
    seed: int,
) -> FittedHead:
    """MLP on the embeddings, Platt on the in-band calibration rows (threshold set later, on the combined
    score)."""
    w, b, hid = fit_mlp(X_tr, y_tr, w_tr, HIDDEN, seed=seed)
    a, c = fit_platt(_margin(X_band_cal, w, b, hid), y_band_cal)
    return FittedHead(weights=w, bias=b, platt_a=a, platt_b=c, threshold=0.5, target_fpr=0.0, hidden=hid)


def choose_verse_low(
    p1: np.ndarray,
    p2: np.ndarray,
    verse: np.ndarray,
    band: tuple[float, float],
    benign: np.ndarray,
    y: np.ndarray,
    styles: np.ndarray,
    target_fpr: float,
) -> tuple[float, float, dict[str, float]]:
    """The highest verse lower edge (fewest encoder calls) whose combined score keeps verse recall within 5
    points of plain recall on the calibration split, else the one with the smallest gap; with its threshold.
    `p2`: contextual probabilities, NaN where never needed."""
    lo, hi = band
    best: tuple[float, float, float] | None = None
    gaps: dict[str, float] = {}
    for low in VERSE_LOWS:
        edge = np.where(verse, min(lo, low), lo)
        inside = (p1 >= edge) & (p1 <= hi)
        p = np.where(inside, p2, p1)
        tau = threshold_for_fpr(p[benign], target_fpr)
        flagged = p >= tau
        gap = float(flagged[(y == 1) & (styles == "plain")].mean() - flagged[(y == 1) & (styles == "verse")].mean())
        gaps[str(low)] = round(gap, 4)
        if gap <= 0.05:
            return low, tau, gaps
        if best is None or gap < best[2]:
            best = (low, tau, gap)
    assert best is not None
    return best[0], best[1], gaps


def choose_band(
    p1: np.ndarray, p2: np.ndarray, benign: np.ndarray, y: np.ndarray, target_fpr: float
) -> tuple[tuple[float, float], float, dict[str, float]]:
    """The band (of `BANDS`, narrowest first) with the best calibration recall at the stated FPR on the
    combined score; a wider band must gain at least half a point to be chosen (it costs encoder calls),
    and none may send more than `MAX_BENIGN_IN_BAND` of benign rows to the encoder. With its threshold."""
    best: tuple[tuple[float, float], float, float] | None = None
    recalls: dict[str, float] = {}
    for lo, hi in BANDS:
        inside = (p1 >= lo) & (p1 <= hi)
        if best is not None and inside[benign].mean() > MAX_BENIGN_IN_BAND:
            continue
        p = np.where(inside, p2, p1)
        tau = threshold_for_fpr(p[benign], target_fpr)
        recall = float((p[y == 1] >= tau).mean())
        recalls[f"{lo}-{hi}"] = round(recall, 4)
        if best is None or recall > best[2] + 0.005:
            best = ((lo, hi), tau, recall)
    assert best is not None
    return best[0], best[1], recalls


def train_contextual(
    head: str,
    ex: list[Any],
    split: np.ndarray,
    stage1: dict[str, Any],
    weights: np.ndarray,
    target_fpr: float,
    deployed: Callable[[list[Any], dict[str, Any]], np.ndarray],
    heads_out: Path,
    cache: EmbeddingCache,
    seed: int,
    surfaces: tuple[str, ...] = ("user", "tool"),
    verse: bool = False,
) -> tuple[FittedHead, dict[str, Any]]:
    """Fit, save and measure the contextual head of `head`.

    `stage1`: the fast stage's deployed probabilities on the calibration and test rows (``cal``, ``p_cal``,
    ``te``, ``p_te``: row indices into `ex` and probabilities). `weights`: per-row training weight over
    `ex`. `deployed(rows, config)`: probabilities of the registered detector with extra config.
    `surfaces`: the roles of rows ("user" or "tool") the stage learns from and applies to. `verse`: also
    choose a lower band edge for verse-shaped text (`choose_verse_low`)."""
    from bartizan.models.contextual import MAX_TOKENS, NAME, PINNED_SHA256, load_contextual

    encoder = load_contextual(None)

    def encode(texts: list[str]) -> np.ndarray:
        return encoder.encode(texts, one_thread=False)  # training: every core

    idx = np.array([i for i, e in enumerate(ex) if head in e.labels and e.role in surfaces])
    y_all = np.zeros(len(ex), dtype=np.int64)
    y_all[idx] = [ex[i].labels[head] for i in idx]
    is_train = np.zeros(len(ex), dtype=bool)
    is_train[idx] = split[idx] == "train"
    sub = training_subset([e.kind for e in ex], y_all, is_train, seed)
    X_tr = cache.embed([ex[i].text for i in sub], encode)

    keep_cal = np.array([ex[i].role in surfaces for i in stage1["cal"]])
    cal, p_cal = np.asarray(stage1["cal"])[keep_cal], np.asarray(stage1["p_cal"])[keep_cal]
    lowest = min((*VERSE_LOWS, *(b[0] for b in BANDS))) if verse else min(b[0] for b in BANDS)
    widest = (p_cal >= lowest) & (p_cal <= max(b[1] for b in BANDS))
    X_cal = cache.embed([ex[i].text for i in cal[widest]], encode)
    fitted = fit_contextual(X_tr, y_all[sub], weights[sub], X_cal, y_all[cal[widest]], seed)

    # band, verse edge and threshold, all on the calibration split (stated FPR on the combined score)
    benign = np.array([not any(v == 1 for v in e.labels.values()) for e in ex])
    p2_cal = np.full(len(cal), np.nan)
    p2_cal[widest] = fitted.score(X_cal)
    (lo, hi), tau, band_recalls = choose_band(p_cal, p2_cal, benign[cal], y_all[cal], target_fpr)
    verse_low: float | None = None
    gaps: dict[str, float] = {}
    if verse:
        shaped = np.array([verse_shaped(ex[i].text) for i in cal])
        styles = np.array([ex[i].style for i in cal])
        verse_low, tau, gaps = choose_verse_low(
            p_cal, p2_cal, shaped, (lo, hi), benign[cal], y_all[cal], styles, target_fpr
        )
    fitted = replace(fitted, threshold=tau, target_fpr=target_fpr)
    meta: dict[str, Any] = {
        "feature_version": CONTEXTUAL_FEATURES,
        "encoder": NAME,
        "encoder_sha256": PINNED_SHA256["model.safetensors"],
        "max_tokens": MAX_TOKENS,
        "band": [lo, hi],
        "surfaces": list(surfaces),
        "hidden": HIDDEN,
        "seed": seed,
        "train_rows": len(sub),
        "stage1": head,
    }
    if verse_low is not None:
        meta["verse_low"] = verse_low
    fitted.as_head(head_name(head), meta).save(heads_out, update_manifest=False)
    from bartizan.models.manifest import write_manifest

    write_manifest(heads_out, name="bartizan-heads")

    keep_te = np.array([ex[i].role in surfaces for i in stage1["te"]])
    te, p1_te = np.asarray(stage1["te"])[keep_te], np.asarray(stage1["p_te"])[keep_te]
    p_te = deployed([ex[i] for i in te], {"contextual": True})
    y_te = y_all[te]
    metrics = evaluate_scores(p_te, tau, y_te, [ex[i].source for i in te], [ex[i].style for i in te], benign[te])
    low_te = np.where([verse_shaped(ex[i].text) for i in te], verse_low, lo) if verse_low is not None else lo
    band_te = (p1_te >= low_te) & (p1_te <= hi)
    neg = benign[te] & (y_te == 0)
    metrics["band"] = [lo, hi]
    metrics["surfaces"] = list(surfaces)
    metrics["calibration_recall_per_band"] = band_recalls
    if verse_low is not None:
        metrics["verse_low"] = verse_low
        metrics["calibration_verse_gap"] = gaps
    metrics["benign_share_in_band"] = round(float(band_te[neg].mean()), 4)
    metrics["positive_share_in_band"] = round(float(band_te[y_te == 1].mean()), 4)
    metrics["rows"] = {"train": len(sub), "calib_in_widest_band": int(widest.sum()), "test": len(te)}
    metrics["scored_by"] = f"bartizan.detectors.{head} (default config, contextual: true)"
    return fitted, metrics
