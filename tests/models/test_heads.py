"""Linear and MLP heads: calibrated scores, FPR thresholds, save/load round trip under the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.models.heads import LinearHead, MLPHead, fit_platt, threshold_for_fpr
from bartizan.models.manifest import IntegrityError, Manifest


def _head(name: str = "toy", dim: int = 8) -> LinearHead:
    rng = np.random.default_rng(0)
    return LinearHead(
        name=name,
        weights=rng.normal(size=dim),
        bias=-0.25,
        platt_a=1.7,
        platt_b=-0.3,
        threshold=0.8,
        target_fpr=0.01,
        metadata={"trained_on": ["toy"], "dim_source": "unit test"},
    )


def test_score_is_platt_sigmoid_of_margin() -> None:
    head = _head()
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    z = x.astype(np.float64) @ head.weights.astype(np.float64) + head.bias
    expected = 1.0 / (1.0 + np.exp(-(head.platt_a * z + head.platt_b)))
    np.testing.assert_allclose(head.score(x), expected, rtol=1e-5)
    assert head.score(x[0]).shape == (1,)
    extreme = head.score(np.full((1, 8), 1e6, dtype=np.float32))
    assert 0.0 <= float(extreme[0]) <= 1.0
    with pytest.raises(ValueError):
        head.score(np.zeros((2, 7)))


def test_round_trip(tmp_path: Path) -> None:
    a, b = _head("alpha"), _head("beta", dim=4)
    a.save(tmp_path, licence="Apache-2.0", created_by="test")
    b.save(tmp_path)
    manifest = Manifest.load(tmp_path)
    assert {"alpha.npz", "alpha.json", "beta.npz", "beta.json"} <= set(manifest.artifacts)
    assert manifest.licence == "Apache-2.0"  # kept across the second save
    loaded = LinearHead.load(tmp_path, "alpha")
    np.testing.assert_array_equal(loaded.weights, a.weights)
    assert (loaded.bias, loaded.platt_a, loaded.platt_b, loaded.threshold, loaded.target_fpr) == (
        a.bias,
        a.platt_a,
        a.platt_b,
        a.threshold,
        a.target_fpr,
    )
    assert loaded.metadata == a.metadata
    x = np.random.default_rng(2).normal(size=(3, 8))
    np.testing.assert_array_equal(loaded.score(x), a.score(x))
    with pytest.raises(ValueError, match="pass a name"):
        LinearHead.load(tmp_path)


def test_saved_bytes_are_deterministic(tmp_path: Path) -> None:
    _head().save(tmp_path / "one", name="heads")
    _head().save(tmp_path / "two", name="heads")
    for f in ("toy.npz", "toy.json", "manifest.json"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


def test_tampered_head_refuses_to_load(tmp_path: Path) -> None:
    _head().save(tmp_path)
    meta = (tmp_path / "toy.json").read_text(encoding="utf-8").replace('"threshold": 0.8', '"threshold": 0.9')
    (tmp_path / "toy.json").write_text(meta, encoding="utf-8")
    with pytest.raises(IntegrityError) as info:
        LinearHead.load(tmp_path)
    assert info.value.file == "toy.json"


def test_head_without_manifest_refuses_to_load(tmp_path: Path) -> None:
    _head().save(tmp_path, update_manifest=False)
    with pytest.raises(IntegrityError):
        LinearHead.load(tmp_path, "toy")


def test_invalid_heads_are_rejected() -> None:
    with pytest.raises(ValueError):
        LinearHead(name="../evil", weights=np.ones(3), bias=0.0)
    with pytest.raises(ValueError):
        LinearHead(name="nan", weights=np.array([1.0, np.nan]), bias=0.0)
    with pytest.raises(ValueError):
        LinearHead(name="thr", weights=np.ones(3), bias=0.0, threshold=1.5)


def test_threshold_for_fpr_bounds_the_benign_flag_rate() -> None:
    benign = np.random.default_rng(3).uniform(size=1000)
    for target in (0.0, 0.001, 0.01, 0.05):
        thr = threshold_for_fpr(benign, target)
        assert float(np.mean(benign >= thr)) <= target
    assert float(np.mean(benign >= threshold_for_fpr(benign, 0.05))) >= 0.049


def test_fit_platt_calibrates() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(size=4000)
    y = (rng.uniform(size=4000) < 1.0 / (1.0 + np.exp(-(2.0 * z - 0.5)))).astype(int)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(2.0, abs=0.25) and b == pytest.approx(-0.5, abs=0.2)
    with pytest.raises(ValueError):
        fit_platt(z, np.zeros_like(y))


def _mlp(name: str = "deep", dim: int = 6, hidden: int = 4) -> MLPHead:
    rng = np.random.default_rng(3)
    return MLPHead(
        name=name,
        weights=rng.normal(size=hidden),
        bias=0.1,
        platt_a=0.8,
        platt_b=-0.2,
        threshold=0.6,
        hidden_weights=rng.normal(size=(dim, hidden)),
        hidden_bias=rng.normal(size=hidden),
    )


def test_mlp_head_margin_is_relu_layer_then_linear() -> None:
    head = _mlp()
    x = np.random.default_rng(4).normal(size=(5, 6)).astype(np.float32)
    hidden = np.maximum(x @ head.hidden_weights + head.hidden_bias, 0.0)
    np.testing.assert_allclose(head.decision(x), hidden @ head.weights + head.bias, rtol=1e-5)
    assert head.dim == 6
    with pytest.raises(ValueError):
        head.decision(np.ones((1, 4)))


def test_mlp_head_round_trips_and_load_returns_its_class(tmp_path: Path) -> None:
    head = _mlp()
    head.save(tmp_path)
    loaded = LinearHead.load(tmp_path, "deep")
    assert isinstance(loaded, MLPHead)
    x = np.random.default_rng(5).normal(size=(3, 6))
    np.testing.assert_allclose(loaded.score(x), head.score(x))
    assert json.loads((tmp_path / "deep.json").read_text())["format"] == "bartizan-mlp-head/1"


def test_mlp_head_with_a_missing_layer_is_refused(tmp_path: Path) -> None:
    head = _mlp()
    head.save(tmp_path)
    meta = json.loads((tmp_path / "deep.json").read_text())
    LinearHead(name="deep", weights=np.ones(4), bias=0.0).save(tmp_path, update_manifest=False)
    (tmp_path / "deep.json").write_text(json.dumps(meta))  # says MLP, npz holds only the weight vector
    from bartizan.models.manifest import write_manifest

    write_manifest(tmp_path)
    with pytest.raises(IntegrityError):
        LinearHead.load(tmp_path, "deep")


def test_mlp_head_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        MLPHead(name="bad", weights=np.ones(3), bias=0.0, hidden_weights=np.ones((6, 4)), hidden_bias=np.ones(4))
    with pytest.raises(ValueError):
        MLPHead(name="bad", weights=np.ones(4), bias=0.0, hidden_weights=np.ones((6, 4)), hidden_bias=np.ones(3))


def test_platt_fit_survives_wide_margins() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, size=2000)
    z = np.where(y == 1, 30.0, -30.0) + rng.normal(scale=8.0, size=2000)  # MLP-like logits
    a, b = fit_platt(z, y)
    assert np.isfinite(a) and np.isfinite(b) and 0 < a < 5
    p = 0.5 * (1 + np.tanh(0.5 * (a * z + b)))
    assert 0.9 < p[y == 1].mean() < 1.0 and 0.0 < p[y == 0].mean() < 0.1


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_mlp_decision_matches_the_reference_on_sparse_and_dense_rows(seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    dim, hidden = 40, 8
    head = MLPHead(
        name="sparse",
        weights=rng.normal(size=hidden).astype(np.float32),
        bias=0.3,
        hidden_weights=rng.normal(size=(dim, hidden)).astype(np.float32),
        hidden_bias=rng.normal(size=hidden).astype(np.float32),
    )
    X = (rng.normal(size=(3, dim)) * (rng.random((3, dim)) < density)).astype(np.float32)
    reference = np.maximum(X @ head.hidden_weights + head.hidden_bias, 0.0) @ head.weights + 0.3
    np.testing.assert_allclose(head.decision(X), reference, rtol=1e-5, atol=1e-5)
