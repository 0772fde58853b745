"""Static sentence embeddings with numpy and `tokenizers` only: the shared feature extractor of the learned detectors.

A static model is a table of one vector per WordPiece token (distilled from all-MiniLM-L6-v2 by
``bartizan.train.distill``). A text's embedding is the mean of its tokens' vectors, L2-normalised: no
attention, no torch, about a tenth of a millisecond for a prompt. The pooling reproduces model2vec's
`StaticModel.encode` exactly (same tokenizer call without special tokens, same character pre-cut and token
truncation, unknown tokens dropped, mean then L2 norm), so heads trained on model2vec output transfer as is;
tests/models/test_embedder.py checks this against model2vec when it is installed.

Nothing is loaded at import. `load_embedder` loads a model folder once per process (thread-safe), after
verifying every artifact against the folder's manifest (`IntegrityError` on any mismatch: fail closed). The
vector table is memory-mapped, so several processes share its pages; a float32 copy (`table32`, about 30 MB
per process) is made on first use, because gathering float32 rows measured faster than converting float16
rows on every call.

For the per-message token cache (`bartizan.models.tokens`) the embedder also tokenizes with character
offsets (`encode_with_offsets`), and memoises the token ids of words (`memo_token_ids`), with a Python
WordPiece (`PlainWordPiece`) for the new words of plain text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bartizan.models.manifest import IntegrityError, Manifest

BUNDLED_STATIC = Path(__file__).resolve().parent / "bundled" / "static"
FORMAT = "bartizan-static/1"
_REQUIRED = ("config.json", "tokenizer.json", "embeddings.npy")

_MEMO_MAX = 100_000  # words memoised per embedder (about 15-20 MB at most)
_MEMO_CHARS = 100  # the tokenizer's longest word (max_input_chars_per_word); longer ones are one [UNK] anyway
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
        self._table32: np.ndarray | None = None  # float32 copy of the table, built on first use
        self._memo: dict[str, list[int]] = {}  # token ids of short strings (words), bounded: see `memo_token_ids`
        self._wordpiece: PlainWordPiece | Literal[False] | None = None  # built on first use; False: not BERT-style
        if self._tokenizer.get_vocab_size() > vectors.shape[0]:
            raise IntegrityError("tokenizer vocabulary is larger than the vector table", "tokenizer.json")
        # model2vec cuts the characters before tokenising (max_length x median token length), then truncates.
        self._char_cut = self.max_length * self._median_token_length

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def char_cut(self) -> int:
        """Characters of a text that are tokenized at all (model2vec's pre-cut)."""
        return self._char_cut

    @property
    def unk_id(self) -> int | None:
        """The unknown token's id (dropped before pooling), or None."""
        return self._unk_id

    @property
    def table32(self) -> np.ndarray:
        """The vector table as float32 (about 30 MB), copied once: gathering float32 rows and summing them
        measured faster than gathering float16 rows and converting on every call. Same values (float16 ->
        float32 is exact)."""
        table = self._table32
        if table is None:
            table = np.ascontiguousarray(self._vectors, dtype=np.float32)
            self._table32 = table
        return table

    def _untruncated(self) -> Any:
        """A copy of the tokenizer without truncation (built on first use)."""
        counter = self._counter
        if counter is None:
            from tokenizers import Tokenizer

            counter = Tokenizer.from_file(self._tok_path)
            counter.no_padding()
            counter.no_truncation()
            self._counter = counter
        return counter

    def tokenize_count(self, text: str) -> int:
        """Number of tokens in `text` (no special tokens, no truncation): what a chunker budgets against."""
        return len(self.encode_with_offsets(text)[1].ids)

    def encode_with_offsets(self, text: str) -> tuple[str, Any]:
        """(text tokenized, its untruncated `tokenizers.Encoding` with character offsets and word ids).

        Lone surrogates cannot cross into Rust: they are replaced by "?" (one character each, so offsets
        still index the given text), as `token_ids` does."""
        counter = self._untruncated()
        try:
            return text, counter.encode(text, add_special_tokens=False)
        except TypeError:
            safe = text.encode("utf-8", "replace").decode("utf-8")
            return safe, counter.encode(safe, add_special_tokens=False)

    def token_id_lists(self, texts: Sequence[str]) -> list[list[int]]:
        """Untruncated token ids of each text, unknown tokens kept (words and edge pieces of the token cache).

        One pre-tokenized call, each text tokenized on its own, rather than `encode_batch`: the batch call
        hands the work to a thread pool, which on a busy machine cost five times the tokenizing itself."""
        texts = list(texts)
        if not texts:
            return []
        counter = self._untruncated()
        try:
            encoding = counter.encode(texts, is_pretokenized=True, add_special_tokens=False)
        except TypeError:
            safe = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
            encoding = counter.encode(safe, is_pretokenized=True, add_special_tokens=False)
        out: list[list[int]] = [[] for _ in texts]
        for token, word in zip(encoding.ids, encoding.word_ids, strict=True):
            out[word].append(token)
        return out

    def memo_token_ids(self, words: Sequence[str], *, plain: bool = False) -> list[list[int]]:
        """`token_id_lists` of short strings (words), memoised: most words of a prompt were seen before, and
        a dict look-up is far cheaper than a call into the tokenizer. The memo is a pure cache of a
        deterministic function, bounded (cleared past `_MEMO_MAX` entries; strings over `_MEMO_CHARS` are
        tokenized but not kept). `plain=True` promises that every string is one plain word, one punctuation
        character or blanks (see `plain_wordpiece`): misses are then tokenized in Python, which measured
        several times faster than a call into the tokenizer for the handful of new words of a message."""
        memo = self._memo
        found: list[list[int] | None] = list(map(memo.get, words))
        holes = _indices_of_none(found)  # a few per message: found by list.index, not a Python loop
        if not holes:
            return found  # type: ignore[return-value]
        missing = list({words[i] for i in holes})
        wordpiece = self.plain_wordpiece if plain else None
        fresh_ids = [wordpiece.ids(w) for w in missing] if wordpiece else self.token_id_lists(missing)
        fresh = dict(zip(missing, fresh_ids, strict=True))
        if len(memo) + len(fresh) > _MEMO_MAX:
            memo.clear()
        memo.update((w, ids) for w, ids in fresh.items() if len(w) <= _MEMO_CHARS)
        for i in holes:
            found[i] = fresh[words[i]]
        return found  # type: ignore[return-value]

    @property
    def plain_wordpiece(self) -> PlainWordPiece | None:
        """The tokenizer's WordPiece model in Python, for plain text, when the tokenizer is BERT-style (BERT
        normalizer with lower case, BERT pre-tokenizer, WordPiece); None otherwise."""
        if self._wordpiece is None:
            self._wordpiece = PlainWordPiece.from_tokenizer(self._tokenizer) or False
        return self._wordpiece or None

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
        table = self.table32
        for row, id_list in enumerate(ids):
            if id_list:
                # float32 rows (exact copies of the float16 ones), accumulated in float32 as model2vec's mean is
                out[row] = table[np.asarray(id_list, dtype=np.intp)].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0
        out /= norms
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """Embed a single text: float32 vector of shape (dim,)."""
        row: np.ndarray = self.encode([text])[0]
        return row


class PlainWordPiece:
    """WordPiece of one plain word (ASCII letters and digits), one punctuation character or blanks, in Python.

    For such strings a BERT tokenizer only lower-cases (\\t, \\n, \\r become blanks, which make no token),
    then runs WordPiece: greedy longest match from the left, "##" before pieces inside a word, the unknown
    token for a word it cannot cover or longer than `max_chars`. tests/models/test_tokens.py checks it
    against the tokenizer."""

    def __init__(self, vocab: dict[str, int], unk_id: int, prefix: str, max_chars: int, added: tuple[str, ...]):
        self.vocab = vocab
        self.unk_id = unk_id
        self.prefix = prefix
        self.max_chars = max_chars
        self.added = added  # added tokens (e.g. "[MASK]") are matched in raw text: texts with one are not plain

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> PlainWordPiece | None:
        spec = json.loads(tokenizer.to_str())
        norm, pre, model = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}, spec.get("model") or {}
        bert = norm.get("type") == "BertNormalizer" and norm.get("lowercase") and norm.get("clean_text", True)
        if not bert or pre.get("type") != "BertPreTokenizer" or model.get("type") != "WordPiece":
            return None
        vocab = tokenizer.get_vocab(with_added_tokens=False)
        unk = vocab.get(model.get("unk_token", "[UNK]"))
        if unk is None:
            return None
        added = tuple(t["content"] for t in spec.get("added_tokens") or ())
        prefix = model.get("continuing_subword_prefix", "##")
        return cls(vocab, unk, prefix, int(model.get("max_input_chars_per_word", 100)), added)

    def ids(self, word: str) -> list[int]:
        """Token ids of one plain word, one punctuation character or blanks (none)."""
        word = word.lower()
        if not word or word.isspace():
            return []
        if len(word) > self.max_chars:
            return [self.unk_id]
        vocab, out, start, n = self.vocab, [], 0, len(word)
        while start < n:
            end = n
            while end > start:
                token = vocab.get(word[start:end] if start == 0 else self.prefix + word[start:end])
                if token is not None:
                    out.append(token)
                    break
                end -= 1
            else:
                return [self.unk_id]
            start = end
        return out


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


def _indices_of_none(items: list[Any]) -> list[int]:
    out: list[int] = []
    i = -1
    while True:
        try:
            i = items.index(None, i + 1)
        except ValueError:
            return out
        out.append(i)


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
