"""The pipeline's own contract, with detectors registered in a private registry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import pytest

from bartizan.detectors.base import DetectorConfig, ScanContext, SkipDetector
from bartizan.detectors.registry import Registry
from bartizan.pipeline import Firewall
from bartizan.policy.loader import load_policy_text
from bartizan.types import Finding, Message, Role, Span, Status, Verdict


class WordConfig(DetectorConfig):
    word: str = "forbidden"
    score: float = 0.9


def make_registry() -> Registry:
    reg = Registry()

    @reg.register("word", config=WordConfig, categories=("word", "other"))
    def word(ctx: ScanContext, config: WordConfig) -> Iterable[Finding]:
        for view in ctx.views.all():
            i = view.text.lower().find(config.word)
            if i >= 0:
                yield Finding(
                    "word", "word", config.score, (view.span(i, i + len(config.word)),), "word", "w1", view.name
                )
                return

    @reg.register("broken")
    def broken(ctx: ScanContext, config: DetectorConfig) -> Iterable[Finding]:
        raise RuntimeError(f"secret content {ctx.text}")

    @reg.register("slow")
    def slow(ctx: ScanContext, config: DetectorConfig) -> Iterable[Finding]:
        time.sleep(0.05)
        return []

    @reg.register("cooperative")
    def cooperative(ctx: ScanContext, config: DetectorConfig) -> Iterable[Finding]:
        while True:
            ctx.check_deadline()

    @reg.register("skipper")
    def skipper(ctx: ScanContext, config: DetectorConfig) -> Iterable[Finding]:
        raise SkipDetector("nothing to do")

    return reg


def fw(yaml_text: str) -> Firewall:
    reg = make_registry()
    return Firewall(load_policy_text(yaml_text, registry=reg), registry=reg)


def test_finding_blocks_and_points_at_original_span() -> None:
    f = fw("detectors:\n  word: {action: block}\n")
    r = f.scan("this is forbid\u200bden text")
    assert r.verdict is Verdict.BLOCK
    assert r.findings[0].spans == (Span(8, 18),)
    assert r.scores == {"word": 0.9}
    assert r.detectors["word"].status is Status.OK


def test_clean_text_is_allowed_with_zero_score() -> None:
    r = fw("detectors:\n  word: {}\n").scan("all fine")
    assert r.verdict is Verdict.ALLOW and r.findings == () and r.scores == {"word": 0.0}


def test_threshold_and_category_actions() -> None:
    below = fw("detectors:\n  word: {threshold: 0.95}\n").scan("forbidden")
    assert below.verdict is Verdict.ALLOW and len(below.findings) == 1
    flagged = fw("detectors:\n  word: {action: block, categories: {word: flag}}\n").scan("forbidden")
    assert flagged.verdict is Verdict.FLAG


def test_redaction_uses_typed_placeholders() -> None:
    r = fw("detectors:\n  word: {action: redact}\n").scan("a forbidden b")
    assert r.verdict is Verdict.REDACT
    assert r.sanitized == "a [WORD_1] b"


def test_roles_select_detectors() -> None:
    f = fw("detectors:\n  word: {roles: [tool]}\n")
    assert f.scan("forbidden", Role.USER).verdict is Verdict.ALLOW
    assert f.scan(Message(Role.TOOL, "forbidden")).verdict is Verdict.BLOCK
    assert f.detectors_for("user") == []


@pytest.mark.parametrize(
    ("mode", "verdict"), [("closed", Verdict.BLOCK), ("flag", Verdict.FLAG), ("open", Verdict.ALLOW)]
)
def test_error_follows_fail_mode_and_is_reported(mode: str, verdict: Verdict) -> None:
    r = fw(f"fail_mode: {mode}\ndetectors:\n  broken: {{}}\n").scan("hello secret")
    assert r.verdict is verdict
    rep = r.detectors["broken"]
    assert rep.status is Status.ERROR and rep.fail_mode_applied
    assert rep.error == "RuntimeError"  # the exception's message (with content) is not carried
    assert "broken" not in r.scores  # an errored detector has no score: it did not pass
    assert any("fail mode" in reason for reason in r.reasons)


def test_over_budget_detector_times_out_closed() -> None:
    r = fw("detectors:\n  slow: {time_budget_ms: 5}\n").scan("x")
    assert r.verdict is Verdict.BLOCK
    assert r.detectors["slow"].status is Status.TIMEOUT


def test_cooperative_deadline_stops_a_runaway_detector() -> None:
    t0 = time.perf_counter()
    r = fw("detectors:\n  cooperative: {time_budget_ms: 20}\n").scan("x")
    assert time.perf_counter() - t0 < 1.0
    assert r.detectors["cooperative"].status is Status.TIMEOUT
    assert r.verdict is Verdict.BLOCK


def test_skipped_detector_is_reported_not_passed() -> None:
    r = fw("detectors:\n  skipper: {}\n").scan("x")
    assert r.detectors["skipper"].status is Status.SKIPPED
    assert r.verdict is Verdict.ALLOW and "skipper" not in r.scores


def test_one_failure_does_not_hide_other_findings() -> None:
    r = fw("fail_mode: open\ndetectors:\n  broken: {}\n  word: {action: flag}\n").scan("forbidden")
    assert r.verdict is Verdict.FLAG
    assert r.detectors["word"].status is Status.OK


def test_async_matches_sync_and_enforces_total_budget() -> None:
    f = fw("detectors:\n  word: {}\n")
    sync = f.scan("forbidden here")
    got = asyncio.run(f.scan_async("forbidden here"))
    assert got.verdict == sync.verdict and got.findings == sync.findings

    slow = fw("total_budget_ms: 10\ndetectors:\n  slow: {time_budget_ms: 1000}\n")
    r = asyncio.run(slow.scan_async("x"))
    assert r.verdict is Verdict.BLOCK and r.detectors["slow"].status is Status.TIMEOUT


def test_duplicate_registration_raises() -> None:
    reg = make_registry()
    with pytest.raises(ValueError, match="already registered"):
        reg.register("word")(lambda ctx, cfg: [])


def test_policy_hash_changes_with_policy() -> None:
    assert fw("detectors:\n  word: {}\n").policy_hash != fw("detectors:\n  word: {threshold: 0.7}\n").policy_hash
