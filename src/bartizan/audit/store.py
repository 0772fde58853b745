"""`AuditStore`: an append-only, hash-chained audit log in SQLite (default, WAL) or PostgreSQL (SQLAlchemy Core).

Appends serialise the chain across threads, processes and replicas: a process-local lock plus, in the database,
`BEGIN IMMEDIATE` (SQLite) or `pg_advisory_xact_lock` (PostgreSQL) held while the head is read, the rows are
inserted and the head is moved, all in one transaction. `verify()` reads one consistent snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from bartizan.audit import capture
from bartizan.audit.chain import GENESIS, canonical_json, chain_mode, head_mac, row_hash
from bartizan.audit.record import AuditError, AuditRecord, VerifyReport, audit_findings

LOG_TABLE = "audit_log"
HEAD_TABLE = "audit_head"
MAX_FIELD_CHARS = 1024
MAX_PROBLEMS = 100
# One advisory-lock id for the chain; derived from the table name so it is stable across versions and hosts.
_PG_LOCK_ID = int.from_bytes(hashlib.sha256(b"bartizan." + LOG_TABLE.encode()).digest()[:8], "big", signed=True)

_md = MetaData()
log_table = Table(
    LOG_TABLE,
    _md,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("route", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("verdict", Text, nullable=False),
    Column("surface", Text, nullable=False),
    Column("findings", Text, nullable=False),
    Column("detector_latency_ms", Text, nullable=False),
    Column("policy_hash", Text, nullable=False),
    Column("extra", Text, nullable=False),
    Column("capture", LargeBinary, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    Index("ix_audit_log_tenant_seq", "tenant", "seq"),
    Index("ix_audit_log_request_id", "request_id"),
)
head_table = Table(
    HEAD_TABLE,
    _md,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("mode", String(16), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
)
HASHED_COLUMNS = tuple(c.name for c in log_table.columns if c.name != "row_hash")
_AAD_COLUMNS = ("request_id", "tenant", "route", "direction", "surface", "ts_us")
_JSON_COLUMNS = ("findings", "detector_latency_ms", "extra")


def normalize_url(url: str) -> URL:
    """`postgres://` and `postgresql://` use psycopg 3; anything else is passed to SQLAlchemy as is."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return make_url(url)


def _clean(value: object) -> str:
    """Text a column can hold on every backend: no NULs, no lone surrogates, bounded length."""
    text = str(value).replace("\x00", "\ufffd")[:MAX_FIELD_CHARS]
    return text.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class PreparedRecord:
    """A record turned into column values (JSON serialised, capture encrypted), ready for the chain."""

    values: dict[str, Any]
    request_id: str


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _sqlite_on_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Writers take the write lock up front so two processes never both read the same head.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("bartizan_write") else "BEGIN")


class AuditStore:
    """Synchronous, thread-safe audit log. `capture_key` (32 bytes) enables encrypted capture of raw text;
    `chain_key` switches the chain from SHA-256 to HMAC-SHA256. `create=False` opens an existing log only."""

    def __init__(
        self,
        url: str = "sqlite:///bartizan-audit.db",
        *,
        capture_key: bytes | None = None,
        chain_key: bytes | None = None,
        create: bool = True,
    ) -> None:
        if capture_key is not None and len(capture_key) != capture.KEY_BYTES:
            raise ValueError("capture_key must be 32 bytes")
        self._capture_key = capture_key
        self._chain_key = chain_key or None
        self._mode = chain_mode(self._chain_key)
        self._lock = threading.RLock()
        self.url = normalize_url(url)
        self._pg = self.url.get_backend_name() == "postgresql"
        self._memory = False
        if self.url.get_backend_name() == "sqlite":
            db = self.url.database or ""
            self._memory = db in ("", ":memory:")
            if not create and not self._memory and not Path(db).is_file():
                raise AuditError(f"no audit database at {db}")
            kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
            if self._memory:
                kwargs["poolclass"] = StaticPool
            self._engine = create_engine(self.url, **kwargs)
            event.listen(self._engine, "connect", _sqlite_on_connect)
            event.listen(self._engine, "begin", _sqlite_on_begin)
        else:
            self._engine = create_engine(self.url, pool_pre_ping=True)
        try:
            self._init_schema(create)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def capture_enabled(self) -> bool:
        return self._capture_key is not None

    # -- schema -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._lock, self._engine.connect() as conn:
            conn.execution_options(bartizan_write=True)
            with conn.begin():
                if self._pg:
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_ID)))
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._lock if self._memory else contextlib.nullcontext(), self._engine.connect() as conn:
            if self._pg:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _init_schema(self, create: bool) -> None:
        if not create:
            names = set(inspect(self._engine).get_table_names())
            if LOG_TABLE not in names:
                raise AuditError(f"no {LOG_TABLE} table at {self.url.render_as_string(hide_password=True)}")
            return
        with self._write() as conn:
            _md.create_all(conn)
            has_head = conn.execute(select(head_table.c.id)).first() is not None
            if not has_head and conn.execute(select(log_table.c.seq).limit(1)).first() is None:
                mac = head_mac(self._mode, 0, GENESIS, self._chain_key)
                conn.execute(insert(head_table).values(id=1, mode=self._mode, seq=0, row_hash=GENESIS, mac=mac))

    # -- writing ------------------------------------------------------------------------------------------------

    def prepare(self, record: AuditRecord) -> PreparedRecord:
        """Validate and serialise a record (raises ValueError for values that cannot be stored, such as NaN)."""
        values: dict[str, Any] = {
            "ts_us": round(record.ts * 1_000_000),
            "request_id": _clean(record.request_id),
            "tenant": _clean(record.tenant),
            "route": _clean(record.route),
            "direction": record.direction,
            "verdict": record.verdict,
            "surface": _clean(record.surface),
            "findings": canonical_json(list(audit_findings(record.findings))),
            "detector_latency_ms": canonical_json({str(k): float(v) for k, v in record.detector_latency_ms.items()}),
            "policy_hash": _clean(record.policy_hash),
            "extra": canonical_json(record.extra),
            "capture": None,
        }
        if record.captured_text is not None and self._capture_key is not None:
            aad = capture.associated_data({k: values[k] for k in _AAD_COLUMNS})
            values["capture"] = capture.encrypt(self._capture_key, record.captured_text, aad)
        return PreparedRecord(values=values, request_id=values["request_id"])

    def append(self, record: AuditRecord) -> int:
        """Append one record; returns its sequence number."""
        return self.append_prepared([self.prepare(record)])[0]

    def append_many(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append records in one transaction (one lock, one head update); returns their sequence numbers."""
        return self.append_prepared([self.prepare(r) for r in records])

    def append_prepared(self, prepared: Sequence[PreparedRecord]) -> list[int]:
        if not prepared:
            return []
        with self._write() as conn:
            head = conn.execute(select(head_table).where(head_table.c.id == 1)).one_or_none()
            if head is None:
                raise AuditError(f"the {HEAD_TABLE} row is missing; run `bartizan audit verify`")
            if head.mode != self._mode:
                raise AuditError(f"the chain uses {head.mode} but this store is configured for {self._mode}")
            seq, prev = int(head.seq), str(head.row_hash)
            rows, seqs = [], []
            for p in prepared:
                seq += 1
                cols = {"seq": seq, **p.values, "prev_hash": prev}
                prev = row_hash(prev, cols, self._chain_key)
                rows.append({**cols, "row_hash": prev})
                seqs.append(seq)
            conn.execute(insert(log_table), rows)
            mac = head_mac(self._mode, seq, prev, self._chain_key)
            conn.execute(update(head_table).where(head_table.c.id == 1).values(seq=seq, row_hash=prev, mac=mac))
        return seqs

    # -- reading ------------------------------------------------------------------------------------------------

    def rows(self, limit: int = 100, tenant: str | None = None) -> list[dict[str, Any]]:
        """Newest first, without ciphertext (`captured` says whether a capture exists)."""
        cols = [c for c in log_table.columns if c.name != "capture"]
        q = select(*cols, log_table.c.capture.is_not(None).label("captured"))
        if tenant is not None:
            q = q.where(log_table.c.tenant == tenant)
        q = q.order_by(log_table.c.seq.desc()).limit(max(0, limit))
        with self._read() as conn:
            result = conn.execute(q).mappings().all()
        out = []
        for r in result:
            d = dict(r)
            d["ts"] = d.pop("ts_us") / 1_000_000
            d["captured"] = bool(d["captured"])
            for k in _JSON_COLUMNS:
                d[k] = json.loads(d[k])
            out.append(d)
        return out

    def decrypt_capture(self, seq: int) -> str | None:
        """The captured raw text of row `seq`, or None when none was captured. Raises CaptureError on a wrong
        key or an altered row, AuditError without a capture key or for an unknown seq."""
        if self._capture_key is None:
            raise AuditError("decrypting a capture needs the capture key")
        q = select(log_table.c.capture, *(log_table.c[k] for k in _AAD_COLUMNS)).where(log_table.c.seq == seq)
        with self._read() as conn:
            row = conn.execute(q).mappings().one_or_none()
        if row is None:
            raise AuditError(f"no audit row with seq {seq}")
        if row["capture"] is None:
            return None
        aad = capture.associated_data({k: row[k] for k in _AAD_COLUMNS})
        return capture.decrypt(self._capture_key, bytes(row["capture"]), aad)

    def verify(self, page_size: int = 1000) -> VerifyReport:
        """Walk the whole chain in one snapshot: gaps, broken links, edited rows and a stale or edited head."""
        problems: list[tuple[int, str]] = []
        count = hash_failures = 0
        last_seq, last_hash = 0, GENESIS
        with self._read() as conn:
            head = conn.execute(select(head_table).where(head_table.c.id == 1)).one_or_none()
            if head is not None and head.mode != self._mode:
                msg = (
                    f"the chain was written with {head.mode} but verify uses {self._mode} (chain key missing or extra)"
                )
                return VerifyReport(ok=False, rows=0, first_bad_seq=None, problems=[msg], head_seq=int(head.seq))
            while True:
                q = select(log_table).where(log_table.c.seq > last_seq).order_by(log_table.c.seq).limit(page_size)
                page = conn.execute(q).mappings().all()
                for r in page:
                    count += 1
                    seq = int(r["seq"])
                    if seq != last_seq + 1:
                        gap = f"seq {last_seq + 1}" if seq == last_seq + 2 else f"seq {last_seq + 1}..{seq - 1}"
                        problems.append((last_seq + 1, f"{gap} missing (deleted rows before seq {seq})"))
                    elif r["prev_hash"] != last_hash:
                        where = f"seq {last_seq}" if last_seq else "the genesis value"
                        problems.append((seq, f"seq {seq}: prev_hash does not match {where} (rows reordered?)"))
                    if row_hash(r["prev_hash"], {k: r[k] for k in HASHED_COLUMNS}, self._chain_key) != r["row_hash"]:
                        hash_failures += 1
                        problems.append((seq, f"seq {seq}: row_hash mismatch (row edited or moved)"))
                    last_seq, last_hash = seq, str(r["row_hash"])
                if len(page) < page_size:
                    break
        problems.extend(self._check_head(head, last_seq, last_hash))
        if count and hash_failures == count and self._chain_key:
            problems.append((1, "every row fails its hash: wrong chain key?"))
        return _report(problems, count, None if head is None else int(head.seq))

    def _check_head(self, head: Any, last_seq: int, last_hash: str) -> list[tuple[int, str]]:
        if head is None:
            return [(last_seq, f"the {HEAD_TABLE} row is missing")]
        hseq, out = int(head.seq), []
        if hseq > last_seq:
            gap = f"seq {hseq}" if hseq == last_seq + 1 else f"seq {last_seq + 1}..{hseq}"
            out.append((last_seq + 1, f"{gap} missing: the head is at seq {hseq} but rows end at seq {last_seq}"))
        elif hseq < last_seq:
            extra = f"seq {last_seq}" if last_seq == hseq + 1 else f"seq {hseq + 1}..{last_seq}"
            out.append((hseq + 1, f"{extra} beyond the head at seq {hseq} (head edited or rows injected)"))
        elif head.row_hash != last_hash:
            out.append((hseq, f"the head's hash does not match row seq {hseq} (head edited)"))
        if head.mac != head_mac(head.mode, hseq, head.row_hash, self._chain_key):
            out.append((max(hseq, last_seq), f"the head's MAC does not match (head at seq {hseq} edited)"))
        return out

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _report(problems: list[tuple[int, str]], rows: int, head_seq: int | None) -> VerifyReport:
    msgs = [m for _, m in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        msgs.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
    first = min((s for s, _ in problems), default=None)
    return VerifyReport(ok=not problems, rows=rows, first_bad_seq=first, problems=msgs, head_seq=head_seq)
