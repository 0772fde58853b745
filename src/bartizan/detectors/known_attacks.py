"""Known-attack similarity: nearest neighbour of a message among signed embeddings of known attacks.

The Rebuff/Vigil idea with the holes closed: entries are Ed25519-signed (only entries that verify against the
packaged key or keys pinned in the policy are loaded, so the index cannot be poisoned by whoever can only
write data), the cosine threshold is chosen on benign prompts for a stated false-positive rate and shipped
inside the signed seed calibration, and evidence names the matched entry id and similarity, never its text.

What is embedded: the normalized view (homoglyphs, invisible characters folded) and every decoded payload
view (base64, hex, URL, HTML), each as a whole (up to `max_whole_chars`) and in overlapping windows of
`window_chars`, and texts longer than one window also in finer windows of `small_window_chars` (a short
injection inside a long e-mail is diluted in a large window), so a known attack pasted into a long document
is still found and the finding names the window's span. Total work is linear in the text length (each
character falls in about 3.5 windows: whole, one large and two small), and each view is tokenized only once
per message: windows are pooled from the message's token cache (`bartizan.models.tokens`, shared with the
learned detectors), which gives the same vectors as embedding each window's text. The best window over all
views gives the score:
`Calibration.score` maps cosine `floor` -> 0, `threshold` -> 0.5, 1 -> 1 (policy threshold 0.5 = the
calibrated operating point).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bartizan import taxonomy as tx
from bartizan.attacks.index import Calibration, chunk_spans
from bartizan.attacks.seed import LoadedIndex, load_index
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.detectors.registry import detector
from bartizan.text.views import TextViews, View
from bartizan.types import Finding, Role

NAME = "known_attacks"
CATEGORY = "known_attack"
_INDIRECT_ROLES = frozenset({Role.TOOL, Role.RETRIEVED})


class KnownAttacksConfig(DetectorConfig):
    use_seed: bool = Field(default=True, description="load the packaged, project-signed seed index")
    index_dirs: tuple[str, ...] = Field(default=(), description="operator index folders (each with entries.jsonl)")
    public_keys: tuple[str, ...] = Field(
        default=(), description="extra trusted Ed25519 public keys: .pub/PEM file paths or 'ed25519:<base64>'"
    )
    threshold: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="cosine that scores 0.5; default: the seed's calibrated value"
    )
    window_chars: int = Field(default=1000, ge=100, description="window length for long texts")
    overlap_chars: int = Field(default=200, ge=0, description="overlap between consecutive windows")
    small_window_chars: int = Field(
        default=200, ge=0, description="second, finer window (half overlap) for short attacks inside long text; 0: off"
    )
    max_whole_chars: int = Field(default=8000, ge=0, description="texts up to this length are also embedded whole")
    max_windows: int = Field(default=512, ge=1, description="cap on windows embedded per message")
    min_chars: int = Field(default=8, ge=1, description="views shorter than this (stripped) are not embedded")
    min_score: float = Field(default=0.25, ge=0.0, le=1.0, description="scores below this produce no finding")
    embedder_path: str | None = Field(default=None, description="static embedding model folder; default bundled")


def candidate_windows(views: TextViews, config: KnownAttacksConfig) -> list[tuple[View, int, int]]:
    """(view, start, end) for every window to embed: normalized + decoded views, whole and windowed.

    Coverage first: the whole text and the large windows of every view, then the small windows, until
    `max_windows`. Past that many windows (texts of several hundred thousand characters) the tail of a view
    is not embedded; the size detector's default limit (200,000 characters) stays within it.
    """
    large: list[tuple[View, int, int]] = []
    small: list[tuple[View, int, int]] = []
    for view in (views.normalized, *views.decoded()):
        n = len(view.text)
        if len(view.text.strip()) < config.min_chars:
            continue
        spans = chunk_spans(n, config.window_chars, min(config.overlap_chars, config.window_chars - 1))
        if len(spans) > 1 and n <= config.max_whole_chars:
            spans.insert(0, (0, n))
        large += [(view, a, b) for a, b in spans]
        size = config.small_window_chars
        if size and n > config.window_chars:  # a short text is embedded whole only: its own window
            small += [(view, a, b) for a, b in chunk_spans(n, size, size // 2)]
    return (large + small)[: config.max_windows]


def best_match(
    views: TextViews, loaded: LoadedIndex, embedder: Any, config: KnownAttacksConfig, ctx: ScanContext | None = None
) -> tuple[float, int, tuple[View, int, int]] | None:
    """Highest cosine over all windows: (cosine, entry row, window), or None when nothing was embedded."""
    windows = candidate_windows(views, config)
    if not windows or not len(loaded.index):
        return None
    if ctx is not None:
        ctx.check_deadline()
    vectors = embed_windows(views, windows, embedder)
    rows, sims = loaded.index.nearest(vectors)
    best = int(np.argmax(sims))
    return float(sims[best]), int(rows[best]), windows[best]


def embed_windows(views: TextViews, windows: list[tuple[View, int, int]], embedder: Any) -> np.ndarray:
    """Embeddings of `windows`, in order. With the static embedder they are pooled from the message's token
    cache (`bartizan.models.tokens`: each view tokenized once, shared with the learned detectors; the same
    vectors as embedding each window's text, to float rounding); any other embedder encodes the texts."""
    if not hasattr(embedder, "encode_with_offsets"):
        return np.asarray(embedder.encode([v.text[a:b] for v, a, b in windows]), dtype=np.float32)
    from bartizan.models.tokens import span_embeddings

    out = np.empty((len(windows), embedder.dim), dtype=np.float32)
    groups: dict[int, tuple[View, list[int]]] = {}
    for i, (view, _, _) in enumerate(windows):
        groups.setdefault(id(view), (view, []))[1].append(i)
    for view, idx in groups.values():
        out[idx] = span_embeddings(views, view, embedder, [windows[i][1:] for i in idx])
    return out


def _atlas(category: str, indirect: bool, derived: bool) -> tuple[str, ...]:
    if category == "jailbreak":
        refs = [tx.JAILBREAK]
    elif category == "prompt_extraction":
        refs = [tx.SYSTEM_PROMPT_EXTRACTION]
    else:
        refs = [tx.INDIRECT_INJECTION if indirect else tx.DIRECT_INJECTION]
    if derived:
        refs.append(tx.PROMPT_OBFUSCATION)
    return tuple(refs)


@detector(
    NAME,
    config=KnownAttacksConfig,
    categories=(CATEGORY,),
    kind="model",
    description="Similarity to signed embeddings of known injection and jailbreak prompts",
)
class KnownAttacks:
    """Nearest-neighbour match against the signed known-attack index (seed + operator entries)."""

    def __init__(self, config: KnownAttacksConfig, *, embedder: Any = None, seed_dir: Path | None = None) -> None:
        # `embedder` and `seed_dir` exist for dependency injection (tests, alternative models); the registry
        # builds the detector with the config only, which means the bundled embedder and packaged seed.
        self.config = config
        self._embedder = embedder
        self._seed_dir = seed_dir
        self._loaded: LoadedIndex | None = None
        self._calibration: Calibration | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, LoadedIndex, Calibration]:
        if self._loaded is None or self._calibration is None:
            with self._lock:
                if self._embedder is None:
                    from bartizan.models.embedder import load_embedder  # lazy: no model at import

                    self._embedder = load_embedder(self.config.embedder_path)
                loaded = load_index(
                    self._embedder,
                    use_seed=self.config.use_seed,
                    index_dirs=self.config.index_dirs,
                    public_keys=self.config.public_keys,
                    seed_dir=self._seed_dir,
                )
                cal = loaded.calibration
                if self.config.threshold is not None:
                    t = self.config.threshold
                    cal = Calibration(threshold=t, floor=min(cal.floor, t - 0.05), target_fpr=cal.target_fpr)
                self._calibration = cal
                self._loaded = loaded
        assert self._loaded is not None and self._calibration is not None
        return self._embedder, self._loaded, self._calibration

    def scan(self, ctx: ScanContext) -> Iterable[Finding]:
        embedder, loaded, cal = self._load()
        match = best_match(ctx.views, loaded, embedder, self.config, ctx)
        if match is None:
            return []
        cosine, row, (view, a, b) = match
        score = cal.score(cosine)
        if score < self.config.min_score:
            return []
        meta = loaded.index.meta[row]
        indirect = ctx.message.role in _INDIRECT_ROLES
        return [
            Finding(
                detector=NAME,
                category=CATEGORY,
                score=score,
                spans=(view.span(a, b),),
                evidence=(
                    f"similar to known {meta.category} {meta.id} (cosine {cosine:.3f}, threshold {cal.threshold:.3f})"
                ),
                rule_id=f"{NAME}.{meta.id}",
                view=view.name,
                atlas=_atlas(meta.category, indirect, view.derived),
                owasp=(tx.LLM01,),
            )
        ]
