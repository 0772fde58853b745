"""Integrity manifests: hashing, tamper and missing-file detection, unlisted files, stable output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bartizan.models.manifest import MANIFEST_FILE, IntegrityError, Manifest, write_manifest


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(bytes(range(256)) * 10)
    (root / "config.json").write_text('{"dim": 4}\n', encoding="utf-8")
    (root / "MODEL_CARD.md").write_text("# card\n", encoding="utf-8")
    return root


def test_write_then_verify(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    m = write_manifest(root, name="toy", base_model="none", licence="Apache-2.0", training_data=["x"])
    assert set(m.artifacts) == {"weights.bin", "config.json"}  # documentation and the manifest are not hashed
    assert m.artifacts["weights.bin"].bytes == 2560
    loaded = Manifest.load(root)
    assert loaded == m
    loaded.verify(root, strict=True)


def test_tampered_artifact_names_the_file(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    write_manifest(root, name="toy")
    data = bytearray((root / "weights.bin").read_bytes())
    data[100] ^= 1  # same size, different content
    (root / "weights.bin").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="weights.bin") as info:
        Manifest.load(root).verify(root)
    assert info.value.file == "weights.bin"


def test_truncated_artifact_is_caught_by_size(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    write_manifest(root, name="toy")
    (root / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(IntegrityError, match="config.json"):
        Manifest.load(root).verify(root)


def test_missing_artifact(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    write_manifest(root, name="toy")
    (root / "weights.bin").unlink()
    with pytest.raises(IntegrityError, match="missing") as info:
        Manifest.load(root).verify(root)
    assert info.value.file == "weights.bin"


def test_missing_or_malformed_manifest(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    with pytest.raises(IntegrityError, match="manifest"):
        Manifest.load(root)
    (root / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(IntegrityError, match="malformed"):
        Manifest.load(root)


def test_unlisted_files_are_ignored_but_reported(tmp_path: Path) -> None:
    """Decision: loaders only open listed files, so an extra file cannot be loaded; strict mode reports it."""
    root = _folder(tmp_path)
    write_manifest(root, name="toy")
    (root / "extra.npy").write_bytes(b"x")
    m = Manifest.load(root)
    m.verify(root)  # not an error for loading
    assert m.unlisted(root) == ["extra.npy"]
    with pytest.raises(IntegrityError, match="extra.npy"):
        m.verify(root, strict=True)
    with pytest.raises(IntegrityError, match="not listed"):
        m.artifact_path(root, "extra.npy")
    with pytest.raises(IntegrityError, match="not listed"):
        m.verify(root, files=["extra.npy"])


def test_path_traversal_names_are_rejected(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    write_manifest(root, name="toy")
    raw = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    raw["artifacts"]["../outside"] = raw["artifacts"]["config.json"]
    (root / MANIFEST_FILE).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(IntegrityError, match="invalid artifact name"):
        Manifest.load(root)


def test_rewrite_keeps_fields_and_bytes_are_stable(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    write_manifest(root, name="toy", licence="MIT", metrics={"auc": 0.9})
    first = (root / MANIFEST_FILE).read_bytes()
    write_manifest(root)  # refresh: provenance kept, hashes recomputed
    assert (root / MANIFEST_FILE).read_bytes() == first
    (root / "more.bin").write_bytes(b"1234")
    m = write_manifest(root, metrics={"auc": 0.95})
    assert m.licence == "MIT" and m.metrics == {"auc": 0.95} and "more.bin" in m.artifacts
    with pytest.raises(TypeError):
        write_manifest(root, artifacts={})


def test_unknown_fields_are_rejected(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    with pytest.raises(ValueError):
        write_manifest(root, name="toy", colour="blue")
