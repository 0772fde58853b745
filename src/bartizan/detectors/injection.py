"""The `injection` detector: text that tries to override or hijack the application's instructions.

Direct (a user turn) or indirect (inside tool output, retrieved documents, e-mails, web pages). For tool and
retrieved content every sentence is also scored on its own, against a sentence threshold of its own (the
config's or the head's), so that one instruction addressed to the assistant inside a long benign document
is not diluted by the rest of it. Scoring machinery, views, chunks
and score scale: `bartizan.detectors.learned`.
"""

from __future__ import annotations

from bartizan import taxonomy as tx
from bartizan.detectors.base import ScanContext
from bartizan.detectors.learned import INDIRECT_ROLES, LearnedConfig, LearnedDetector
from bartizan.detectors.registry import detector
from bartizan.text.views import View

NAME = "injection"
CATEGORIES = ("prompt_injection",)


class InjectionConfig(LearnedConfig):
    pass


@detector(
    NAME,
    config=InjectionConfig,
    categories=CATEGORIES,
    kind="model",
    description="Learned prompt-injection detector (direct and indirect), on every de-obfuscated view",
)
class Injection(LearnedDetector):
    """Calibrated linear head over static sentence embeddings: instruction override and hijack attempts."""

    NAME = NAME
    CATEGORY = CATEGORIES[0]
    OWASP = (tx.LLM01,)

    def framework_ids(self, ctx: ScanContext, view: View) -> tuple[tuple[str, ...], tuple[str, ...]]:
        atlas, owasp = super().framework_ids(ctx, view)
        kind = tx.INDIRECT_INJECTION if ctx.message.role in INDIRECT_ROLES else tx.DIRECT_INJECTION
        return (kind, *atlas), owasp
