"""Tamper-evident audit trail of gateway decisions: hash-chained rows in SQLite or PostgreSQL.

Rows hold safe metadata only (ids, verdicts, rule ids, scores, masked evidence). Raw text is stored only when
capture is enabled, and then only AES-256-GCM encrypted. See `store.py` for the chain and `writer.py` for the
asyncio-facing queue.
"""

from __future__ import annotations

from bartizan.audit.capture import decode_key, generate_key, key_from_env
from bartizan.audit.record import (
    AuditError,
    AuditRecord,
    AuditUnavailable,
    CaptureError,
    VerifyReport,
    audit_findings,
)
from bartizan.audit.store import AuditStore, PreparedRecord, normalize_url
from bartizan.audit.writer import AsyncAuditWriter

__all__ = [
    "AsyncAuditWriter",
    "AuditError",
    "AuditRecord",
    "AuditStore",
    "AuditUnavailable",
    "CaptureError",
    "PreparedRecord",
    "VerifyReport",
    "audit_findings",
    "decode_key",
    "generate_key",
    "key_from_env",
    "normalize_url",
]
