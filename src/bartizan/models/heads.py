"""Linear classifier heads over static embeddings, with Platt calibration and an FPR-chosen threshold.

A head is ``z = w·x + bias`` on an embedding ``x``, turned into a calibrated probability with Platt scaling
``p = sigmoid(platt_a * z + platt_b)``; `threshold` is a probability chosen by the trainer so that a stated
share of benign held-out prompts (`target_fpr`) scores at or above it. numpy only.

On disk a head is ``<name>.npz`` (the weight vector) plus ``<name>.json`` (bias, calibration, threshold,
metadata), both listed in the folder's ``manifest.json``. `LinearHead.load` verifies both files against the
manifest before reading them (`IntegrityError` otherwise: fail closed). `save` writes the two files with
stable bytes (no timestamps inside the zip) and, by default, refreshes the folder's manifest.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bartizan.models.manifest import IntegrityError, Manifest, write_manifest

FORMAT = "bartizan-linear-head/1"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class LinearHead:
    """A calibrated linear scorer. `score` returns probabilities in [0, 1], one per row of `X`."""

    name: str
    weights: np.ndarray
    bias: float
    platt_a: float = 1.0
    platt_b: float = 0.0
    threshold: float = 0.5
    target_fpr: float = 0.01
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"invalid head name {self.name!r}")
        w = np.asarray(self.weights, dtype=np.float32)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)):
            raise ValueError("weights must be a non-empty finite 1-D vector")
        self.weights = w
        for key in ("bias", "platt_a", "platt_b", "threshold", "target_fpr"):
            value = float(getattr(self, key))
            if not math.isfinite(value):
                raise ValueError(f"{key} must be finite")
            setattr(self, key, value)
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.target_fpr <= 1.0:
            raise ValueError("threshold and target_fpr are probabilities")

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def decision(self, X: np.ndarray) -> np.ndarray:
        """Raw margins ``w·x + bias`` for a (n, dim) matrix or a single (dim,) vector (returned as (1,))."""
        x = np.asarray(X, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"head {self.name!r} expects (n, {self.dim}) inputs, got {x.shape}")
        margins: np.ndarray = (x @ self.weights).astype(np.float64) + self.bias
        return margins

    def score(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``sigmoid(platt_a * z + platt_b)``, float64, shape (n,)."""
        t = self.platt_a * self.decision(X) + self.platt_b
        out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * t))  # sigmoid without overflow warnings
        return out

    def flags(self, X: np.ndarray) -> np.ndarray:
        """Boolean per row: calibrated score at or above the shipped threshold."""
        return self.score(X) >= self.threshold

    # --- persistence -------------------------------------------------------------------------------------

    def save(self, directory: str | Path, *, update_manifest: bool = True, **manifest_fields: Any) -> None:
        """Write ``<name>.npz`` and ``<name>.json`` into `directory`, then refresh its manifest."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(self.weights), allow_pickle=False)
        with zipfile.ZipFile(root / f"{self.name}.npz", "w", compression=zipfile.ZIP_STORED) as zf:
            info = zipfile.ZipInfo("weights.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
        meta = {
            "format": FORMAT,
            "name": self.name,
            "dim": self.dim,
            "bias": self.bias,
            "platt_a": self.platt_a,
            "platt_b": self.platt_b,
            "threshold": self.threshold,
            "target_fpr": self.target_fpr,
            "metadata": self.metadata,
        }
        text = json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (root / f"{self.name}.json").write_text(text, encoding="utf-8")
        if update_manifest:
            write_manifest(root, **manifest_fields)

    @classmethod
    def load(cls, directory: str | Path, name: str | None = None) -> LinearHead:
        """Load head `name` from `directory` after verifying its two files against the manifest.

        `name` may be omitted when the manifest lists exactly one head.
        """
        root = Path(directory)
        manifest = Manifest.load(root)
        if name is None:
            names = sorted(f[: -len(".json")] for f in manifest.artifacts if f.endswith(".json"))
            names = [n for n in names if f"{n}.npz" in manifest.artifacts]
            if len(names) != 1:
                raise ValueError(f"{root.name!r} holds heads {names}: pass a name")
            name = names[0]
        if not _NAME.match(name):
            raise ValueError(f"invalid head name {name!r}")
        files = (f"{name}.npz", f"{name}.json")
        manifest.verify(root, files=files)
        try:
            meta = json.loads(manifest.artifact_path(root, files[1]).read_text(encoding="utf-8"))
            with np.load(manifest.artifact_path(root, files[0]), allow_pickle=False) as npz:
                weights = np.array(npz["weights"], dtype=np.float32)
        except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
            raise IntegrityError(f"head {name!r} is unreadable: {exc}", files[0]) from None
        if meta.get("format") != FORMAT or meta.get("name") != name or meta.get("dim") != weights.shape[0]:
            raise IntegrityError(f"{files[1]} does not describe a {FORMAT} head of dim {weights.shape[0]}", files[1])
        return cls(
            name=name,
            weights=weights,
            bias=meta["bias"],
            platt_a=meta["platt_a"],
            platt_b=meta["platt_b"],
            threshold=meta["threshold"],
            target_fpr=meta["target_fpr"],
            metadata=dict(meta.get("metadata") or {}),
        )


def fit_platt(margins: np.ndarray, labels: np.ndarray, iterations: int = 200) -> tuple[float, float]:
    """Fit Platt scaling (a, b) on held-out margins by Newton's method with Platt's smoothed targets."""
    z = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("Platt scaling needs both classes")
    t = np.where(y > 0, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * z + b)))
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        w = p * (1.0 - p) + 1e-12
        h = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-10:
            break
    return a, b


def threshold_for_fpr(benign_scores: np.ndarray, target_fpr: float) -> float:
    """Smallest threshold such that at most `target_fpr` of `benign_scores` are >= it."""
    s = np.sort(np.asarray(benign_scores, dtype=np.float64))
    if s.size == 0:
        raise ValueError("no benign scores")
    allowed = math.floor(target_fpr * s.size)
    if allowed <= 0:
        return min(1.0, float(np.nextafter(s[-1], np.inf)))
    # scores strictly above the (allowed + 1)-th highest benign score are flagged: at most `allowed` of them
    cut = s[s.size - allowed - 1]
    return min(1.0, float(np.nextafter(cut, np.inf)))
