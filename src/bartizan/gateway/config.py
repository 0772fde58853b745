"""Gateway configuration: a YAML file validated by Pydantic, then environment overrides.

Errors are `bartizan.schema.SchemaError`s that name the file, the line and the key (or the environment
variable), like the policy loader's. Secrets never live in the file: the upstream key is named by the
environment variable that holds it (`api_key_env`), and API keys are stored as sha256 digests only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from bartizan.gateway.a2as_config import A2ASConfig
from bartizan.schema import SchemaError, SchemaIssue, YamlDoc, key_path

# Names that end up in logs, metrics labels and Redis keys: keep them to a safe, printable alphabet.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Skips the cross-field checks inside model validation so that the loader can report them with lines.
_DEFER_CROSS_CHECKS = "bartizan_defer_cross_checks"


def check_name(value: str, what: str) -> str:
    """`value` if it is a safe identifier (tenant names, key ids), else ValueError."""
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"{what} must be 1-64 characters of letters, digits, '_', '.', ':' or '-', starting alnum")
    return value


def _check_env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME_RE.fullmatch(value):
        raise ValueError("must be the NAME of an environment variable (letters, digits, '_'), never a secret itself")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpstreamConfig(_Model):
    """Where the gateway forwards checked requests."""

    url: str = "demo"  # "demo" = the built-in demo upstream; else a base URL such as https://api.openai.com/v1
    api_key_env: str | None = None  # name of the env var holding the upstream key (never the key itself in files)
    timeout_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    connect_timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    max_connections: int = Field(default=100, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v == "demo":
            return v
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", v):
            raise ValueError("must be 'demo' or an http(s) base URL such as https://api.openai.com/v1")
        return v.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _api_key_env(cls, v: str | None) -> str | None:
        return _check_env_name(v)

    def api_key(self) -> str | None:
        """The upstream key, read from the environment at call time (so rotation needs no reload)."""
        if self.api_key_env is None:
            return None
        return os.environ.get(self.api_key_env) or None


class RateLimit(_Model):
    """A sustained rate with a burst allowance (GCRA / token bucket parameters)."""

    requests_per_minute: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    burst: int = Field(default=60, ge=1, le=1_000_000)


class TenantConfig(_Model):
    policy: str | None = None  # policy file path (relative paths: to the config file); None = built-in default
    upstream: UpstreamConfig = Field(default_factory=lambda: UpstreamConfig())
    on_block: Literal["error", "refusal"] = "error"
    refusal_text: str = "I can't help with that request."
    rate_limit: RateLimit = Field(default_factory=lambda: RateLimit())
    models: list[str] | None = None  # allow-list of model names (None = any)
    a2as: A2ASConfig | None = None  # A2AS BASIC controls (certificate, policy, boundaries, defense, signatures)

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and any(not m.strip() for m in v):
            raise ValueError("model names must not be empty")
        return v


class KeyEntry(_Model):
    """One API key, stored as its sha256 digest; `id` is public and safe to log."""

    id: str
    sha256: str
    tenant: str
    rate_limit: RateLimit | None = None  # per-key override of the tenant's limit

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_name(v, "key id")

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, v: str) -> str:
        if not _HEX64_RE.fullmatch(v):
            raise ValueError("must be 64 hex characters (the sha256 of the key; see `bartizan serve --new-key`)")
        return v.lower()


class StreamConfig(_Model):
    holdback_chars: int = Field(default=64, ge=0)
    scan_every_chars: int = Field(default=32, ge=1)
    context_chars: int = Field(default=512, ge=0)


class AuditConfig(_Model):
    url: str | None = None  # None: SQLite in the home directory (`bartizan.home`)
    capture_prompts: bool = False
    capture_key_env: str | None = None  # env var with the base64 AES-256 key for captured text
    chain_key_env: str | None = None  # env var with the HMAC key of the hash chain

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://\S*", v):
            raise ValueError("must be a database URL such as sqlite:///bartizan-audit.db or postgresql://...")
        return v

    @field_validator("capture_key_env", "chain_key_env")
    @classmethod
    def _env_names(cls, v: str | None) -> str | None:
        return _check_env_name(v)

    @model_validator(mode="after")
    def _capture_needs_key(self) -> AuditConfig:
        if self.capture_prompts and self.capture_key_env is None:
            raise ValueError("capture_prompts needs capture_key_env (captured text is stored only encrypted)")
        return self


class GatewayConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tenants: dict[str, TenantConfig] = Field(default_factory=lambda: {"default": TenantConfig()})
    keys: list[KeyEntry] = Field(default_factory=list)
    allow_anonymous: bool = False  # True: requests without a key use tenant "default" (dev/demo only)
    redis_url: str | None = None  # shared rate limits across replicas when set
    stream: StreamConfig = Field(default_factory=lambda: StreamConfig())
    audit: AuditConfig = Field(default_factory=lambda: AuditConfig())
    log_level: str = "info"
    log_json: bool = True
    otel: bool = False
    max_body_bytes: int = Field(default=4_000_000, ge=1)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v):
            raise ValueError("must be a host name or address")
        return v

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, v: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        if not v:
            raise ValueError("at least one tenant is needed")
        for name in v:
            check_name(name, "tenant name")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"(rediss?|unix)://\S+", v):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return v

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        if v.lower() not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return v.lower()

    @model_validator(mode="after")
    def _cross(self, info: ValidationInfo) -> GatewayConfig:
        if isinstance(info.context, dict) and info.context.get(_DEFER_CROSS_CHECKS):
            return self
        problems = cross_field_issues(self)
        if problems:
            raise ValueError("; ".join(f"{key_path(loc)}: {msg}" for loc, msg in problems))
        return self


def cross_field_issues(cfg: GatewayConfig, base_dir: Path | None = None) -> list[tuple[tuple[Any, ...], str]]:
    """Checks that span fields: (location, message) for each problem. Policy paths resolve against `base_dir`."""
    out: list[tuple[tuple[Any, ...], str]] = []
    seen_ids: set[str] = set()
    seen_digests: set[str] = set()
    for i, key in enumerate(cfg.keys):
        if key.tenant not in cfg.tenants:
            out.append((("keys", i, "tenant"), f"unknown tenant {key.tenant!r} (known: {', '.join(cfg.tenants)})"))
        if key.id in seen_ids:
            out.append((("keys", i, "id"), f"duplicate key id {key.id!r}"))
        if key.sha256 in seen_digests:
            out.append((("keys", i, "sha256"), "the same key digest is listed twice"))
        seen_ids.add(key.id)
        seen_digests.add(key.sha256)
    for name, tenant in cfg.tenants.items():
        if tenant.policy is not None:
            path = Path(tenant.policy)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            if not path.is_file():
                out.append((("tenants", name, "policy"), f"policy file not found: {path}"))
    if cfg.allow_anonymous and "default" not in cfg.tenants:
        out.append((("allow_anonymous",), "anonymous requests use tenant 'default', which is not configured"))
    return out


# Environment overrides: variable -> location in the config.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "BARTIZAN_HOST": ("host",),
    "BARTIZAN_PORT": ("port",),
    "BARTIZAN_UPSTREAM_URL": ("tenants", "default", "upstream", "url"),
    "BARTIZAN_UPSTREAM_API_KEY_ENV": ("tenants", "default", "upstream", "api_key_env"),
    "BARTIZAN_AUDIT_URL": ("audit", "url"),
    "BARTIZAN_REDIS_URL": ("redis_url",),
    "BARTIZAN_ALLOW_ANONYMOUS": ("allow_anonymous",),
}


def _env_value(name: str, raw: str) -> Any:
    if name == "BARTIZAN_ALLOW_ANONYMOUS":
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"must be one of {'/'.join(_TRUE)} or {'/'.join(_FALSE)}")
    if name == "BARTIZAN_PORT":
        if not raw.strip().isdigit():
            raise ValueError("must be a port number (0-65535)")
        return int(raw.strip())
    return raw.strip()


def apply_env(cfg: GatewayConfig, env: Mapping[str, str]) -> GatewayConfig:
    """`cfg` with the BARTIZAN_* overrides from `env` applied; empty variables count as unset."""
    data = cfg.model_dump()
    issues: list[SchemaIssue] = []
    used: dict[tuple[str, ...], str] = {}
    for name, loc in ENV_OVERRIDES.items():
        raw = env.get(name)
        if raw is None or not raw.strip():
            continue
        if loc[0] == "tenants" and "default" not in data["tenants"]:
            issues.append(SchemaIssue("environment", None, name, "sets tenant 'default', which is not configured"))
            continue
        try:
            value = _env_value(name, raw)
        except ValueError as exc:
            issues.append(SchemaIssue("environment", None, name, str(exc)))
            continue
        node = data
        for part in loc[:-1]:
            node = node[part]
        node[loc[-1]] = value
        used[loc] = name
    if issues:
        raise SchemaError(issues)
    if not used:
        return cfg
    try:
        return GatewayConfig.model_validate(data, context={_DEFER_CROSS_CHECKS: True})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            var: str | None = next((n for where, n in used.items() if loc[: len(where)] == where), None)
            if var is None:  # a model-level check that an override tripped
                var = ", ".join(sorted(used.values()))
            issues.append(SchemaIssue("environment", None, var, err["msg"]))
        raise SchemaError(issues) from None


def _resolve_policies(cfg: GatewayConfig, base_dir: Path) -> None:
    """Make relative policy paths absolute (relative to the config file) so the server's cwd does not matter."""
    for tenant in cfg.tenants.values():
        if tenant.policy is not None and not Path(tenant.policy).is_absolute():
            tenant.policy = str((base_dir / tenant.policy).resolve())
        a = tenant.a2as
        if a is not None:
            for key in ("certificate", "policy", "defense_template"):
                value = getattr(a, key)
                if value is not None and not Path(value).is_absolute():
                    setattr(a, key, str((base_dir / value).resolve()))


def load_gateway_config_text(
    text: str, source: str = "<gateway config>", base_dir: Path | None = None
) -> GatewayConfig:
    """Validate a YAML text as a GatewayConfig (no environment overrides); errors are located."""
    doc = YamlDoc(text, source)
    try:
        cfg = GatewayConfig.model_validate(
            doc.data if doc.data is not None else {}, context={_DEFER_CROSS_CHECKS: True}
        )
    except ValidationError as exc:
        raise SchemaError(doc.issues_from(exc)) from None
    problems = cross_field_issues(cfg, base_dir)
    if problems:
        raise SchemaError([doc.issue(loc, msg) for loc, msg in problems])
    if base_dir is not None:
        _resolve_policies(cfg, base_dir)
    return cfg


def load_gateway_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """The gateway config from a YAML file (None: defaults), then the BARTIZAN_* overrides from `env`
    (None: the process environment, which is read and never changed)."""
    if path is None:
        cfg = GatewayConfig()
    else:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise SchemaError([SchemaIssue(str(p), None, "", f"cannot read config: {exc.strerror}")]) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SchemaError([SchemaIssue(str(p), None, "", f"not UTF-8 text (byte {exc.start})")]) from None
        cfg = load_gateway_config_text(text, str(p), p.resolve().parent)
    cfg = apply_env(cfg, os.environ if env is None else env)
    problems = cross_field_issues(cfg)
    if problems:  # only an override can get here (the file itself was checked above)
        raise SchemaError([SchemaIssue("environment", None, key_path(loc), msg) for loc, msg in problems])
    return cfg
