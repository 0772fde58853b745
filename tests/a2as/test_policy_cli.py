"""`bartizan policy test POLICY_FILE TESTS_FILE`: PASS/FAIL lines, exit codes, located file errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bartizan.cli.agent_policy_cmd import TESTS_FAILED, add_test_parser
from bartizan.cli.exitcodes import OK, POLICY_ERROR

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "a2as"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bartizan")
    sub = parser.add_subparsers(dest="command", required=True)
    policy = sub.add_parser("policy")
    add_test_parser(policy.add_subparsers(dest="policy_command", required=True))
    args = parser.parse_args(["policy", "test", *argv])
    code: int = args.run(args)
    return code


def test_examples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(str(EXAMPLES / "policies.yaml"), str(EXAMPLES / "policies.tests.yaml")) == OK
    out = capsys.readouterr().out
    assert "PASS mail outside the domain is denied" in out and "FAIL" not in out
    assert " 0 failed" in out


def test_a_differing_test_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = tmp_path / "t.yaml"
    tests.write_text(
        "- {name: wrong decision, request: {tool: email.delete_x}, expect: allow}\n"
        "- {name: wrong ids, request: {tool: email.delete_x}, expect: deny, policy_ids: [OTHER]}\n"
        '- {name: right, request: {tool: email.delete_x, arguments: \'{"secret": "s3cr3t"}\'}, expect: deny}\n',
        encoding="utf-8",
    )
    assert run(str(EXAMPLES / "policies.yaml"), str(tests)) == TESTS_FAILED
    out = capsys.readouterr().out
    assert "FAIL wrong decision: expected allow, got deny ['READ_ONLY']" in out
    assert "FAIL wrong ids: expected deny ['OTHER'], got deny ['READ_ONLY']" in out
    assert "PASS right" in out and "s3cr3t" not in out
    assert "1 passed, 2 failed" in out


def test_invalid_files_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_policy = tmp_path / "p.yaml"
    bad_policy.write_text("version: 1\npolicies: []\nenforce:\n  - {policy: X, deny_tools: [a]}\n", encoding="utf-8")
    assert run(str(bad_policy), str(EXAMPLES / "policies.tests.yaml")) == POLICY_ERROR
    assert f"{bad_policy}:4: enforce[0].policy: unknown policy id 'X'" in capsys.readouterr().err

    bad_tests = tmp_path / "t.yaml"
    bad_tests.write_text("- name: a\n  request: {tool: x}\n  expect: maybe\n", encoding="utf-8")
    assert run(str(EXAMPLES / "policies.yaml"), str(bad_tests)) == POLICY_ERROR
    assert f"{bad_tests}:3: [0].expect:" in capsys.readouterr().err

    assert run(str(EXAMPLES / "policies.yaml"), str(tmp_path / "missing.yaml")) == POLICY_ERROR
