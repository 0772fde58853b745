"""The `jailbreak` detector: attempts to get around the model's safety behaviour.

Personas and DAN-style templates, role-play set-ups, refusal suppression, hypothetical framing. Scoring
machinery, views, chunks and score scale: `bartizan.detectors.learned`.
"""

from __future__ import annotations

from bartizan import taxonomy as tx
from bartizan.detectors.learned import LearnedConfig, LearnedDetector
from bartizan.detectors.registry import detector

NAME = "jailbreak"
CATEGORIES = ("jailbreak",)


class JailbreakConfig(LearnedConfig):
    pass


@detector(
    NAME,
    config=JailbreakConfig,
    categories=CATEGORIES,
    kind="model",
    description="Learned jailbreak detector (personas, templates, role-play, refusal suppression)",
)
class Jailbreak(LearnedDetector):
    """Calibrated linear head over static sentence embeddings: attempts to bypass safety behaviour."""

    NAME = NAME
    CATEGORY = CATEGORIES[0]
    ATLAS = (tx.JAILBREAK,)
    OWASP = (tx.LLM01,)
