"""Encrypted capture: off by default (raw text stored nowhere), on with a key (AES-256-GCM round trip)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.audit import AuditError, AuditStore, CaptureError, decode_key, generate_key, key_from_env

from .conftest import make_record, run_sql

SECRET_TEXT = "my card is 4111 1111 1111 1111, mail bob.canary-7f3a@example.org"
KEY = b"k" * 32


def _db_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.db"))


def test_capture_off_stores_no_raw_text(url: str, tmp_path: Path) -> None:
    with AuditStore(url) as store:
        assert not store.capture_enabled
        seq = store.append(make_record(1, captured_text=SECRET_TEXT))
        assert store.rows()[0]["captured"] is False
        assert store.verify().ok
    rows = run_sql(url, "SELECT * FROM audit_log")
    assert len(rows) == 1 and rows[0]._mapping["capture"] is None
    assert "bob.canary" not in repr(rows)
    if url.startswith("sqlite"):
        raw = _db_bytes(tmp_path)
        assert raw and b"bob.canary" not in raw and b"4111" not in raw
    with AuditStore(url, capture_key=KEY) as keyed:
        assert keyed.decrypt_capture(seq) is None


def test_capture_on_round_trip(url: str, tmp_path: Path) -> None:
    with AuditStore(url, capture_key=KEY) as store:
        seq = store.append(make_record(1, captured_text=SECRET_TEXT))
        plain = store.append(make_record(2))
        assert store.rows()[1]["captured"] is True
        assert store.decrypt_capture(seq) == SECRET_TEXT
        assert store.decrypt_capture(plain) is None
        with pytest.raises(AuditError, match="seq 99"):
            store.decrypt_capture(99)
        assert store.verify().ok
    if url.startswith("sqlite"):
        assert b"bob.canary" not in _db_bytes(tmp_path)
    with AuditStore(url, capture_key=b"x" * 32) as wrong, pytest.raises(CaptureError, match="wrong key"):
        wrong.decrypt_capture(seq)
    with AuditStore(url) as keyless, pytest.raises(AuditError, match="capture key"):
        keyless.decrypt_capture(seq)


def test_ciphertext_is_bound_to_its_row(url: str) -> None:
    """A ciphertext moved onto another row does not decrypt (associated data), and the chain flags the edit."""
    with AuditStore(url, capture_key=KEY) as store:
        store.append(make_record(1, captured_text=SECRET_TEXT))
        store.append(make_record(2, captured_text="other"))
    run_sql(url, "UPDATE audit_log SET capture = (SELECT capture FROM audit_log WHERE seq = 1) WHERE seq = 2")
    with AuditStore(url, capture_key=KEY) as store:
        with pytest.raises(CaptureError):
            store.decrypt_capture(2)
        report = store.verify()
        assert not report.ok and report.first_bad_seq == 2


def test_capture_key_must_be_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AuditStore(f"sqlite:///{tmp_path / 'a.db'}", capture_key=b"short")


def test_key_decoding() -> None:
    key = generate_key()
    assert len(decode_key(key, name="K")) == 32
    assert decode_key(base64.urlsafe_b64encode(KEY).decode().rstrip("="), name="K") == KEY
    with pytest.raises(ValueError, match="MY_KEY is not valid base64") as err:
        decode_key("not base64!!", name="MY_KEY")
    assert "not base64!!" not in str(err.value)
    with pytest.raises(ValueError, match="32 bytes, got 5"):
        decode_key(base64.b64encode(b"short").decode(), name="K")
    assert key_from_env("K", {"K": key}) == base64.b64decode(key)
    assert len(key_from_env("K", {"K": base64.b64encode(b"z" * 16).decode()}, min_bytes=16, max_bytes=None)) == 16
    with pytest.raises(ValueError, match="K is not set"):
        key_from_env("K", {})


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64))
def test_decode_key_accepts_only_base64_of_the_right_size(raw: bytes) -> None:
    encoded = base64.b64encode(raw).decode()
    if len(raw) == 32:
        assert decode_key(encoded, name="K") == raw
    else:
        with pytest.raises(ValueError):
            decode_key(encoded, name="K")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_decode_key_never_echoes_garbage(value: str) -> None:
    try:
        decode_key(value, name="K")
    except ValueError as exc:
        assert value.strip() == "" or value not in str(exc) or value in "K is not valid base64"
