"""Size limits: texts too long (characters or UTF-8 bytes) or with too many lines to scan or to send on."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from bartizan import taxonomy as tx
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.detectors.registry import detector
from bartizan.types import Finding, Span


class SizeConfig(DetectorConfig):
    max_chars: int = Field(default=200_000, ge=1)
    max_bytes: int = Field(default=800_000, ge=1)
    max_lines: int = Field(default=20_000, ge=1)


@detector("size", config=SizeConfig, categories=("too_long",))
def size(ctx: ScanContext, config: SizeConfig) -> Iterable[Finding]:
    """Flags text over the configured character, byte or line limits (unbounded consumption)."""
    text = ctx.text
    n = len(text)
    problems = []
    if n > config.max_chars:
        problems.append(f"{n} characters > {config.max_chars}")
    # UTF-8 length without encoding the whole text: at most 4 bytes a character.
    if n * 4 > config.max_bytes:
        nbytes = len(text.encode("utf-8", errors="surrogatepass"))
        if nbytes > config.max_bytes:
            problems.append(f"{nbytes} bytes > {config.max_bytes}")
    if n > config.max_lines:
        lines = text.count("\n") + 1
        if lines > config.max_lines:
            problems.append(f"{lines} lines > {config.max_lines}")
    if problems:
        yield Finding(
            detector="size",
            category="too_long",
            score=1.0,
            spans=(Span(min(n, config.max_chars), n),),
            evidence="; ".join(problems),
            rule_id="size.limit",
            atlas=(tx.DENIAL_OF_SERVICE,),
            owasp=(tx.LLM10,),
        )
