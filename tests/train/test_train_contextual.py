"""The contextual stage's trainer: the seeded training subset, the embedding cache, the choice of the verse
lower edge and threshold on calibration data, and a whole fit on toy embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bartizan.detectors.contextual_stage import VERSE_LOWS
from bartizan.train.contextual import EmbeddingCache, choose_verse_low, fit_contextual, training_subset


def test_subset_keeps_positives_and_hard_negatives_and_a_seeded_share_of_the_rest() -> None:
    n = 4000
    y = np.zeros(n, dtype=np.int64)
    y[:500] = 1
    kinds = ["request"] * n
    for i in range(500, 700):
        kinds[i] = "lookalike"
    is_train = np.ones(n, dtype=bool)
    is_train[-1000:] = False
    a = training_subset(kinds, y, is_train, seed=13)
    assert np.array_equal(a, training_subset(kinds, y, is_train, seed=13))
    chosen = set(a.tolist())
    assert set(range(700)) <= chosen  # every positive and every hard negative
    assert not chosen & set(range(n - 1000, n))  # nothing outside the training split
    share = len(chosen - set(range(700))) / (n - 1000 - 700)
    assert 0.25 < share < 0.35


def test_embedding_cache_embeds_each_text_once_and_survives_a_reload(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    path = tmp_path / "cache.npz"
    cache = EmbeddingCache(path)
    first = cache.embed(["a", "bb", "a", "\ud800x"], encode)  # a lone surrogate has a key too
    assert first.shape == (4, 2) and first[0, 0] == first[2, 0] == 1.0
    assert sorted(calls[0]) == sorted(["a", "bb", "\ud800x"])
    again = EmbeddingCache(path).embed(["bb", "a"], encode)
    assert len(calls) == 1  # all cached on disk
    np.testing.assert_array_equal(again, first[[1, 0]])


def test_verse_low_is_the_highest_edge_that_closes_the_gap() -> None:
    rng = np.random.default_rng(0)
    n_benign, n_plain, n_verse = 2000, 200, 200
    y = np.r_[np.zeros(n_benign), np.ones(n_plain + n_verse)].astype(np.int64)
    styles = np.array(["plain"] * (n_benign + n_plain) + ["verse"] * n_verse)
    verse = styles == "verse"
    benign = y == 0
    p1 = np.r_[rng.uniform(0.0, 0.3, n_benign), rng.uniform(0.5, 1.0, n_plain), rng.uniform(0.015, 0.03, n_verse)]
    p2 = np.where(y == 1, 0.95, 0.01)  # the contextual stage separates everything it sees
    low, tau, gaps = choose_verse_low(p1, p2, verse, (0.1, 0.9), benign, y, styles, 0.02)
    assert low == 0.01  # only the lowest edge reaches verse written at 0.015-0.03
    assert gaps[str(VERSE_LOWS[0])] > 0.5 and gaps["0.01"] <= 0.05
    assert (p2[(y == 1)] >= tau).all()


def test_fit_contextual_learns_a_separable_toy_problem() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4000, 16)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    head = fit_contextual(X[:3000], y[:3000], np.ones(3000), X[3000:], y[3000:], seed=3)
    p = head.score(X[3000:])
    assert ((p > 0.5) == (y[3000:] == 1)).mean() > 0.9


def test_band_widens_only_when_calibration_recall_gains_enough() -> None:
    from bartizan.train.contextual import BANDS, choose_band

    rng = np.random.default_rng(2)
    # 3% of benign rows sit just under 0.1, so the fast stage's 1%-FPR threshold is there, above half the attacks
    benign_p1 = np.r_[rng.uniform(0.0, 0.03, 2910), rng.uniform(0.095, 0.099, 90)]
    pos_p1 = np.r_[rng.uniform(0.95, 1.0, 100), rng.uniform(0.06, 0.09, 100)]  # half hide at 0.06-0.09
    p1 = np.r_[benign_p1, pos_p1]
    y = np.r_[np.zeros(3000), np.ones(200)].astype(np.int64)
    p2 = np.where(y == 1, 0.99, 0.01)
    band, _tau, recalls = choose_band(p1, p2, y == 0, y, 0.01)
    assert band == BANDS[1]  # (0.05, 0.95) reaches the hidden half; (0.1, 0.9) does not
    assert recalls["0.1-0.9"] < 0.6 and recalls["0.05-0.95"] == 1.0
    # a band that gains nothing is not chosen over a narrower one
    p1_easy = np.r_[benign_p1, rng.uniform(0.95, 1.0, 200)]
    assert choose_band(p1_easy, p2, y == 0, y, 0.01)[0] == BANDS[0]
