"""`AsyncAuditWriter`: hands audit records from the event loop to one writer thread through a bounded queue.

`write()` only validates and enqueues, so the event loop never waits for the database. The thread appends in
batches (one transaction each). A database that is down is retried with backoff while the queue absorbs the
records; once the queue is full `write()` raises `AuditUnavailable`, so the gateway fails closed instead of
serving unaudited traffic. A record the database rejects for good (not a connection problem) is dropped after
being retried alone, counted in `dropped` and logged by request id only.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from bartizan.audit.record import AuditRecord, AuditUnavailable
from bartizan.audit.store import AuditStore, PreparedRecord

log = logging.getLogger("bartizan.audit")

_STOP = object()


class AsyncAuditWriter:
    """Queue + one writer thread. `healthy` is False while the last write attempt failed."""

    def __init__(self, store: AuditStore, max_queue: int = 10000, *, batch_size: int = 256) -> None:
        self.store = store
        self.healthy = True
        self.dropped = 0
        self.written = 0
        self._batch_size = max(1, batch_size)
        self._queue: queue.Queue[PreparedRecord | object] = queue.Queue(maxsize=max(1, max_queue))
        self._pending = 0  # enqueued and not yet written or dropped
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="bartizan-audit-writer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    async def write(self, record: AuditRecord, max_wait_s: float = 5.0) -> None:
        """Enqueue a record. A full queue is back-pressure: wait (without blocking the event loop) up to
        `max_wait_s` for room, so that requests slow down to what the database can record rather than go
        unrecorded; then raise AuditUnavailable. Also raises it when the writer is closed."""
        prepared = self.store.prepare(record)  # ValueError here, to the caller, for unstorable values
        deadline: float | None = None
        while True:
            with self._cond:
                if self._closed:
                    raise AuditUnavailable("the audit writer is closed")
                try:
                    self._queue.put_nowait(prepared)
                    self._pending += 1
                    return
                except queue.Full:
                    pass
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + max_wait_s
            if now >= deadline:
                raise AuditUnavailable(f"the audit queue stayed full ({self._queue.maxsize} records)")
            await asyncio.sleep(0.002)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every record enqueued so far is written (or dropped); TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while self._pending:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                raise TimeoutError(f"audit drain: {self._pending} records still pending")
            await asyncio.sleep(0.005)

    async def close(self, timeout: float = 10.0) -> None:
        """Drain, then stop the writer thread (the store stays open; its owner closes it)."""
        try:
            await self.drain(timeout)
        finally:
            with self._cond:
                self._closed = True
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join, timeout)

    # -- writer thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self._batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._write_batch(batch)  # type: ignore[arg-type]
                    return
                batch.append(nxt)
            self._write_batch(batch)  # type: ignore[arg-type]

    def _write_batch(self, batch: list[PreparedRecord]) -> None:
        delay = 0.05
        while True:
            try:
                self.store.append_prepared(batch)
            except (OperationalError, InterfaceError) as exc:  # database unreachable or locked: keep and retry
                if self.healthy:
                    log.error("audit write failed, retrying: %s", type(exc).__name__)
                self.healthy = False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except Exception as exc:
                self.healthy = False
                if len(batch) > 1:  # find the rejected record(s), keep the rest
                    for one in batch:
                        self._write_batch([one])
                    return
                self.dropped += 1
                log.error("audit record dropped (request_id=%s): %s", batch[0].request_id, type(exc).__name__)
                self._done(1)
                return
            self.healthy = True
            self.written += len(batch)
            self._done(len(batch))
            return

    def _done(self, n: int) -> None:
        with self._cond:
            self._pending -= n
