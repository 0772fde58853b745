"""Property tests: any text in any field is stored, read back (cleaned) and keeps the chain verifiable."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bartizan.audit import AuditStore
from bartizan.audit.chain import GENESIS, row_hash

from .conftest import make_record

_text = st.text(max_size=30)  # includes NULs, lone surrogates and astral characters
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request_id=_text,
    tenant=_text,
    surface=_text,
    evidence=_text,
    extra=st.dictionaries(_text, _json, max_size=3),
    latency=st.dictionaries(_text, st.floats(0, 1e6), max_size=3),
    ts=st.floats(0, 4e9),
)
def test_any_values_round_trip_and_verify(
    request_id: str,
    tenant: str,
    surface: str,
    evidence: str,
    extra: dict[str, object],
    latency: dict[str, float],
    ts: float,
) -> None:
    findings = ({"detector": "d", "category": "c", "score": 0.5, "evidence": evidence},)
    record = make_record(
        1,
        request_id=request_id,
        tenant=tenant,
        surface=surface,
        findings=findings,
        extra=extra,
        detector_latency_ms=latency,
        ts=ts,
    )
    with AuditStore("sqlite://") as store:
        store.append(record)
        store.append(record)
        (row, _) = store.rows(limit=2)
        assert store.verify().ok
    assert abs(row["ts"] - ts) <= 1e-6
    assert row["findings"][0]["evidence"] == evidence
    assert row["detector_latency_ms"] == latency
    if "\x00" not in request_id and not any(0xD800 <= ord(c) <= 0xDFFF for c in request_id):
        assert row["request_id"] == request_id


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "seq"]), st.integers() | _text | st.binary(max_size=8)), st.data()
)
def test_row_hash_commits_to_every_column(columns: dict[str, object], data: st.DataObject) -> None:
    base = row_hash(GENESIS, columns, None)
    assert base == row_hash(GENESIS, dict(reversed(list(columns.items()))), None)  # key order is irrelevant
    assert base != row_hash(GENESIS, columns, b"key")
    assert base != row_hash("1" * 64, columns, None)
    if columns:
        key = data.draw(st.sampled_from(sorted(columns)))
        changed = {**columns, key: repr(columns[key]) + "x"}
        assert row_hash(GENESIS, changed, None) != base
