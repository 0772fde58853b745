"""`bartizan audit verify|tail|keygen` against real databases."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import pytest

from bartizan.audit import AuditStore
from bartizan.cli import audit_cmd

from .conftest import make_record, run_sql


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bartizan")
    audit_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", *argv])
    code: int = args.run(args)
    return code


def test_verify_ok_then_tampered(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with AuditStore(url) as store:
        store.append_many([make_record(i) for i in range(1, 5)])
    assert _run("verify", "--url", url) == 0
    assert "ok: 4 rows" in capsys.readouterr().out
    run_sql(url, "DELETE FROM audit_log WHERE seq = 2")
    assert _run("verify", "--url", url) == audit_cmd.TAMPERED == 5
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "first bad seq 2" in out
    assert _run("verify", "--url", url, "--json") == 5
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_bad_seq"] == 2


def test_verify_with_chain_key_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    key = b"q" * 32
    with AuditStore(url, chain_key=key) as store:
        store.append(make_record(1))
    monkeypatch.setenv("BZ_TEST_CHAIN_KEY", base64.b64encode(key).decode())
    assert _run("verify", "--url", url, "--chain-key-env", "BZ_TEST_CHAIN_KEY") == 0
    assert _run("verify", "--url", url) == 5
    assert _run("verify", "--url", url, "--chain-key-env", "BZ_TEST_UNSET_VAR") == 2


def test_tail(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with AuditStore(url, capture_key=b"k" * 32) as store:
        store.append_many([make_record(i, captured_text="raw words") for i in range(1, 4)])
    assert _run("tail", "--url", url, "-n", "2", "--json") == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["seq"] for r in rows] == [3, 2] and rows[0]["captured"] is True
    assert "raw words" not in "".join(lines) and "capture" not in rows[0]
    assert _run("tail", "--url", url) == 0
    out = capsys.readouterr().out
    assert "req-1" in out and "pii.email" in out


def test_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.db"
    assert _run("verify", "--url", f"sqlite:///{missing}") == 3
    assert _run("tail", "--url", f"sqlite:///{missing}") == 3
    assert not missing.exists()
    assert "cannot open" in capsys.readouterr().err


def test_keygen(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("keygen") == 0
    assert len(base64.b64decode(capsys.readouterr().out.strip())) == 32
