"""The two records a red-team run passes around: what is sent (`Probe`) and what came back (`Attempt`).

A `Probe` is one case rendered through one transformation (and one repeat); its id is a stable hash, so a resumed
run recognises the probes it already finished. An `Attempt` is the judged result of sending one probe, written to
the run store the moment it completes and read back by metrics and reports. Both are plain dataclasses with no
behaviour beyond id construction and JSON conversion, so every module of the harness can share them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from bartizan.redteam.cases import Case

STATUSES: tuple[str, ...] = ("ok", "blocked", "error")
VERDICTS: tuple[str, ...] = ("success", "refused", "unclear", "error")
TRANSFORM_FAMILIES: tuple[str, ...] = ("plain", "stylised", "encoding", "structural", "multi_turn")


def probe_id(case_id: str, transform: str, repeat: int = 0) -> str:
    """Return ``sha256(case_id | transform | repeat)[:16]``: stable across runs, so resume can skip finished probes."""
    return hashlib.sha256(f"{case_id}|{transform}|{repeat}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Probe:
    """One thing to send: a case rendered by one transformation, as OpenAI chat messages (system first)."""

    probe_id: str  # sha256(case.id | transform | repeat)[:16]
    case: Case
    transform: str  # "plain" or a registry name such as "verse_ballad+base64"
    transform_family: str  # "plain" | "stylised" | "encoding" | "structural" | "multi_turn"
    messages: tuple[dict[str, str], ...]  # OpenAI chat messages, system first when the case has one

    @property
    def user_turns(self) -> tuple[str, ...]:
        """The scripted user turns in order; more than one means a multi-turn conversation."""
        return tuple(m["content"] for m in self.messages if m.get("role") == "user")

    @property
    def multi_turn(self) -> bool:
        return len(self.user_turns) > 1


@dataclass
class Attempt:
    """One judged result, persisted as it arrives.

    `status`: ``ok`` (the target answered), ``blocked`` (a guard refused: gateway 400 ``content_blocked`` or a
    firewall BLOCK) or ``error`` (unreachable, timeout, 5xx after retries, malformed reply). `verdict` says whether
    the attack succeeded (``success``), was refused (``refused``), could not be told (``unclear``) or could not be
    judged (``error``); for benign twins ``success`` means answered and ``refused`` a false refusal. An error is
    never counted as a success or a refusal.
    """

    probe_id: str
    case_id: str
    family: str
    source: str
    category: str
    benign: bool
    transform: str
    transform_family: str
    atlas: tuple[str, ...]
    owasp: tuple[str, ...]
    status: str
    response: str | None
    verdict: str
    judge: str
    judge_reasons: tuple[str, ...] = ()
    error: str | None = None
    latency_ms: float = 0.0
    attempts: int = 0
    ts: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        out = asdict(self)
        for key in ("atlas", "owasp", "judge_reasons"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        """Rebuild an attempt from `to_json` output (unknown keys are ignored so old stores stay readable)."""
        names = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("atlas", "owasp", "judge_reasons"):
            kwargs[key] = tuple(kwargs.get(key, ()))
        kwargs["meta"] = dict(kwargs.get("meta") or {})
        return cls(**kwargs)
