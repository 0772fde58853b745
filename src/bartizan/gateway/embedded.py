"""The embedded default: state under the home directory, and a safe demo mode.

- API keys minted by ``bartizan serve --new-key`` live (hashed) in ``<home>/keys.yaml`` and are added to
  those of the config file.
- The audit trail defaults to SQLite at ``<home>/audit.db``; logs also go to ``<home>/logs/gateway.log``.
- Demo mode: when every tenant uses the built-in demo upstream and no key is configured, the gateway binds to
  loopback only and accepts exactly one API key, ``demo`` — a playground that cannot be reached from
  another machine and never runs without any key check.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bartizan.gateway.config import GatewayConfig, KeyEntry, cross_field_issues
from bartizan.gateway.keys import hash_key, main_keygen
from bartizan.home import default_audit_url, home_dir, keys_file
from bartizan.schema import SchemaError, SchemaIssue, key_path

DEMO_KEY = "demo"
LOOPBACK = "127.0.0.1"


def load_home_keys(env: Mapping[str, str] | None = None) -> list[KeyEntry]:
    path = keys_file(env)
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        return [KeyEntry.model_validate(item) for item in data]
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise SchemaError([SchemaIssue(str(path), None, "", f"invalid key file: {type(exc).__name__}")]) from None


def mint_key(tenant: str, key_id: str, env: Mapping[str, str] | None = None) -> tuple[str, Path]:
    """A new key for `tenant`, its hash appended to ``<home>/keys.yaml``; returns (key, file)."""
    key, _snippet = main_keygen(tenant, key_id)
    home_dir(env, create=True)
    path = keys_file(env)
    existing = load_home_keys(env)
    if any(k.id == key_id for k in existing):
        raise ValueError(f"key id {key_id!r} already exists in {path}")
    entries: list[dict[str, Any]] = [k.model_dump(exclude_none=True) for k in existing]
    entries.append({"id": key_id, "sha256": hash_key(key), "tenant": tenant})
    path.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return key, path


def apply_embedded_defaults(
    cfg: GatewayConfig, env: Mapping[str, str] | None = None
) -> tuple[GatewayConfig, list[str]]:
    """`cfg` with home keys added, the audit URL defaulted, and demo mode applied; plus notes for the log."""
    notes: list[str] = []
    data = cfg.model_dump()
    home_keys = load_home_keys(env)
    if home_keys:
        data["keys"] = data["keys"] + [k.model_dump() for k in home_keys]
        notes.append(f"{len(home_keys)} key(s) from {keys_file(env)}")
    if data["audit"]["url"] is None:
        data["audit"]["url"] = default_audit_url(env, create=True)
    all_demo = all(t["upstream"]["url"] == "demo" for t in data["tenants"].values())
    if all_demo and not data["keys"] and not data["allow_anonymous"] and "default" in data["tenants"]:
        data["keys"] = [{"id": "demo", "sha256": hash_key(DEMO_KEY), "tenant": "default"}]
        if data["host"] != LOOPBACK:
            notes.append(f"demo mode: binding {LOOPBACK} instead of {data['host']}")
        data["host"] = LOOPBACK
        notes.append("demo mode: demo upstream and no keys configured; accepting the API key 'demo' on loopback")
    out = GatewayConfig.model_validate(data)
    problems = cross_field_issues(out)
    if problems:
        raise SchemaError([SchemaIssue("keys", None, key_path(loc), msg) for loc, msg in problems])
    return out, notes
