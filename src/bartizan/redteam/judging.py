"""Which judge decides an attempt: a case's own deterministic criterion first, then its judge question through
an optional judge model, then the combined refusal/compliance judge (rules + learned). For a benign twin the
same judges answer "did the model answer?", so a refusal there is a false refusal."""

from __future__ import annotations

from collections.abc import Callable

from bartizan.redteam.attempts import Probe
from bartizan.redteam.judges import Judgement, judge_combined, judge_question, judge_regex
from bartizan.redteam.targets import TargetReply


def model_judge(ask: Callable[[str], str] | None = None) -> Callable[[Probe, TargetReply], Judgement]:
    """`ask` sends a prompt to the judge model and returns its answer (None: no judge model)."""

    def judge(probe: Probe, reply: TargetReply) -> Judgement:
        case, text = probe.case, reply.text or ""
        if case.success_regex and not case.benign:
            return judge_regex(case.success_regex, text)
        if case.judge_question and ask is not None and not case.benign:
            return judge_question(case.judge_question, text, ask)
        return judge_combined(text)

    return judge
