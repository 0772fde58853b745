"""`RunStore`: red-team runs and their attempts in one SQLite file, written as they happen.

Each attempt is committed the moment it is added (WAL journal), so a run that is killed loses at most the probes
in flight, and `done_probe_ids` tells a resumed run what to skip. ``(run_id, probe_id)`` is the primary key of
``attempts``: a probe is stored at most once per run. Attempts are stored as the JSON of `Attempt.to_json`, with
the columns that queries need (status, verdict) alongside; the implicit rowid keeps the order of arrival.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bartizan.redteam.attempts import Attempt

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    config TEXT NOT NULL,
    suite TEXT NOT NULL DEFAULT '',
    target TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    probe_id TEXT NOT NULL,
    status TEXT NOT NULL,
    verdict TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, probe_id)
);
"""


class UnknownRun(KeyError):
    """A run id that the store does not hold."""


@dataclass(frozen=True)
class RunInfo:
    """One row of ``runs``: when a run was started and with what configuration."""

    run_id: str
    created: float
    config: dict[str, Any]
    suite: str
    target: str


class RunStore:
    """A SQLite store of runs and attempts; safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version not in (0, SCHEMA_VERSION):
            raise ValueError(f"{self.path}: run store schema version {version}, expected {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # --- life cycle ------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- runs ------------------------------------------------------------------------------------
    def start_run(self, config: Mapping[str, Any], *, run_id: str | None = None) -> str:
        """Record a new run; `config` must be JSON-serialisable (its ``suite`` and ``target`` keys are indexed)."""
        rid = run_id or f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        cfg = json.dumps(dict(config), sort_keys=True)
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (run_id, created, config, suite, target) VALUES (?, ?, ?, ?, ?)",
                (rid, time.time(), cfg, str(config.get("suite", "")), str(config.get("target", ""))),
            )
        return rid

    def resume(self, run_id: str) -> RunInfo:
        """The stored run `run_id` (to continue it); raises `UnknownRun` when there is none."""
        with self._lock:
            row = self._db.execute(
                "SELECT run_id, created, config, suite, target FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise UnknownRun(f"no run {run_id!r} in {self.path}")
        return _info(row)

    def runs(self) -> list[RunInfo]:
        """Every run, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, created, config, suite, target FROM runs ORDER BY created DESC, run_id DESC"
            ).fetchall()
        return [_info(r) for r in rows]

    # --- attempts --------------------------------------------------------------------------------
    def add(self, run_id: str, attempt: Attempt) -> bool:
        """Store `attempt` and commit at once; False (nothing written) when the probe is already stored for the run."""
        data = json.dumps(attempt.to_json(), sort_keys=True, default=str)
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO attempts (run_id, probe_id, status, verdict, data) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (run_id, probe_id) DO NOTHING",
                    (run_id, attempt.probe_id, attempt.status, attempt.verdict, data),
                )
            except sqlite3.IntegrityError as exc:  # the foreign key: no such run
                raise UnknownRun(f"no run {run_id!r} in {self.path}") from exc
        return cur.rowcount == 1

    def done_probe_ids(self, run_id: str) -> set[str]:
        """The probes already stored for `run_id` (errors included: rerun them with a new run or `forget`)."""
        with self._lock:
            rows = self._db.execute("SELECT probe_id FROM attempts WHERE run_id = ?", (run_id,)).fetchall()
        return {r[0] for r in rows}

    def attempts(self, run_id: str) -> list[Attempt]:
        """The run's attempts in the order they were stored."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM attempts WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
        return [Attempt.from_json(json.loads(r[0])) for r in rows]

    def forget(self, run_id: str, probe_ids: set[str] | None = None, *, status: str | None = None) -> int:
        """Delete stored attempts (all, the given probes, or those with `status`) so a resume redoes them."""
        sql, params = "DELETE FROM attempts WHERE run_id = ?", [run_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        with self._lock:
            if probe_ids is None:
                return int(self._db.execute(sql, params).rowcount)
            n = 0
            for pid in probe_ids:
                n += int(self._db.execute(sql + " AND probe_id = ?", [*params, pid]).rowcount)
            return n


def _info(row: tuple[Any, ...]) -> RunInfo:
    return RunInfo(run_id=row[0], created=float(row[1]), config=json.loads(row[2]), suite=row[3], target=row[4])
