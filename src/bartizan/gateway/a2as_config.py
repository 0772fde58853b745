"""Per-tenant A2AS BASIC configuration for the gateway (spec §7, ../shared/reference/a2as.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class A2ASAuthConfig(_Model):
    """A: transport signatures on requests from the application to the gateway."""

    mode: Literal["rfc9421", "simple", "paper"] = "rfc9421"
    current: str = Field(min_length=1, description="key id that signs (and the default for verification)")
    keys: dict[str, str] = Field(description='key id -> "env:NAME" or "file:PATH" (base64 or raw bytes)')
    clock_skew_s: int = Field(default=300, ge=0)
    max_age_s: int = Field(default=300, ge=1)
    on_fail: Literal["reject", "mark_untrusted", "monitor"] = "reject"


class A2ASConfig(_Model):
    """B, A, S, I, C for one tenant. Absent: the tenant runs without BASIC (the firewall still runs)."""

    agent: str = "agent"
    certificate: str | None = None  # B: behavior certificate file (a2as.yaml, paper JSON or native YAML)
    trusted_issuers: list[str] = []  # "ed25519:<b64url public key>" pins; required in enforce mode
    certificate_mode: Literal["enforce", "monitor"] = "enforce"
    allow_unsigned_certificate: bool = False  # development only: load a certificate without a signature
    policy: str | None = None  # C: codified policy file (rendered for the model, enforced by Cedar)
    boundaries: bool = True  # S: neutralise and wrap untrusted content in keyed tags
    token_len: int = Field(default=16, ge=8, le=16)
    boundary_secret_env: str | None = None  # base64 secret for boundary tokens; None: random per process
    defense: bool = True  # I: the in-context defense block
    defense_template: str | None = None  # file with a custom template; its sha256 goes into the audit
    auth: A2ASAuthConfig | None = None  # A: None = requests are not signed
    tag_leak: Literal["block", "strip", "monitor"] = "block"
    deny_message: str = "Not permitted by the agent's behavior certificate or policy."
