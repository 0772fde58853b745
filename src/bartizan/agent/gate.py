"""`AgentGuard` as the MCP proxy's `ToolGate`: the same certificate and Cedar policy decide MCP tool calls."""

from __future__ import annotations

from typing import Any

from bartizan.agent.guard import AgentGuard


class GuardGate:
    def __init__(self, guard: AgentGuard) -> None:
        self.guard = guard

    def tool_visible(self, tool: str) -> bool:
        cert = self.guard.certificate
        return cert is None or cert.permissions.tool_allowed(tool)

    def check(self, tool: str, arguments: dict[str, Any], untrusted: bool) -> tuple[str, tuple[str, ...], str]:
        if untrusted:
            self.guard.taint()
        decision = self.guard.check_tool_call(tool, arguments)
        return decision.decision, decision.policy_ids, decision.message or "; ".join(decision.reasons)
