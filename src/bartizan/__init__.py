"""bartizan: a security toolkit for applications and agents built on large language models.

Importing the package loads no model or rule file, opens no connection and changes no global state; the
public names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Finding",
    "Firewall",
    "Message",
    "Role",
    "ScanResult",
    "Status",
    "Verdict",
    "load_policy",
]

_LAZY = {
    "Firewall": "bartizan.pipeline",
    "load_policy": "bartizan.policy.loader",
    "Finding": "bartizan.types",
    "Message": "bartizan.types",
    "Role": "bartizan.types",
    "ScanResult": "bartizan.types",
    "Status": "bartizan.types",
    "Verdict": "bartizan.types",
}

if TYPE_CHECKING:
    from bartizan.pipeline import Firewall
    from bartizan.policy.loader import load_policy
    from bartizan.types import Finding, Message, Role, ScanResult, Status, Verdict


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bartizan' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
