"""The known-attack index: signed entries (hash + embedding + metadata) and exact nearest-neighbour search.

An entry is one JSON line::

    {"id": "ka_<16 hex>", "text_sha256": "<64 hex>", "category": "jailbreak", "source": "jailbreak_llms",
     "added_at": "2026-11-26T06:00:00Z", "model": "<embedder fingerprint>", "dim": 256,
     "embedding": "<base64 of little-endian float16, L2-normalised>", "key_id": "...", "sig": "..."}

(`text` is optional and absent from the packaged seed: a hash is enough to deduplicate and to audit, and
shipping the attack corpus would add size and licence obligations for nothing the detector needs.) The
signature covers every field, the embedding included, so an entry cannot be re-pointed at benign traffic.

Search is exact brute force: one (n, dim) float32 matrix product per batch of query vectors. At the packaged
size (a few thousand entries, 256 dimensions) that is well under 0.1 ms; exact search stays cheap up to
roughly 10^5 entries (about 100 MB at float32 x 256 dims is where an ANN index such as HNSW starts to pay).

Entries are only comparable to queries embedded by the same model: an entry whose `model` differs from the
running embedder's fingerprint is rejected as stale (re-add it, or rebuild the seed, after a model change).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bartizan.attacks.signing import Keyring

CATEGORIES = ("injection", "jailbreak", "prompt_extraction", "harmful", "other")
ENTRIES_FILE = "entries.jsonl"
_ID = re.compile(r"^ka_[0-9a-f]{16}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("id", "text_sha256", "category", "source", "added_at", "model", "dim", "embedding")


class Embedder(Protocol):
    """What the index needs from an embedder (bartizan.models.embedder.StaticEmbedder fits)."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_id(sha: str) -> str:
    return "ka_" + sha[:16]


def encode_vector(vec: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vec, dtype="<f2").tobytes()).decode("ascii")


def decode_vector(text: str, dim: int) -> np.ndarray:
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 2 * dim:
        raise ValueError(f"embedding has {len(raw) // 2} values, dim says {dim}")
    vec = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if not np.all(np.isfinite(vec)):
        raise ValueError("embedding has non-finite values")
    norm = float(np.linalg.norm(vec))
    if norm < 0.5:  # rows are L2-normalised before float16 rounding; a zero row would match nothing
        raise ValueError("embedding is not normalised")
    return vec / norm


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def make_record(
    text: str,
    category: str,
    source: str,
    embedding: np.ndarray,
    model: str,
    *,
    added_at: str | None = None,
    store_text: bool = False,
) -> dict[str, Any]:
    """An unsigned entry for `text` (sign it with `signing.sign_record` before writing)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    vec = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("cannot index an empty text (its embedding is zero)")
    sha = text_sha256(text)
    record: dict[str, Any] = {
        "id": entry_id(sha),
        "text_sha256": sha,
        "category": category,
        "source": source,
        "added_at": added_at or utc_now(),
        "model": model,
        "dim": int(vec.shape[0]),
        "embedding": encode_vector(vec / norm),
    }
    if store_text:
        record["text"] = text
    return record


@dataclass(frozen=True, slots=True)
class Rejected:
    """An entry that was not loaded, and why. Never carries the entry's text."""

    file: str
    line: int
    id: str | None
    reason: str


@dataclass(slots=True)
class LoadReport:
    """What loading one entries file did: how many entries were trusted, which were rejected."""

    file: str
    accepted: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(line number, parsed object or None, parse error) for each non-empty line of a JSONL file."""
    with path.open("r", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                yield n, None, "not JSON"
                continue
            if not isinstance(obj, dict):
                yield n, None, "not a JSON object"
                continue
            yield n, obj, ""


def check_record(record: Mapping[str, Any], keyring: Keyring, model: str | None, dim: int | None) -> str | None:
    """Why `record` must not be trusted, or None. Signature first: nothing unsigned is interpreted further."""
    why = keyring.verify(record)
    if why:
        return why
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        return f"missing fields {missing}"
    if not isinstance(record["id"], str) or not _ID.match(record["id"]):
        return "malformed id"
    if not isinstance(record["text_sha256"], str) or not _SHA.match(record["text_sha256"]):
        return "malformed text_sha256"
    if record["id"] != entry_id(record["text_sha256"]):
        return "id does not match text_sha256"
    if record["category"] not in CATEGORIES:
        return f"unknown category {record['category']!r}"
    if "text" in record and text_sha256(str(record["text"])) != record["text_sha256"]:
        return "stored text does not match text_sha256"
    if model is not None and record["model"] != model:
        return "stale: embedded by another model"
    if dim is not None and record["dim"] != dim:
        return f"dim {record['dim']} != embedder dim {dim}"
    return None


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """The searchable part of a trusted entry."""

    id: str
    category: str
    source: str
    added_at: str
    origin: str  # which file it came from


class AttackIndex:
    """Trusted entries as one normalised float32 matrix, searched exactly by cosine similarity."""

    def __init__(self, meta: Sequence[EntryMeta], matrix: np.ndarray, model: str) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != len(meta):
            raise ValueError("matrix rows must match the entries")
        self.meta = tuple(meta)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.model = model

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def nearest(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each query row: index of the most similar entry and its cosine (-1.0 when the index is empty)."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if not len(self.meta) or not q.shape[0]:
            return np.zeros(q.shape[0], dtype=np.int64), np.full(q.shape[0], -1.0, dtype=np.float32)
        sims = _similarities(self.matrix, q)
        best = np.argmax(sims, axis=0)
        return best, sims[best, np.arange(q.shape[0])]

    @classmethod
    def load(
        cls, files: Iterable[str | Path], keyring: Keyring, model: str, dim: int
    ) -> tuple[AttackIndex, list[LoadReport]]:
        """Load every entry that verifies; report the others. A duplicate id keeps the first trusted copy."""
        metas: list[EntryMeta] = []
        rows: list[np.ndarray] = []
        seen: set[str] = set()
        reports: list[LoadReport] = []
        for f in files:
            path = Path(f)
            report = LoadReport(str(path))
            reports.append(report)
            for line, rec, err in read_lines(path):
                rid = rec.get("id") if rec is not None and isinstance(rec.get("id"), str) else None
                why = err or check_record(rec or {}, keyring, model, dim)
                vec = None
                if not why and rec is not None:
                    try:
                        vec = decode_vector(str(rec["embedding"]), dim)
                    except (ValueError, TypeError) as exc:
                        why = f"bad embedding: {exc}"
                if why or rec is None or vec is None:
                    report.rejected.append(Rejected(str(path), line, rid, why or "unreadable"))
                    continue
                report.accepted += 1
                if rec["id"] in seen:
                    continue
                seen.add(rec["id"])
                metas.append(EntryMeta(rec["id"], rec["category"], str(rec["source"]), str(rec["added_at"]), path.name))
                rows.append(vec)
        matrix = np.vstack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
        return cls(metas, matrix, model), reports


# OpenBLAS runs a product on all cores once m*n*k reaches 2**18 (its GEMM_MULTITHREAD_THRESHOLD x 65536); on a
# busy or shared machine the thread hand-off costs far more than this tiny product (measured: 13 ms instead of
# 0.3 ms for 10 queries x 1,380 entries under load). Blocks below that size always run on the calling thread.
_BLOCK_QUERIES = 3  # rows per block: (2**18 - 1) // (dim x 3), 341 at 256 dims


def _similarities(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(n, k) cosines of every entry with every query (rows already normalised), single-threaded blocks."""
    n, k = matrix.shape[0], q.shape[0]
    if k == 1 or n * matrix.shape[1] * k < (1 << 18):
        return np.asarray(matrix @ q.T, dtype=np.float32)
    rows = max(1, ((1 << 18) - 1) // (matrix.shape[1] * _BLOCK_QUERIES))
    out = np.empty((n, k), dtype=np.float32)
    for i in range(0, n, rows):
        for j in range(0, k, _BLOCK_QUERIES):
            np.matmul(matrix[i : i + rows], q[j : j + _BLOCK_QUERIES].T, out=out[i : i + rows, j : j + _BLOCK_QUERIES])
    return out


def append_record(path: str | Path, record: Mapping[str, Any]) -> None:
    """Append one signed entry as a JSON line (O_APPEND, so concurrent writers do not interleave a line)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(dict(record), sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def chunk_spans(n: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Character windows [a, b) covering a text of length n, consecutive windows sharing `overlap` chars.

    The number of windows is ceil((n - overlap) / (window - overlap)), and each is at most `window` long, so
    the total text embedded is linear in n.
    """
    if n <= window:
        return [(0, n)]
    stride = max(1, window - overlap)
    spans = []
    a = 0
    while True:
        b = min(n, a + window)
        spans.append((a, b))
        if b >= n:
            break
        a += stride
    return spans


@dataclass(frozen=True, slots=True)
class Calibration:
    """How a cosine becomes a score: `floor` maps to 0, `threshold` to 0.5, 1.0 to 1 (piecewise linear).

    `threshold` is the cosine that the benign calibration set exceeds at most `target_fpr` of the time; the
    score is a monotone rescaling for policy thresholds (0.5 = that operating point), not a probability.
    """

    threshold: float
    floor: float
    target_fpr: float = 0.001

    def __post_init__(self) -> None:
        if not (-1.0 <= self.floor < self.threshold < 1.0):
            raise ValueError("calibration needs -1 <= floor < threshold < 1")

    def score(self, cosine: float) -> float:
        c = float(cosine)
        if c >= self.threshold:
            return min(1.0, 0.5 + 0.5 * (c - self.threshold) / (1.0 - self.threshold))
        if c <= self.floor:
            return 0.0
        return 0.5 * (c - self.floor) / (self.threshold - self.floor)
