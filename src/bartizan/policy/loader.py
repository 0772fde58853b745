"""Load and check policy files; every error names the file, the line and the key."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from bartizan.detectors.registry import Registry, default_registry
from bartizan.policy.schema import Policy
from bartizan.schema import SchemaError, SchemaIssue, YamlDoc, validate


class PolicyError(SchemaError):
    """A policy file that is not valid YAML, does not match the schema, or names unknown detectors."""


def load_policy_text(text: str, source: str = "<policy>", registry: Registry | None = None) -> Policy:
    registry = registry or default_registry
    try:
        doc = YamlDoc(text, source)
        policy = validate(Policy, doc)
    except SchemaError as exc:
        raise PolicyError(exc.issues) from None
    issues: list[SchemaIssue] = []
    known = set(registry.names())
    for name, det in policy.detectors.items():
        if name not in known:
            issues.append(doc.issue(("detectors", name), f"unknown detector (known: {', '.join(sorted(known))})"))
            continue
        spec = registry.get(name)
        try:
            spec.config_schema.model_validate(det.config)
        except ValidationError as exc:
            issues.extend(doc.issues_from(exc, ("detectors", name, "config")))
        for cat in sorted(set(det.categories) - set(spec.categories)) if spec.categories else ():
            issues.append(
                doc.issue(
                    ("detectors", name, "categories", cat), f"unknown category (known: {', '.join(spec.categories)})"
                )
            )
    if issues:
        raise PolicyError(issues)
    return policy


def load_policy(path: str | Path | None = None, registry: Registry | None = None) -> Policy:
    """A policy from a YAML file, or the built-in default when `path` is None."""
    if path is None:
        return default_policy()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise PolicyError([SchemaIssue(str(p), None, "", f"cannot read policy: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([SchemaIssue(str(p), None, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return load_policy_text(text, str(p), registry)


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    text = resources.files("bartizan.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    return load_policy_text(text, "bartizan/policy/default.yaml")
