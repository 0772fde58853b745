"""A guard for the official `openai` client: ``guarded.chat.completions.create(...)`` runs the same steps as
the gateway, in process.

    guard = AgentGuard(certificate=cert, policy=policy, firewall=Firewall())
    client = GuardedOpenAI(OpenAI(), guard)
    resp = client.chat.completions.create(model=..., messages=..., tools=...)
    client.last.decisions   # what was decided on each proposed tool call

Request: the firewall scans every surface by role (a BLOCK raises `Blocked`; redactions are applied), then
BASIC (`bartizan.agent.context.prepare_chat`): model and tools against the certificate, defense and policy
blocks, keyed boundaries around untrusted messages. Answer: every tool call is decided by the guard
(certificate, then Cedar); denied or unapproved calls are removed and the message says why.
Streaming is not wrapped here (use the gateway for streams).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from bartizan.a2as.boundaries import Boundaries, BoundaryConfig
from bartizan.a2as.tokens import derive_session_key
from bartizan.agent.context import Enforced, Prepared, enforce_answer, prepare_chat
from bartizan.agent.guard import AgentGuard
from bartizan.gateway.surfaces import chat_request, set_text
from bartizan.redaction import Numbering, redact_with_map
from bartizan.types import Verdict


class Blocked(RuntimeError):
    """The request (or the requested model) was refused; `finding_ids` say why, never the text."""

    def __init__(self, message: str, finding_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.finding_ids = finding_ids


@dataclass
class LastCall:
    prepared: Prepared | None = None
    enforced: list[Enforced] = field(default_factory=list)

    @property
    def decisions(self) -> list[Any]:
        return [d for e in self.enforced for d in e.decisions]


class _Completions:
    def __init__(self, owner: GuardedOpenAI) -> None:
        self._owner = owner

    def create(self, **kwargs: Any) -> Any:
        return self._owner._create(**kwargs)


class _Chat:
    def __init__(self, owner: GuardedOpenAI) -> None:
        self.completions = _Completions(owner)


class GuardedOpenAI:
    def __init__(
        self,
        client: Any,
        guard: AgentGuard,
        *,
        boundaries: bool = True,
        defense: bool | str = True,
        token_len: int = 16,
        session_id: str | None = None,
    ) -> None:
        self.client, self.guard, self.defense = client, guard, defense
        self.session_id = session_id or uuid.uuid4().hex
        self._boundaries = None
        if boundaries:
            key = derive_session_key(os.urandom(32), "sdk", self.session_id)
            self._boundaries = Boundaries(BoundaryConfig(token_len=token_len), key)
        self.chat = _Chat(self)
        self.last = LastCall()

    def _create(self, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            raise ValueError("GuardedOpenAI does not wrap streams; use the bartizan gateway for streaming")
        body = dict(kwargs)
        fw = self.guard.firewall
        if fw is not None:  # the firewall first, on the text as the application wrote it
            numbering = Numbering()
            for surface in chat_request(body):
                result = fw.scan(surface.text, surface.role)
                if result.verdict is Verdict.BLOCK:
                    ids = tuple(sorted({f"{f.detector}:{f.rule_id or f.category}" for f in result.findings}))
                    raise Blocked(f"request blocked by the bartizan policy ({surface.name})", ids)
                if result.redactions:
                    set_text(body, surface.path, redact_with_map(surface.text, result.redactions, numbering)[0])
        prepared = prepare_chat(body, self.guard, boundaries=self._boundaries, defense=self.defense)
        self.last = LastCall(prepared)
        if prepared.model_denied:
            raise Blocked("the agent's certificate does not allow this model", ("a2as.cert.model_denied",))
        response = self.client.chat.completions.create(**prepared.body)
        data = response.model_dump()
        for choice in data.get("choices") or []:
            message = choice.get("message")
            if isinstance(message, dict):
                enforced = enforce_answer(message, self.guard)
                self.last.enforced.append(enforced)
                if enforced.denied and not message.get("tool_calls"):
                    choice["finish_reason"] = "stop"
        return type(response).model_validate(data)
