"""AsyncAuditWriter with a real SQLite database: batching, back-pressure, failure and recovery."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from bartizan.audit import AsyncAuditWriter, AuditStore, AuditUnavailable

from .conftest import make_record


async def _until(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_writes_are_batched_and_chained(url: str) -> None:
    async def main() -> None:
        with AuditStore(url) as store:
            writer = AsyncAuditWriter(store, max_queue=1000)
            for i in range(300):
                await writer.write(make_record(i))
            await writer.drain(10)
            assert writer.pending == 0 and writer.written == 300 and writer.healthy
            await writer.close()
            with pytest.raises(AuditUnavailable, match="closed"):
                await writer.write(make_record(1))
            report = store.verify()
            assert report.ok and report.rows == 300
            assert {r["request_id"] for r in store.rows(limit=300)} == {f"req-{i}" for i in range(300)}

    asyncio.run(main())


def test_full_queue_raises_then_recovers(tmp_path: Path) -> None:
    """Another process holds the SQLite write lock: the queue fills, write() fails closed, then everything lands."""
    db = tmp_path / "audit.db"

    async def main() -> None:
        with AuditStore(f"sqlite:///{db}") as store:
            blocker = sqlite3.connect(db, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            writer = AsyncAuditWriter(store, max_queue=3)
            await writer.write(make_record(0))
            await _until(lambda: writer._queue.qsize() == 0)  # the thread took it and waits for the lock
            for i in range(1, 4):
                await writer.write(make_record(i))
            with pytest.raises(AuditUnavailable, match="full"):
                await writer.write(make_record(4))
            with pytest.raises(TimeoutError):
                await writer.drain(0.05)
            blocker.execute("ROLLBACK")
            blocker.close()
            await writer.drain(10)
            await writer.close()
            assert store.verify().rows == 4

    asyncio.run(main())


def test_unhealthy_while_the_database_fails(tmp_path: Path) -> None:
    """A missing table (transient OperationalError) keeps the record queued and healthy False until it is back."""
    db = tmp_path / "audit.db"

    async def main() -> None:
        with AuditStore(f"sqlite:///{db}") as store:
            writer = AsyncAuditWriter(store)
            await writer.write(make_record(0))
            await writer.drain()
            admin = sqlite3.connect(db, isolation_level=None)
            admin.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
            await writer.write(make_record(1))
            await _until(lambda: not writer.healthy)
            assert writer.pending == 1
            admin.execute("ALTER TABLE audit_log_away RENAME TO audit_log")
            admin.close()
            await writer.drain(10)
            assert writer.healthy and writer.dropped == 0
            await writer.close()
            assert store.verify().rows == 2

    asyncio.run(main())


def test_a_rejected_record_is_dropped_and_counted(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"

    async def main() -> None:
        with AuditStore(f"sqlite:///{db}") as store:
            admin = sqlite3.connect(db, isolation_level=None)
            admin.execute("DELETE FROM audit_head")  # appends now fail for good (AuditError)
            admin.close()
            writer = AsyncAuditWriter(store)
            await writer.write(make_record(0))
            await writer.drain(10)
            assert writer.dropped == 1 and not writer.healthy
            await writer.close()

    asyncio.run(main())


def test_unstorable_values_fail_at_write() -> None:
    async def main() -> None:
        with AuditStore("sqlite://") as store:
            writer = AsyncAuditWriter(store)
            with pytest.raises(ValueError):
                await writer.write(make_record(0, detector_latency_ms={"pii": float("nan")}))
            assert writer.pending == 0
            await writer.close()

    asyncio.run(main())


def test_record_validation() -> None:
    with pytest.raises(ValueError, match="direction"):
        make_record(0, direction="sideways")
    with pytest.raises(ValueError, match="verdict"):
        make_record(0, verdict="maybe")
    assert "captured_text" not in repr(make_record(0, captured_text="secret"))
