"""Integrity manifests for bundled model folders: what each artifact is, where it came from, and its sha256.

Every folder under ``bartizan/models/bundled/`` carries a ``manifest.json``. Loaders call
`Manifest.load` then `Manifest.verify` *before* opening any artifact, and open only files that the manifest
lists (`Manifest.artifact_path`). A missing manifest, a missing artifact, or a size or sha256 mismatch raises
`IntegrityError` naming the file: a model that cannot be proven to be the one we shipped is never used
(fail closed).

What counts as an artifact (hashed by `write_manifest`): every regular file in the folder except
``manifest.json`` itself, dot-files, and documentation (``*.md``, for example ``MODEL_CARD.md``), so that the
card can be corrected without rebuilding the model. Files in the folder that the manifest does not list are
never read by a loader; `verify` ignores them by default and reports them with ``strict=True`` (the build and
the tests use strict mode, so a stray artifact is caught before it ships).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST_FILE = "manifest.json"
_CHUNK = 1 << 20


class IntegrityError(RuntimeError):
    """A model folder does not match its manifest. `file` names the offending file (relative to the folder)."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class ArtifactEntry(BaseModel):
    """Expected content of one artifact file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(BaseModel):
    """The provenance and integrity record of one model folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str = "1"
    base_model: str = ""
    licence: str = ""
    training_data: list[str] = Field(default_factory=list)
    artifacts: dict[str, ArtifactEntry] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_by: str = ""

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        """Read ``<directory>/manifest.json``; a missing or malformed manifest is an `IntegrityError`."""
        path = Path(directory) / MANIFEST_FILE
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise IntegrityError(f"no {MANIFEST_FILE} in {Path(directory).name!r}", MANIFEST_FILE) from None
        except OSError as exc:
            raise IntegrityError(f"cannot read {MANIFEST_FILE}: {exc.strerror}", MANIFEST_FILE) from None
        try:
            manifest = cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise IntegrityError(f"malformed {MANIFEST_FILE}: {exc}", MANIFEST_FILE) from None
        for name in manifest.artifacts:
            _check_name(name)
        return manifest

    def verify(self, directory: str | Path, *, files: Iterable[str] | None = None, strict: bool = False) -> None:
        """Check size and sha256 of every listed artifact (or only `files`, which must all be listed).

        With ``strict=True`` an artifact-like file present in the folder but not listed is also an error.
        """
        root = Path(directory)
        names = list(self.artifacts) if files is None else list(files)
        for name in names:
            entry = self.artifacts.get(name)
            if entry is None:
                raise IntegrityError(f"{name!r} is not listed in the manifest of {self.name!r}", name)
            path = root / name
            if not path.is_file():
                raise IntegrityError(f"artifact {name!r} of {self.name!r} is missing", name)
            size = path.stat().st_size
            if size != entry.bytes:
                raise IntegrityError(
                    f"artifact {name!r} of {self.name!r} has {size} bytes, manifest says {entry.bytes}", name
                )
            if sha256_file(path) != entry.sha256:
                raise IntegrityError(f"artifact {name!r} of {self.name!r} does not match its sha256", name)
        if strict:
            extra = sorted(set(artifact_files(root)) - set(self.artifacts))
            if extra:
                raise IntegrityError(f"files not listed in the manifest of {self.name!r}: {extra}", extra[0])

    def unlisted(self, directory: str | Path) -> list[str]:
        """Artifact-like files in `directory` that the manifest does not list (never read by loaders)."""
        return sorted(set(artifact_files(Path(directory))) - set(self.artifacts))

    def artifact_path(self, directory: str | Path, name: str) -> Path:
        """Path of a listed artifact; refuses names the manifest does not list."""
        if name not in self.artifacts:
            raise IntegrityError(f"{name!r} is not listed in the manifest of {self.name!r}", name)
        return Path(directory) / name


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_files(directory: Path) -> list[str]:
    """The names `write_manifest` would hash: regular files other than the manifest, dot-files and *.md."""
    out = []
    for path in sorted(directory.iterdir()):
        name = path.name
        if name == MANIFEST_FILE or name.startswith(".") or name.endswith(".md") or not path.is_file():
            continue
        out.append(name)
    return out


def write_manifest(directory: str | Path, **fields: Any) -> Manifest:
    """Hash every artifact in `directory` and write ``manifest.json`` (sorted keys, stable bytes).

    Fields not given are kept from an existing manifest in the folder, so a trainer that saves several heads
    one after another can refresh the hashes without restating provenance; `name` defaults to the folder's
    name. Passing ``artifacts`` is an error: they are always computed from the files.
    """
    root = Path(directory)
    if "artifacts" in fields:
        raise TypeError("artifacts are computed from the folder, not passed")
    previous: dict[str, Any] = {}
    if (root / MANIFEST_FILE).is_file():
        try:
            previous = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
        except ValueError:
            previous = {}
        previous.pop("artifacts", None)
    data: dict[str, Any] = {"name": root.name, **previous, **fields}
    data["artifacts"] = {
        name: {"sha256": sha256_file(root / name), "bytes": (root / name).stat().st_size}
        for name in artifact_files(root)
    }
    manifest = Manifest.model_validate(data)
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (root / MANIFEST_FILE).write_text(text, encoding="utf-8")
    return manifest


def _check_name(name: str) -> None:
    """Artifact names are plain file names inside the folder: no separators, no parent references."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name == MANIFEST_FILE:
        raise IntegrityError(f"invalid artifact name {name!r} in manifest", name)
