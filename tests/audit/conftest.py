"""Fixtures for the audit tests: a SQLite file under tmp_path and a fresh PostgreSQL database per session.

PostgreSQL is never skipped: when nothing answers, the tests fail and say how to start it (CI runs
`.ci/services.sh`). The URL comes from BARTIZAN_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from bartizan.audit import AuditRecord, normalize_url

PG_URL = os.environ.get("BARTIZAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[URL]:
    """A database `bz_test_<random>` created for this run and dropped (WITH FORCE) afterwards."""
    admin = normalize_url(PG_URL)
    name = f"bz_test_{secrets.token_hex(6)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL at {admin.render_as_string(hide_password=True)} is not reachable "
            f"({type(exc).__name__}); run .ci/services.sh or set BARTIZAN_TEST_POSTGRES_URL"
        )
    try:
        yield admin.set(database=name)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for each backend; the PostgreSQL tables are dropped after each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    pg: URL = request.getfixturevalue("pg_database")
    yield pg.render_as_string(hide_password=False)
    run_sql(
        pg.render_as_string(hide_password=False), "DROP TABLE IF EXISTS audit_log", "DROP TABLE IF EXISTS audit_head"
    )


def run_sql(url: str, *statements: str) -> list[Any]:
    """Execute raw SQL as a tamperer with direct database access would (results of the last statement)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            result: list[Any] = []
            for stmt in statements:
                res = conn.execute(text(stmt))
                result = list(res.all()) if res.returns_rows else []
            return result
    finally:
        engine.dispose()


def make_record(i: int = 0, *, tenant: str = "acme", captured_text: str | None = None, **kw: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "request_id": f"req-{i}",
        "tenant": tenant,
        "route": "/v1/chat/completions",
        "direction": "input",
        "verdict": "redact" if i % 3 == 0 else "allow",
        "findings": (
            {
                "detector": "pii",
                "category": "pii",
                "rule_id": "pii.email",
                "score": 0.9,
                "evidence": "e***@***.com",
                "view": "original",
                "atlas": ["AML.T0057"],
                "owasp": ["LLM02:2025"],
                "spans": [[0, 5, "EMAIL"]],
            },
        ),
        "detector_latency_ms": {"pii": 0.25, "secrets": 0.125},
        "policy_hash": "f" * 16,
        "surface": f"messages[{i}].content",
        "extra": {"model": "demo-echo", "key_id": "k1", "role": "user"},
        "captured_text": captured_text,
    }
    fields.update(kw)
    return AuditRecord(**fields)
