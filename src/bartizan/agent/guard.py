"""The agent tool-call firewall: a framework-neutral hook that any agent loop calls.

    guard = AgentGuard(certificate=cert, policy=policy, firewall=Firewall())
    decision = guard.check_tool_call("email.send_message", {"to": "x@evil.test", "body": "..."})
    if decision.decision == "allow": run the tool, then
    result = guard.check_tool_result("email.read_inbox", output)   # scanned; taints the context

Decisions are taken in code, never by the model: the behavior certificate says which tools exist for this
agent (deny by default, deny beats allow), the codified policy (Cedar) decides each call over facts about it,
and the firewall scans what tools return. Facts the guard derives for the policy: *untrusted content has
entered this context* (any tool result or retrieved document so far), *the arguments contain PII* (the
firewall's PII detector on the arguments), *a destination is outside the allow-list* (a URL in the arguments
whose host the certificate's networks do not allow). "ask" is the third decision: a human approves or not,
through the `approve` callback when one is given.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bartizan.a2as.certificates import Certificate
from bartizan.a2as.events import A2ASEvent
from bartizan.a2as.policies import AgentPolicy, ToolCallRequest
from bartizan.pipeline import Firewall
from bartizan.types import Role, ScanResult, Verdict

Decision = Literal["allow", "deny", "ask"]
DENY_MESSAGE = "Not permitted by the agent's behavior certificate or policy."
_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s\"'<>\\]+", re.IGNORECASE)


@dataclass(frozen=True)
class ToolDecision:
    """The verdict on one proposed tool call, with what determined it (rule and policy ids, never content)."""

    decision: Decision
    tool: str
    policy_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    events: tuple[A2ASEvent, ...] = ()
    elapsed_ms: float = 0.0
    message: str = ""  # what to tell the model instead of running the tool (deny / ask)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


@dataclass(frozen=True)
class ToolResultCheck:
    """A scanned tool result: `content` is what the model may read (the result, or a notice when blocked)."""

    verdict: Verdict
    content: str
    finding_ids: tuple[str, ...]
    scan: ScanResult | None = field(default=None, repr=False)


def _as_object(arguments: str | Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as an object for a human to read; text that is not a JSON object is shown under "_raw"."""
    if not isinstance(arguments, str):
        return dict(arguments)
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


PII_ONLY_POLICY = """version: 1
name: pii-facts
detectors:
  pii:
    roles: [assistant]
    action: flag
"""


def pii_only_firewall() -> Firewall:
    """A firewall that runs only the PII detector: what the guard needs for its PII fact."""
    from bartizan.policy.loader import load_policy_text

    return Firewall(load_policy_text(PII_ONLY_POLICY, "<pii facts>"))


class AgentGuard:
    """Certificate + policy + firewall for one agent session. Thread-safe; keep one per conversation (the
    taint fact is per conversation)."""

    def __init__(
        self,
        *,
        certificate: Certificate | None = None,
        policy: AgentPolicy | None = None,
        firewall: Firewall | None = None,
        agent: str = "agent",
        tenant: str = "default",
        deny_message: str = DENY_MESSAGE,
        approve: Callable[[str, Mapping[str, Any]], bool] | None = None,
        pii_firewall: Firewall | None = None,
    ) -> None:
        self.certificate = certificate
        # the "arguments contain PII" fact needs only the PII detector: a PII-only firewall is much cheaper
        self.pii_firewall = pii_firewall or firewall
        self.policy = policy
        self.firewall = firewall
        self.agent, self.tenant = agent, tenant
        self.deny_message = deny_message
        self.approve = approve
        self._untrusted = False
        self._lock = threading.Lock()

    # --- facts ----------------------------------------------------------------------------------------
    @property
    def untrusted(self) -> bool:
        """True once any tool result or retrieved content has entered this context."""
        return self._untrusted

    def taint(self) -> None:
        with self._lock:
            self._untrusted = True

    def _pii_in(self, text: str) -> bool:
        if self.pii_firewall is None or not text:
            return False
        return any(f.detector == "pii" for f in self.pii_firewall.scan(text, Role.ASSISTANT).findings)

    def _outside_allowlist(self, text: str) -> bool:
        if self.certificate is None:
            return False
        return any(not self.certificate.permissions.egress_allowed(url) for url in _URL.findall(text))

    # --- checks ---------------------------------------------------------------------------------------
    def check_model(self, model: str) -> bool:
        """The paper's JSON certificate lists tools only, so it does not restrict models."""
        if self.certificate is None or self.certificate.format == "paper":
            return True
        return self.certificate.permissions.model_allowed(model)

    def filter_tools(self, tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """The OpenAI-format tool definitions this agent may be offered, and the names stripped."""
        if self.certificate is None:
            return tools, []
        kept, stripped = [], []
        for tool in tools:
            fn = tool.get("function") if isinstance(tool, dict) else None
            name = fn.get("name") if isinstance(fn, dict) else None
            if isinstance(name, str) and self.certificate.permissions.tool_allowed(name):
                kept.append(tool)
            else:
                stripped.append(str(name))
        return kept, stripped

    def check_tool_call(self, name: str, arguments: str | Mapping[str, Any]) -> ToolDecision:
        """Decide one proposed call. Unparsable arguments are passed to the policy as text; its rules fail
        closed on them."""
        t0 = time.perf_counter()
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments), ensure_ascii=False)
        if self.certificate is not None and not self.certificate.permissions.tool_allowed(name):
            event = A2ASEvent("a2as.cert.tool_denied", "deny", rule=name)
            return self._done(t0, "deny", name, ("certificate",), ("tool not allowed by the certificate",), (event,))
        if self.policy is None:
            return self._done(t0, "allow", name, (), (), ())
        request = ToolCallRequest(
            agent=self.agent,
            tenant=self.tenant,
            tool=name,
            arguments=arguments if isinstance(arguments, str) else dict(arguments),
            untrusted_in_context=self.untrusted,
            args_contain_pii=self._pii_in(text),
            destination_outside_allowlist=self._outside_allowlist(text),
        )
        verdict = self.policy.decide(request)
        decision: Decision = verdict.decision
        reasons = tuple(verdict.reasons)
        if decision == "ask" and self.approve is not None:
            args = _as_object(arguments)
            decision = "allow" if self.approve(name, args) else "deny"
            reasons += ("human approved" if decision == "allow" else "human declined",)
        events: tuple[A2ASEvent, ...] = ()
        if decision != "allow":
            events = (A2ASEvent("a2as.policy.enforced", decision, rule=",".join(verdict.policy_ids) or None),)
        return self._done(t0, decision, name, tuple(verdict.policy_ids), reasons, events)

    def _done(
        self,
        t0: float,
        decision: Decision,
        tool: str,
        ids: tuple[str, ...],
        reasons: tuple[str, ...],
        events: tuple[A2ASEvent, ...],
    ) -> ToolDecision:
        message = ""
        if decision == "deny":
            message = self.deny_message
        elif decision == "ask":
            message = "This action needs a human's approval before it can run."
        return ToolDecision(decision, tool, ids, reasons, events, (time.perf_counter() - t0) * 1000.0, message)

    def check_tool_result(self, name: str, content: str, *, role: Role = Role.TOOL) -> ToolResultCheck:
        """Scan a tool result before the model reads it; the context is untrusted from now on."""
        self.taint()
        if self.firewall is None:
            return ToolResultCheck(Verdict.ALLOW, content, ())
        result = self.firewall.scan(content, role)
        ids = tuple(sorted({f"{f.detector}:{f.rule_id or f.category}" for f in result.findings}))
        if result.verdict is Verdict.BLOCK:
            notice = f"[bartizan: the result of {name} was withheld: {', '.join(ids) or 'blocked'}]"
            return ToolResultCheck(Verdict.BLOCK, notice, ids, result)
        return ToolResultCheck(result.verdict, result.sanitized, ids, result)

    def check_egress(self, url: str, method: str = "GET") -> bool:
        """For tools run through the SDK: may this agent reach `url`? Deny by default with a certificate."""
        return self.certificate is None or self.certificate.permissions.egress_allowed(url, method)
