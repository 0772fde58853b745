"""Where bartizan keeps its state on the embedded default: the audit database, API keys and logs.

``$BARTIZAN_HOME`` when set, else the user's data directory (``$XDG_DATA_HOME/bartizan``, by default
``~/.local/share/bartizan``). The directory is created on first use, readable by its owner only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def home_dir(env: Mapping[str, str] | None = None, *, create: bool = False) -> Path:
    e = os.environ if env is None else env
    if e.get("BARTIZAN_HOME"):
        path = Path(e["BARTIZAN_HOME"]).expanduser()
    else:
        data = Path(e["XDG_DATA_HOME"]).expanduser() if e.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
        path = data / "bartizan"
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def default_audit_url(env: Mapping[str, str] | None = None, *, create: bool = False) -> str:
    """The embedded audit trail: SQLite in the home directory."""
    return f"sqlite:///{home_dir(env, create=create) / 'audit.db'}"


def keys_file(env: Mapping[str, str] | None = None) -> Path:
    """Hashed API keys minted by `bartizan serve --new-key` (YAML list of {id, sha256, tenant})."""
    return home_dir(env) / "keys.yaml"
