"""A2AS BASIC in the gateway: one `A2ASRuntime` per tenant, built at start-up (fail closed on a bad
certificate, policy or key), applied to every chat-completions request and answer.

Order on the request path (spec §1): A (transport signature) -> B (model, tools) -> the firewall's scan of
the unwrapped text (done by the route, before this stage transforms anything) -> I, C (system blocks) -> S
(boundaries). On the answer: B/C on every tool call, then the tag-leak check. The shared transformation lives
in `bartizan.agent.context`, which the SDK uses too.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bartizan.a2as.boundaries import Boundaries, BoundaryConfig
from bartizan.a2as.certificates import Certificate, load_certificate, load_issuer, verify
from bartizan.a2as.defense import template_sha256
from bartizan.a2as.events import A2ASEvent
from bartizan.a2as.policies import AgentPolicy
from bartizan.a2as.tokens import derive_session_key
from bartizan.a2as.transport import AuthResult, Keyring, ReplayCache, verify_request
from bartizan.agent.context import (
    Enforced,
    Prepared,
    enforce_answer,
    enforce_response_output,
    prepare_chat,
    prepare_responses,
)
from bartizan.agent.guard import AgentGuard, pii_only_firewall
from bartizan.gateway.a2as_config import A2ASConfig
from bartizan.pipeline import Firewall


class A2ASSetupError(ValueError):
    """The tenant's A2AS configuration cannot be enforced (bad or untrusted certificate, bad policy, key)."""


@dataclass
class RequestState:
    """What one request carries from the request path to its answer."""

    guard: AgentGuard
    prepared: Prepared
    auth: AuthResult | None = None
    events: list[A2ASEvent] = field(default_factory=list)
    elapsed_ms: float = 0.0


class A2ASRuntime:
    def __init__(self, config: A2ASConfig, firewall: Firewall, tenant: str) -> None:
        self.config, self.firewall, self.tenant = config, firewall, tenant
        self.certificate: Certificate | None = None
        if config.certificate:
            self.certificate = load_certificate(config.certificate)
            check = verify(self.certificate, [load_issuer(v) for v in config.trusted_issuers])
            if check.status != "verified" and config.certificate_mode == "enforce":
                if not (check.status == "unsigned" and config.allow_unsigned_certificate):
                    raise A2ASSetupError(f"certificate {config.certificate}: {check.status} ({check.reason})")
        self.policy = AgentPolicy.load(config.policy) if config.policy else None
        self.defense: bool | str = False
        if config.defense:
            self.defense = Path(config.defense_template).read_text("utf-8") if config.defense_template else True
        self.defense_sha256 = template_sha256(self.defense if isinstance(self.defense, str) else None)
        secret_env = config.boundary_secret_env
        self._secret = base64.b64decode(os.environ[secret_env]) if secret_env else os.urandom(32)
        self._boundary_config = BoundaryConfig(token_len=config.token_len)
        self.pii_firewall = pii_only_firewall()
        self.keyring: Keyring | None = None
        self.replay: ReplayCache | None = None
        if config.auth is not None:
            self.keyring = Keyring.from_env(config.auth.keys, config.auth.current)
            self.replay = ReplayCache(config.auth.max_age_s)

    def authenticate(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> AuthResult | None:
        """A: None when signatures are not configured."""
        auth = self.config.auth
        if auth is None or self.keyring is None:
            return None
        return verify_request(
            method,
            path,
            headers,
            raw,
            self.keyring,
            mode=auth.mode,
            clock_skew_s=auth.clock_skew_s,
            max_age_s=auth.max_age_s,
            replay=self.replay,
        )

    def prepare(
        self, body: dict[str, Any], session_id: str, *, untrusted: bool = False, shape: str = "chat"
    ) -> RequestState:
        t0 = time.perf_counter()
        guard = AgentGuard(
            certificate=self.certificate if self.config.certificate_mode == "enforce" else None,
            policy=self.policy,
            firewall=self.firewall,
            agent=self.config.agent,
            tenant=self.tenant,
            deny_message=self.config.deny_message,
            pii_firewall=self.pii_firewall,
        )
        if untrusted:
            guard.taint()
        boundaries = None
        if self.config.boundaries:
            key = derive_session_key(self._secret, "b1", session_id)
            boundaries = Boundaries(self._boundary_config, key)
        prep = prepare_responses if shape == "responses" else prepare_chat
        prepared = prep(body, guard, boundaries=boundaries, defense=self.defense)
        state = RequestState(guard, prepared, events=list(prepared.events))
        state.elapsed_ms = (time.perf_counter() - t0) * 1000.0
        return state

    def enforce(self, state: RequestState, answer: dict[str, Any], *, shape: str = "chat") -> Enforced:
        """`answer`: a chat ``message`` dict, or a Responses ``response`` dict (shape "responses")."""
        t0 = time.perf_counter()
        check = enforce_response_output if shape == "responses" else enforce_answer
        result = check(answer, state.guard, tag_leak=self.config.tag_leak)
        state.events += result.events
        state.elapsed_ms += (time.perf_counter() - t0) * 1000.0
        return result


def build_runtimes(tenants: dict[str, Any]) -> dict[str, A2ASRuntime]:
    """An A2ASRuntime for every tenant whose config has an `a2as` section (`tenants`: name -> Tenant)."""
    out = {}
    for name, tenant in tenants.items():
        if tenant.config.a2as is not None:
            out[name] = A2ASRuntime(tenant.config.a2as, tenant.firewall, name)
    return out
