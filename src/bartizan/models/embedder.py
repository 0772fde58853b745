"""Static sentence embeddings with numpy and `tokenizers` only: the shared feature extractor of the learned detectors.

A static model is a table of one vector per WordPiece token (distilled from all-MiniLM-L6-v2 by
``bartizan.train.distill``). A text's embedding is the mean of its tokens' vectors, L2-normalised: no
attention, no torch, about a tenth of a millisecond for a prompt. The pooling reproduces model2vec's
`StaticModel.encode` exactly (same tokenizer call without special tokens, same character pre-cut and token
truncation, unknown tokens dropped, mean then L2 norm), so heads trained on model2vec output transfer as is;
tests/models/test_embedder.py checks this against model2vec when it is installed.

Nothing is loaded at import. `load_embedder` loads a model folder once per process (thread-safe), after
verifying every artifact against the folder's manifest (`IntegrityError` on any mismatch: fail closed). The
vector table is memory-mapped, so several processes share its pages.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bartizan.models.manifest import IntegrityError, Manifest

BUNDLED_STATIC = Path(__file__).resolve().parent / "bundled" / "static"
FORMAT = "bartizan-static/1"
_REQUIRED = ("config.json", "tokenizer.json", "embeddings.npy")

_cache: dict[str, StaticEmbedder] = {}
_cache_lock = threading.Lock()


class StaticEmbedder:
    """A loaded static embedding model. Thread-safe for concurrent `encode` calls once built."""

    def __init__(self, directory: str | Path) -> None:
        from tokenizers import Tokenizer  # lazy: keeps `import bartizan.models` cheap

        root = Path(directory)
        manifest = Manifest.load(root)
        for name in _REQUIRED:
            if name not in manifest.artifacts:
                raise IntegrityError(f"{name!r} is not listed in the manifest of {manifest.name!r}", name)
        manifest.verify(root)
        self.manifest = manifest
        self.directory = root

        config = _read_config(manifest.artifact_path(root, "config.json"))
        self.config = config
        self.dim: int = int(config["dim"])
        self.max_length: int = int(config["max_length"])
        self._median_token_length = int(config["median_token_length"])
        unk = config.get("unk_token_id")
        self._unk_id: int | None = None if unk is None else int(unk)

        vectors = np.load(manifest.artifact_path(root, "embeddings.npy"), mmap_mode="r", allow_pickle=False)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or vectors.shape[0] != int(config["vocab_size"]):
            raise IntegrityError(f"embeddings.npy has shape {vectors.shape}, config disagrees", "embeddings.npy")
        self._vectors = np.asarray(vectors)  # plain ndarray view of the mapping: no memmap indexing overhead

        tok_path = str(manifest.artifact_path(root, "tokenizer.json"))
        self._tokenizer = Tokenizer.from_file(tok_path)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)
        # encode_batch_fast (tokenizers >= 0.21) skips character offsets, which we do not need
        self._encode_batch = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        self._tok_path = tok_path
        self._counter: Tokenizer | None = None  # untruncated copy for `tokenize_count`, built on first use
        if self._tokenizer.get_vocab_size() > vectors.shape[0]:
            raise IntegrityError("tokenizer vocabulary is larger than the vector table", "tokenizer.json")
        # model2vec cuts the characters before tokenising (max_length x median token length), then truncates.
        self._char_cut = self.max_length * self._median_token_length

    @property
    def name(self) -> str:
        return self.manifest.name

    def tokenize_count(self, text: str) -> int:
        """Number of tokens in `text` (no special tokens, no truncation): what a chunker budgets against."""
        counter = self._counter
        if counter is None:
            from tokenizers import Tokenizer

            counter = Tokenizer.from_file(self._tok_path)
            counter.no_padding()
            counter.no_truncation()
            self._counter = counter
        try:
            return len(counter.encode(text, add_special_tokens=False).ids)
        except TypeError:
            return len(counter.encode(text.encode("utf-8", "replace").decode("utf-8"), add_special_tokens=False).ids)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids each text is pooled from: truncated at `max_length`, unknown tokens removed."""
        texts = _as_list(texts)
        cut = self._char_cut
        clipped = [t[:cut] for t in texts]
        try:
            encodings = self._encode_batch(clipped, add_special_tokens=False)
        except TypeError:  # lone surrogates cannot cross into Rust: replace them, keep the rest
            clipped = [t.encode("utf-8", "replace").decode("utf-8") for t in clipped]
            encodings = self._encode_batch(clipped, add_special_tokens=False)
        unk = self._unk_id
        if unk is None:
            return [e.ids for e in encodings]
        return [[i for i in e.ids if i != unk] for e in encodings]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts`: float32 array of shape (len(texts), dim), rows L2-normalised; empty text -> zero row."""
        ids = self.token_ids(texts)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        table = self._vectors
        for row, id_list in enumerate(ids):
            if id_list:
                # gather in the stored dtype, accumulate in float32 (as model2vec's mean over float16 does)
                out[row] = table[np.asarray(id_list, dtype=np.intp)].mean(axis=0, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0
        out /= norms
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """Embed a single text: float32 vector of shape (dim,)."""
        row: np.ndarray = self.encode([text])[0]
        return row


def load_embedder(path: str | Path | None = None) -> StaticEmbedder:
    """The embedder in `path` (default: the bundled model), loaded and verified once per process per path."""
    root = Path(path).resolve() if path is not None else BUNDLED_STATIC
    key = str(root)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    with _cache_lock:
        hit = _cache.get(key)
        if hit is None:
            hit = StaticEmbedder(root)
            _cache[key] = hit
        return hit


def _as_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode takes a sequence of texts, not a single str (use encode_one)")
    out = list(texts)
    for t in out:
        if not isinstance(t, str):
            raise TypeError(f"texts must be str, got {type(t).__name__}")
    return out


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IntegrityError(f"config.json is not valid JSON: {exc}", "config.json") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise IntegrityError(f"config.json is not a {FORMAT} config", "config.json")
    for key in ("dim", "vocab_size", "max_length", "median_token_length"):
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise IntegrityError(f"config.json: {key} must be a positive integer", "config.json")
    return config
