"""The `harmful_intent` detector: the request asks for seriously harmful help, whatever its surface form.

The independent intent-recognition layer: it is meant to hold when the request is written as verse, fiction,
role-play, academic framing or allegory, or is obfuscated (the de-obfuscation views feed it). The feature
recipe embeds the request-bearing sentences of every segment separately ("find the ask"), so a stylised
request is not scored per sentence again in user turns (that would double the cost); tool and retrieved
content is, as for every learned detector. Scoring machinery, views, chunks and score scale:
`bartizan.detectors.learned`.
"""

from __future__ import annotations

from bartizan.detectors.learned import LearnedConfig, LearnedDetector
from bartizan.detectors.registry import detector

NAME = "harmful_intent"
CATEGORIES = ("harmful_request",)


class HarmfulIntentConfig(LearnedConfig):
    pass


@detector(
    NAME,
    config=HarmfulIntentConfig,
    categories=CATEGORIES,
    kind="model",
    description="Learned harmful-intent detector: requests for seriously harmful help, in any surface form",
)
class HarmfulIntent(LearnedDetector):
    """Calibrated linear head over static sentence embeddings: the purpose of the request, not its wording."""

    NAME = NAME
    CATEGORY = CATEGORIES[0]
