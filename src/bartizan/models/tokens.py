"""Per-message token cache: each view text is tokenized once, and every span of it is embedded from that.

Why: one message used to be tokenized several times over. The feature recipe embeds each segment and then
its ask sentences (a substring: a second tokenization), the learned detectors embed chunks and sentences of
each view, and known_attacks embeds the whole view plus overlapping large and small windows (about 3.5x the
characters). Tokenizing is most of the cost of a static embedding, so here a view is tokenized once, with
character offsets, its token vectors are gathered once, and "embed span [a, b) of view V" is a sum over a
slice of those vectors.

Exactness. The tokenizer's normalizer (BERT: control characters removed, CJK isolated, accents stripped,
lower case) works character by character, and its pre-tokenizer splits words at whitespace and punctuation;
WordPiece then works on each word alone. So tokenizing ``text[a:b]`` gives the tokens of the words lying
wholly inside [a, b), plus the tokens of the cut pieces of the (at most two) words that straddle an edge.
Those edge pieces are tokenized on their own (short strings, one batch call per pooling), so a span embeds
as `StaticEmbedder.encode([text[a:b]])` does, including its truncation (the text is cut at `_char_cut`
characters, then at most `max_length` tokens are kept, unknown tokens among them; unknown tokens are then
dropped). Sums are float32 over float32 copies of the float16 rows, as the embedder's mean is, so results
agree to float rounding (tests/models/test_tokens.py checks this property on random texts and spans).

The cache lives in `message_cache(views)`, a per-message scratch dict that goes away with the message's
`TextViews`; the learned detectors keep their segment features there too.
"""

from __future__ import annotations

import itertools
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bartizan.text.views import TextViews, View

Ranges = Sequence[tuple[int, int]]
Part = tuple[int, int] | str  # a run of cached tokens [lo, hi), or an edge piece to tokenize on its own

_MESSAGE_CACHE: weakref.WeakKeyDictionary[TextViews, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def message_cache(views: TextViews) -> dict[tuple[Any, ...], Any]:
    """Per-message scratch space shared by the detectors of one message; it goes away with its views."""
    with _CACHE_LOCK:
        return _MESSAGE_CACHE.setdefault(views, {})


@dataclass(frozen=True, slots=True)
class ViewTokens:
    """The tokens of one text (untruncated), with what pooling a span of them needs.

    Tokens of one word are contiguous and words do not overlap, so `word_start` and `word_end` (the
    character extent of each token's word) are both non-decreasing: a span's whole words are found by
    binary search.
    """

    text: str  # the text tokenized (lone surrogates replaced by "?", one character each)
    word_start: np.ndarray  # int64 (n,): first character of the token's word
    word_end: np.ndarray  # int64 (n,): one past the last character of the token's word
    vectors: np.ndarray  # float32 (n, dim): the token's vector, zero for the unknown token
    known: np.ndarray  # int64 (n + 1,): prefix count of tokens that are not the unknown token

    def __len__(self) -> int:
        return int(self.word_start.shape[0])


def tokenize_view(embedder: Any, text: str) -> ViewTokens:
    """Tokenize `text` once, with word extents, and gather its token vectors (float32)."""
    if _is_plain(embedder, text):
        safe, ids, word_start, word_end = _split_plain(embedder, text)
    else:
        safe, ids, word_start, word_end = _split_tokenizer(embedder, text)
    if ids.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return ViewTokens(safe, empty, empty, np.zeros((0, embedder.dim), np.float32), np.zeros(1, np.int64))
    vectors = embedder.table32[ids]
    unknown = ids == embedder.unk_id if embedder.unk_id is not None else np.zeros(ids.shape[0], dtype=bool)
    if unknown.any():
        vectors[unknown] = 0.0
    known = np.zeros(ids.shape[0] + 1, dtype=np.int64)
    np.cumsum(~unknown, out=known[1:])
    return ViewTokens(safe, word_start, word_end, vectors, known)


# Text the BERT normalizer leaves alone except for lower case and \t\n\r -> space: printable ASCII plus a
# few common Unicode punctuation marks (category P, unchanged by NFD). Its pre-tokenizer then splits it into
# runs of ASCII letters and digits and single punctuation characters, which `_PLAIN_PIECE` finds directly.
_PLAIN_TEXT = re.compile("[\t\n\r\x20-\x7e\u2013\u2014\u2018\u2019\u201c\u201d\u2026]*")
_PLAIN_PIECE = re.compile(r"\s+|[A-Za-z0-9]+|[^\sA-Za-z0-9]")  # words, single punctuation, blank runs


def _is_plain(embedder: Any, text: str) -> bool:
    """Whether `text` can be split by `_split_plain`: plain characters, a BERT-style tokenizer, and none of
    its added tokens (those are matched in the raw text before any normalisation)."""
    if not _PLAIN_TEXT.fullmatch(text):
        return False
    wordpiece = embedder.plain_wordpiece
    return wordpiece is not None and not any(token in text for token in wordpiece.added)


def _split_plain(embedder: Any, text: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(text, ids, word starts, word ends) of plain text: the text is cut into words, punctuation and
    blank runs by a regex (together they cover it, so their ends are a cumulative sum of their lengths), and
    their token ids are looked up in the embedder's memo (blank runs have none): well under half of the
    tokenizer's time on a typical prompt."""
    pieces = _PLAIN_PIECE.findall(text)
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    ends = np.cumsum(lengths)
    token_lists = embedder.memo_token_ids(pieces, plain=True)
    sizes = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    ids = np.fromiter(itertools.chain.from_iterable(token_lists), dtype=np.int64, count=int(sizes.sum()))
    return text, ids, np.repeat(ends - lengths, sizes), np.repeat(ends, sizes)


def _split_tokenizer(embedder: Any, text: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(text tokenized, ids, word starts, word ends) from the tokenizer's offsets and word ids."""
    safe, encoding = embedder.encode_with_offsets(text)
    ids = np.asarray(encoding.ids, dtype=np.int64)
    n = ids.shape[0]
    if n == 0:
        return safe, ids, ids, ids
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(n, 2)
    words = np.asarray([-1 if w is None else w for w in encoding.word_ids], dtype=np.int64)
    first = np.flatnonzero(np.concatenate(([True], words[1:] != words[:-1])))  # first token of each word
    sizes = np.diff(np.append(first, n))
    return safe, ids, np.repeat(offsets[first, 0], sizes), np.repeat(offsets[first + sizes - 1, 1], sizes)


def view_tokens(views: TextViews, view: View, embedder: Any) -> ViewTokens:
    """The tokens of `view` for `embedder`, computed once per message and cached on its views."""
    cache = message_cache(views)
    key = ("tokens", id(embedder), view.name)
    hit = cache.get(key)
    if hit is not None and (hit[0] is view.text or hit[0] == view.text):
        cached: ViewTokens = hit[1]
        return cached
    tokens = tokenize_view(embedder, view.text)
    cache[key] = (view.text, tokens)
    return tokens


def span_embeddings(views: TextViews, view: View, embedder: Any, spans: Ranges) -> np.ndarray:
    """`embed_spans` of single ranges of `view`, cached per message: the learned detectors' segments and
    known_attacks' windows are often the same ranges (a message shorter than a chunk is one of each)."""
    cache = message_cache(views)
    keys = [("span", id(embedder), view.name, a, b) for a, b in spans]
    missing = [i for i, key in enumerate(keys) if key not in cache]
    if missing:
        rows = embed_spans(embedder, view_tokens(views, view, embedder), [[spans[i]] for i in missing])
        for i, row in zip(missing, rows, strict=True):
            cache[keys[i]] = row
    if not keys:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.stack([cache[key] for key in keys])


def embed_spans(embedder: Any, tokens: ViewTokens, items: Sequence[Ranges]) -> np.ndarray:
    """Embeddings (float32 (len(items), dim), rows L2-normalised) of `items` of the tokenized text.

    An item is one or more ranges [a, b); its embedding is that of the ranges' texts joined by single
    spaces, i.e. ``embedder.encode([" ".join(text[a:b] for a, b in item)])`` (the join is how the feature
    recipe embeds its ask sentences). An empty item gives a zero row, as an empty text does.
    """
    plans = [_plan_item(tokens, item, embedder.char_cut) for item in items]
    pieces = sorted({p for plan in plans for p in plan if isinstance(p, str)})
    piece_ids = dict(zip(pieces, embedder.memo_token_ids(pieces), strict=True)) if pieces else {}
    out = np.zeros((len(items), embedder.dim), dtype=np.float32)
    for row, plan in enumerate(plans):
        total, count = _pool(embedder, tokens, plan, piece_ids)
        if count:
            out[row] = total / np.float32(count)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    out /= norms
    return out


def _plan_item(tokens: ViewTokens, ranges: Ranges, char_cut: int) -> list[Part]:
    """The parts of one item in token order, its joined text cut at `char_cut` characters."""
    parts: list[Part] = []
    pos = 0  # where the next range starts in the joined text
    for a, b in ranges:
        room = char_cut - pos
        if room <= 0:
            break
        parts.extend(span_parts(tokens, a, min(b, a + room)))
        pos += (b - a) + 1
    return parts


def span_parts(tokens: ViewTokens, a: int, b: int) -> list[Part]:
    """How ``text[a:b]`` tokenizes: edge pieces (cut words, as text) around a run of whole-word tokens."""
    if a >= b or not len(tokens):
        return []
    ws, we = tokens.word_start, tokens.word_end
    lo = int(np.searchsorted(ws, a, side="left"))  # first token whose word starts at or after a
    hi = int(np.searchsorted(we, b, side="right"))  # tokens before hi have words ending by b
    left = lo > 0 and int(we[lo - 1]) > a  # a word straddles a
    if left and int(we[lo - 1]) >= b:  # the whole span lies inside one word
        return [tokens.text[a:b]]
    parts: list[Part] = []
    if left:
        parts.append(tokens.text[a : int(we[lo - 1])])
    if hi > lo:
        parts.append((lo, hi))
    if hi < len(tokens) and int(ws[hi]) < b:  # a word straddles b
        parts.append(tokens.text[int(ws[hi]) : b])
    return parts


def _pool(embedder: Any, tokens: ViewTokens, plan: list[Part], piece_ids: dict[str, list[int]]) -> tuple[Any, int]:
    """(sum of vectors, number of known tokens) over the first `max_length` tokens of a plan."""
    budget = embedder.max_length  # truncation counts unknown tokens too, as the tokenizer's does
    total = np.zeros(embedder.dim, dtype=np.float32)
    count = 0
    for part in plan:
        if budget <= 0:
            break
        if isinstance(part, str):
            ids = piece_ids[part][:budget]
            budget -= len(ids)
            kept = [i for i in ids if i != embedder.unk_id]
            if kept:
                total += embedder.table32[np.asarray(kept, dtype=np.intp)].sum(axis=0)
                count += len(kept)
            continue
        lo, hi = part
        hi = min(hi, lo + budget)
        budget -= hi - lo
        total += tokens.vectors[lo:hi].sum(axis=0)
        count += int(tokens.known[hi] - tokens.known[lo])
    return total, count
