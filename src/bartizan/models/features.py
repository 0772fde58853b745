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

Two entry points, one recipe: `features_batch(embedder, texts)` for training, and `span_features` for the
run-time detectors, which pools segments and their ask sentences (`ask_spans`) from a per-message token
cache instead of tokenizing each substring again; tests/models/test_tokens.py checks they agree.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from bartizan.models.tokens import ViewTokens, embed_spans

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
_CUE_WORDS = frozenset(
    "how what which why tell explain describe write give provide list show teach outline create make generate help "
    "answer detail instruction instructions step steps ignore disregard forget reveal output repeat print pretend "
    "act respond reply say send forward call delete".split()
)
_ASK_CUES = re.compile(r"\b(" + "|".join(sorted(_CUE_WORDS)) + r")\b", re.IGNORECASE)
_ASCII_WORD = re.compile(r"[A-Za-z0-9_]+")  # what \w+ matches in ASCII text


def feature_dim(embed_dim: int) -> int:
    """Length of the vector `features` returns for an embedder of `embed_dim`."""
    return 2 * embed_dim + HASH_DIM + N_SCALARS


def ask_text(text: str) -> str:
    """The request-bearing sentences: the first and the last two sentences that contain a question mark or
    a request cue, falling back to the last sentence. Stylised attacks still carry an explicit ask."""
    sents = _sentences(text)
    return " ".join(sents[i][2] for i in _ask_choice([s for _, _, s in sents]))


def ask_spans(text: str) -> list[tuple[int, int]]:
    """Where the sentences `ask_text` joins lie in `text`: (start, end) in the order joined, so that
    ``" ".join(text[a:b] for a, b in ask_spans(text)) == ask_text(text)``. Lets the detectors embed the
    ask from the message's token cache instead of tokenizing the joined string again."""
    sents = _sentences(text)
    return [(sents[i][0], sents[i][1]) for i in _ask_choice([s for _, _, s in sents])]


def _sentences(text: str) -> list[tuple[int, int, str]]:
    """(start, end, sentence) of the non-blank sentences of ``text[:MAX_CHARS]``, whitespace stripped."""
    clipped = text[:MAX_CHARS]
    out: list[tuple[int, int, str]] = []
    start = 0
    for m in [*_SENT.finditer(clipped), None]:
        end = len(clipped) if m is None else m.start()
        piece = clipped[start:end]
        stripped = piece.strip()
        if stripped:
            a = start + len(piece) - len(piece.lstrip())
            out.append((a, a + len(stripped), stripped))
        start = end if m is None else m.end()
    return out


def _ask_choice(sents: list[str]) -> list[int]:
    """Indices of the sentences `ask_text` picks, in the order it joins them."""
    if not sents:
        return []
    asks = [i for i, s in enumerate(sents) if "?" in s or _has_ask_cue(s)]
    if not asks:
        return [len(sents) - 1]
    # the first request sentence (verse often opens with the ask) and the last two (prose closes with it);
    # `is not` compares the strings as the recipe always did (equal one-character sentences are one object)
    first = sents[asks[0]]
    return asks[:1] + [i for i in asks[-2:] if sents[i] is not first]


def _has_ask_cue(sentence: str) -> bool:
    """Whether `sentence` contains a request cue word (`_ASK_CUES`). ASCII text is checked by word look-up,
    a third of the regex's time; elsewhere Unicode case folding and word boundaries are left to the regex."""
    if sentence.isascii():
        return not _CUE_WORDS.isdisjoint(_ASCII_WORD.findall(sentence.lower()))
    return _ASK_CUES.search(sentence) is not None


def _hashed_ngrams(text: str) -> np.ndarray:
    """Signed hashed word unigrams + bigrams, L2-normalised. Word hashes are crc32 (stable across runs and
    platforms, unlike `hash`); a bigram's hash is mixed from its two word hashes."""
    words = _WORD.findall(text[:MAX_CHARS].lower())
    if not words:
        return np.zeros(HASH_DIM, dtype=np.float32)
    h = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words))  # str.encode: utf-8
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


def span_features(
    embedder: Any, tokens: ViewTokens, spans: Sequence[tuple[int, int]], whole: np.ndarray | None = None
) -> np.ndarray:
    """`features_batch` of the substrings ``tokens.text[a:b]``, embedded from the token cache of the whole
    text (`bartizan.models.tokens`) instead of tokenizing each substring and its ask sentences again.

    Same recipe, same numbers to float rounding: the segment is clipped at MAX_CHARS, its ask sentences
    are located by `ask_spans` and pooled as their joined text would be. `whole`, when given, holds the
    embeddings of the clipped segments (``tokens.embed_spans`` of ``[(a, min(b, a + MAX_CHARS))]``),
    computed by the caller's cache. Used by the run-time detectors; training keeps `features_batch`.
    """
    clipped = [(a, min(b, a + MAX_CHARS)) for a, b in spans]
    asks = [[(a + x, a + y) for x, y in ask_spans(tokens.text[a:b])] for a, b in clipped]
    if whole is None:
        whole = embed_spans(embedder, tokens, [[span] for span in clipped])
    emb_ask = embed_spans(embedder, tokens, asks)
    d = whole.shape[1]
    out = np.empty((len(clipped), feature_dim(d)), dtype=np.float32)
    out[:, :d] = whole
    out[:, d : 2 * d] = emb_ask
    for i, (a, b) in enumerate(clipped):
        out[i, 2 * d : 2 * d + HASH_DIM] = _hashed_ngrams(tokens.text[a:b])
    return out


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
