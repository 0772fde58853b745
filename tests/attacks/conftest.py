"""Fixtures for the known-attack index tests (helpers live in attacks_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from attacks_helpers import TrigramEmbedder, write_seed

from bartizan.attacks.signing import generate_keypair


@pytest.fixture(scope="session")
def embedder() -> TrigramEmbedder:
    return TrigramEmbedder()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub, _ = generate_keypair(tmp_path / "keys")
    return priv, pub


@pytest.fixture
def seed_dir(tmp_path: Path, keys: tuple[Path, Path], embedder: TrigramEmbedder) -> Path:
    d = tmp_path / "seed"
    d.mkdir()
    write_seed(d, keys[0], embedder)
    return d
