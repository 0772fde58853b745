"""AuditStore on real SQLite and real PostgreSQL: appends, reads, the chain and its tamper detection."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bartizan.audit import AuditError, AuditStore, audit_findings
from bartizan.types import Finding, Span

from .conftest import make_record, run_sql

CHAIN_KEY = b"c" * 32


def _fill(url: str, n: int = 6, chain_key: bytes | None = None) -> None:
    with AuditStore(url, chain_key=chain_key) as store:
        assert store.append(make_record(1)) == 1
        assert store.append_many([make_record(i) for i in range(2, n + 1)]) == list(range(2, n + 1))


def test_append_rows_and_verify(url: str) -> None:
    with AuditStore(url) as store:
        assert store.append_many([]) == []
        seqs = [store.append(make_record(i, tenant="acme" if i % 2 else "other")) for i in range(1, 6)]
        assert seqs == [1, 2, 3, 4, 5]
        rows = store.rows(limit=3)
        assert [r["seq"] for r in rows] == [5, 4, 3]
        assert [r["seq"] for r in store.rows(tenant="other")] == [4, 2]
        row = rows[0]
        assert "capture" not in row and row["captured"] is False
        assert row["findings"][0]["rule_id"] == "pii.email"
        assert "spans" not in row["findings"][0]  # offsets into text the log never holds are left out
        assert row["detector_latency_ms"] == {"pii": 0.25, "secrets": 0.125}
        assert row["extra"]["model"] == "demo-echo"
        assert row["prev_hash"] == rows[1]["row_hash"]
        report = store.verify()
        assert report.ok and report.rows == 5 and report.head_seq == 5 and report.problems == []
    with AuditStore(url) as reopened:  # the chain continues across store instances
        assert reopened.append(make_record(6)) == 6
        assert reopened.verify().ok


def test_findings_objects_are_projected(tmp_path: Path) -> None:
    finding = Finding("secrets", "secret", 1.0, (Span(0, 4),), evidence="AKIA…(masked)", rule_id="aws")
    with AuditStore(f"sqlite:///{tmp_path / 'a.db'}") as store:
        store.append(make_record(1, findings=audit_findings([finding])))
        store.append(make_record(2, findings=(finding.to_dict(),)))
        first, second = store.rows()
        assert (
            first["findings"]
            == second["findings"]
            == [
                {
                    "detector": "secrets",
                    "category": "secret",
                    "score": 1.0,
                    "evidence": "AKIA…(masked)",
                    "rule_id": "aws",
                    "view": "original",
                    "atlas": [],
                    "owasp": [],
                }
            ]
        )


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        ("UPDATE audit_log SET verdict = 'allow' WHERE seq = 3", 3),
        ("UPDATE audit_log SET findings = '[]' WHERE seq = 6", 6),
        ("DELETE FROM audit_log WHERE seq = 4", 4),
        ("DELETE FROM audit_log WHERE seq = 1", 1),
        ("DELETE FROM audit_log WHERE seq = 6", 6),
        ("DELETE FROM audit_log WHERE seq >= 5", 5),
        ("UPDATE audit_head SET row_hash = '" + "ab" * 32 + "'", 6),
        ("UPDATE audit_head SET seq = 4", 5),
    ],
)
def test_tampering_is_detected(url: str, tamper: str, bad_seq: int) -> None:
    _fill(url)
    run_sql(url, tamper)
    with AuditStore(url) as store:
        report = store.verify()
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert any(f"seq {bad_seq}" in p for p in report.problems), report.problems


def test_swapped_rows_are_detected(url: str) -> None:
    _fill(url)
    run_sql(
        url, "UPDATE audit_log SET seq = -seq WHERE seq IN (3, 4)", "UPDATE audit_log SET seq = 7 + seq WHERE seq < 0"
    )
    assert [r[0] for r in run_sql(url, "SELECT request_id FROM audit_log ORDER BY seq")][2:4] == ["req-4", "req-3"]
    with AuditStore(url) as store:
        report = store.verify()
    assert not report.ok and report.first_bad_seq == 3
    assert any("seq 3" in p for p in report.problems)


def test_chain_key_catches_a_rewritten_tail(url: str) -> None:
    """With a chain key, removing the newest row and rolling the head back to the previous row is caught."""
    _fill(url, chain_key=CHAIN_KEY)
    run_sql(
        url,
        "UPDATE audit_head SET seq = 5, row_hash = (SELECT row_hash FROM audit_log WHERE seq = 5)",
        "DELETE FROM audit_log WHERE seq = 6",
    )
    with AuditStore(url, chain_key=CHAIN_KEY) as store:
        report = store.verify()
    assert not report.ok and report.first_bad_seq == 5
    assert any("MAC" in p for p in report.problems)


def test_chain_key_mismatch(url: str) -> None:
    _fill(url, n=3, chain_key=CHAIN_KEY)
    with AuditStore(url, chain_key=CHAIN_KEY) as store:
        assert store.verify().ok
    with AuditStore(url) as keyless:
        report = keyless.verify()
        assert not report.ok and "hmac-sha256" in report.problems[0]
        with pytest.raises(AuditError, match="hmac-sha256"):
            keyless.append(make_record(9))  # never mix two chain modes in one log
    with AuditStore(url, chain_key=b"w" * 32) as wrong:
        report = wrong.verify()
        assert not report.ok and report.first_bad_seq == 1
        assert any("wrong chain key" in p for p in report.problems)


def test_create_false_needs_an_existing_log(url: str, tmp_path: Path) -> None:
    with pytest.raises(AuditError):
        AuditStore(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    assert not (tmp_path / "missing.db").exists()
    if url.startswith("postgresql"):
        with pytest.raises(AuditError, match="audit_log"):
            AuditStore(url, create=False)
    _fill(url, n=2)
    with AuditStore(url, create=False) as store:
        assert store.verify().rows == 2


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_concurrent_appends_keep_one_chain(url: str, shared: bool) -> None:
    """4 threads x 50 appends; with a store per thread they serialise only through the database lock."""
    first = AuditStore(url)
    stores = [first] * 4 if shared else [first, *(AuditStore(url) for _ in range(3))]
    seqs: list[int] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def work(k: int) -> None:
        try:
            got = [stores[k].append(make_record(k * 100 + i)) for i in range(50)]
            with guard:
                seqs.extend(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert sorted(seqs) == list(range(1, 201))
        report = first.verify()
        assert report.ok and report.rows == 200, report.problems
    finally:
        for s in set(stores):
            s.close()


def test_url_forms() -> None:
    from bartizan.audit import normalize_url

    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_in_memory_sqlite_is_shared_across_threads() -> None:
    with AuditStore("sqlite://") as store:
        t = threading.Thread(target=lambda: store.append(make_record(1)))
        t.start()
        t.join()
        assert store.append(make_record(2)) == 2
        assert store.verify().ok
