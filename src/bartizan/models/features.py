"""The one feature recipe shared by training and the run-time detectors (numpy only, no I/O).

    features(embedder, text) = concat(
        embed(text),                 # what the whole text is about
        embed(ask(text)),            # the request-bearing sentences: the purpose without the decoration
        hashed word uni/bi-grams,    # surface cues the static embedding averages away ("ignore", "DAN")
    )

Why: detection-notes show a static embedding of the whole text loses the request inside verse and fiction
("surface form is the whole problem"); embedding the ask sentences separately gives the head the purpose.
`embedder` is anything with ``encode(list[str]) -> ndarray (n, dim)`` and ``dim`` (normally
`bartizan.models.embedder.StaticEmbedder`). The layout is versioned by `FEATURE_VERSION`; heads record it
and refuse a mismatch.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

FEATURE_VERSION = "ask3-hash1024-v4"
HASH_DIM = 1024
N_SCALARS = 0  # structure scalars (length, "?", upper case...) were measured to be source shortcuts
MAX_CHARS = 4000  # longer texts are chunked by the caller (issue 3, item 4)


class Scorer(Protocol):
    """What `score_text` needs from a head (normally `bartizan.models.heads.LinearHead`)."""

    metadata: dict[str, Any]

    def score(self, X: np.ndarray) -> np.ndarray: ...


class Encoder(Protocol):
    """What `features` needs from an embedder."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


_SENT = re.compile(r"(?<=[.!?:;])\s+|\n+")
_WORD = re.compile(r"[a-z0-9']+")
_ASK_CUES = re.compile(
    r"\b(how|what|which|why|tell|explain|describe|write|give|provide|list|show|teach|outline|create|make|"
    r"generate|help|answer|detail|instructions?|steps?|ignore|disregard|forget|reveal|output|repeat|print|"
    r"pretend|act|respond|reply|say|send|forward|call|delete)\b",
    re.IGNORECASE,
)


def feature_dim(embed_dim: int) -> int:
    """Length of the vector `features` returns for an embedder of `embed_dim`."""
    return 2 * embed_dim + HASH_DIM + N_SCALARS


def ask_text(text: str) -> str:
    """The request-bearing sentences: the first and the last two sentences that contain a question mark or
    a request cue, falling back to the last sentence. Stylised attacks still carry an explicit ask."""
    sents = [s.strip() for s in _SENT.split(text[:MAX_CHARS]) if s and s.strip()]
    if not sents:
        return ""
    asks = [s for s in sents if "?" in s or _ASK_CUES.search(s)]
    if not asks:
        return sents[-1]
    # the first request sentence (verse often opens with the ask) and the last two (prose closes with it)
    chosen = asks[:1] + [s for s in asks[-2:] if s is not asks[0]]
    return " ".join(chosen)


def _hashed_ngrams(text: str) -> np.ndarray:
    """Signed hashed word unigrams + bigrams, L2-normalised. Word hashes are crc32 (stable across runs and
    platforms, unlike `hash`); a bigram's hash is mixed from its two word hashes."""
    words = _WORD.findall(text[:MAX_CHARS].lower())
    if not words:
        return np.zeros(HASH_DIM, dtype=np.float32)
    h = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.uint64, count=len(words))
    bi = (h[:-1] * np.uint64(0x9E3779B1) + h[1:]) & np.uint64(0xFFFFFFFF)
    allh = np.concatenate([h, bi])
    sign = np.where((allh >> np.uint64(31)) & np.uint64(1), 1.0, -1.0)
    v = np.bincount((allh % np.uint64(HASH_DIM)).astype(np.int64), weights=sign, minlength=HASH_DIM)
    n = float(np.sqrt(v @ v))
    return (v / n if n > 0 else v).astype(np.float32)


def features_batch(embedder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """`features` for many texts at once (one encode call); float32 array (n, feature_dim)."""
    clipped = [t[:MAX_CHARS] for t in texts]
    asks = [ask_text(t) for t in clipped]
    emb = np.asarray(embedder.encode(clipped + asks), dtype=np.float32)
    n = len(clipped)
    out = np.empty((n, feature_dim(emb.shape[1])), dtype=np.float32)
    d = emb.shape[1]
    out[:, :d] = emb[:n]
    out[:, d : 2 * d] = emb[n:]
    for i, t in enumerate(clipped):
        out[i, 2 * d : 2 * d + HASH_DIM] = _hashed_ngrams(t)
    return out


def features(embedder: Encoder, text: str) -> np.ndarray:
    """The fixed feature vector of one text (see module docstring); float32, shape (feature_dim,)."""
    row: np.ndarray = features_batch(embedder, [text])[0]
    return row


def score_text(head: Scorer, embedder: Encoder, text: str) -> float:
    """The run-time score of one text (chunk) under `head`, following the head's recorded rule.

    ``metadata["combine"] == "max_ask"`` (harmful_intent): max of the head on the whole text and on its ask
    sentences alone, so decoration (verse, story) around a harmful ask cannot dilute it; the shipped
    threshold was calibrated for exactly this rule. Otherwise: the head on the whole text.
    """
    if head.metadata.get("combine") == "max_ask":
        ask = ask_view(text)
        if ask != text:
            return float(np.max(head.score(features_batch(embedder, [text, ask]))))
    return float(head.score(features_batch(embedder, [text]))[0])


def ask_view(text: str) -> str:
    """The second text scored under the max-ask rule: the ask sentences, or the text itself when they are
    all of it (no second encode needed)."""
    ask = ask_text(text)
    return ask if ask and ask != text.strip() else text
