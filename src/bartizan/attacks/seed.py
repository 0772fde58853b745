"""The packaged seed index and its signed calibration, and the loader that joins them with operator indexes.

Packaged files (next to this module):
- ``seed.jsonl``: signed entries built from the index side of ../shared/datasets attack sets
  (see `bartizan.attacks.seedbuild`: only the training split of `bartizan.train.data`).
- ``seed.pub``: the project's public key (the private half is not in the repository).
- ``seed.calibration.json``: one record signed by the same key, carrying the sha256 and entry count of
  ``seed.jsonl`` (so a truncated or swapped seed is detected, not just a tampered entry), the embedder
  fingerprint, the cosine threshold and floor chosen on benign prompts, and the measured metrics.

Trust: the only trust anchors are `seed.pub` and the public keys the operator names in the policy. Keys found
inside an index directory are never trusted, since whoever can write entries could write a key there too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bartizan.attacks.index import ENTRIES_FILE, AttackIndex, Calibration, Embedder, LoadReport
from bartizan.attacks.signing import Keyring, load_public_key, parse_public_key

log = logging.getLogger(__name__)

SEED_FILE = "seed.jsonl"
SEED_PUB = "seed.pub"
SEED_CALIBRATION = "seed.calibration.json"


class SeedIntegrityError(RuntimeError):
    """The packaged seed or its calibration does not verify: the detector refuses to run (fail closed)."""


def package_dir() -> Path:
    return Path(str(resources.files("bartizan.attacks")))


def embedder_fingerprint(embedder: Any) -> str:
    """A stable name for the embedding model: `model_id` if the embedder has one, else from its manifest.

    Entries embedded by another model are rejected as stale, so this must change whenever the vectors would.
    """
    mid = getattr(embedder, "model_id", None)
    if isinstance(mid, str) and mid:
        return mid
    manifest = getattr(embedder, "manifest", None)
    artifacts = getattr(manifest, "artifacts", None)
    if manifest is not None and isinstance(artifacts, dict):
        hashes = {name: getattr(a, "sha256", str(a)) for name, a in artifacts.items()}
        digest = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]
        return f"{manifest.name}@{manifest.version}:{digest}"
    raise ValueError("embedder has neither a model_id nor a manifest; cannot tell which model made its vectors")


def packaged_keyring(extra: Sequence[str] = (), directory: Path | None = None) -> Keyring:
    """The seed key plus `extra` keys (paths to .pub / PEM files, or inline 'ed25519:<base64>')."""
    ring = Keyring([load_public_key((directory or package_dir()) / SEED_PUB)])
    for item in extra:
        ring.add(parse_public_key(item) if item.strip().startswith("ed25519:") else load_public_key(item))
    return ring


def read_calibration(keyring: Keyring, directory: Path | None = None) -> tuple[Calibration, dict[str, Any]]:
    """Verify and read the signed calibration record, and check the seed file against it."""
    root = directory or package_dir()
    try:
        record = json.loads((root / SEED_CALIBRATION).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedIntegrityError(f"cannot read {SEED_CALIBRATION}: {type(exc).__name__}") from None
    if not isinstance(record, dict):
        raise SeedIntegrityError(f"{SEED_CALIBRATION} is not a JSON object")
    why = keyring.verify(record)
    if why:
        raise SeedIntegrityError(f"{SEED_CALIBRATION}: {why}")
    seed = root / SEED_FILE
    try:
        digest = hashlib.sha256(seed.read_bytes()).hexdigest()
    except OSError as exc:
        raise SeedIntegrityError(f"cannot read {SEED_FILE}: {exc.strerror}") from None
    if digest != record.get("seed_sha256"):
        raise SeedIntegrityError(f"{SEED_FILE} does not match the sha256 in its signed calibration")
    try:
        cal = Calibration(
            threshold=float(record["threshold"]),
            floor=float(record["floor"]),
            target_fpr=float(record.get("target_fpr", 0.001)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SeedIntegrityError(f"{SEED_CALIBRATION}: {exc}") from None
    return cal, record


@dataclass(frozen=True)
class LoadedIndex:
    """Everything the detector needs, built once per process per configuration."""

    index: AttackIndex
    calibration: Calibration
    reports: tuple[LoadReport, ...]
    model: str


_cache: dict[tuple[Any, ...], LoadedIndex] = {}
_lock = threading.Lock()


def load_index(
    embedder: Embedder,
    *,
    use_seed: bool = True,
    index_dirs: Sequence[str] = (),
    public_keys: Sequence[str] = (),
    seed_dir: Path | None = None,
) -> LoadedIndex:
    """The packaged seed (verified as a whole) plus operator index directories (verified per entry).

    Rejected operator entries are logged (id, line and reason only) and skipped; `bartizan attacks verify`
    lists them. A seed that fails verification raises `SeedIntegrityError`.
    """
    key = (id(embedder), use_seed, tuple(index_dirs), tuple(public_keys), str(seed_dir))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        model = embedder_fingerprint(embedder)
        root = seed_dir or package_dir()
        keyring = packaged_keyring(public_keys, root)
        cal, record = read_calibration(keyring, root)
        if record.get("model") != model:
            raise SeedIntegrityError("the seed calibration was made for another embedding model; rebuild the seed")
        files: list[Path] = [root / SEED_FILE] if use_seed else []
        files += [Path(d) / ENTRIES_FILE for d in index_dirs]
        for f in files[1 if use_seed else 0 :]:
            if not f.is_file():
                raise FileNotFoundError(f"known-attack index {f} does not exist")
        index, reports = AttackIndex.load(files, keyring, model, int(embedder.dim))
        if use_seed and (reports[0].rejected or reports[0].accepted != record.get("entries")):
            raise SeedIntegrityError(f"{SEED_FILE}: {len(reports[0].rejected)} entries do not verify")
        for rep in reports:
            for r in rep.rejected[:20]:
                log.warning(
                    "known_attacks: rejected entry %s (%s line %d): %s", r.id, Path(r.file).name, r.line, r.reason
                )
            if len(rep.rejected) > 20:
                log.warning("known_attacks: %d more rejected entries in %s", len(rep.rejected) - 20, rep.file)
        loaded = LoadedIndex(index, cal, tuple(reports), model)
        _cache[key] = loaded
        return loaded
