"""`bartizan policy test POLICY_FILE TESTS_FILE`: run an A2AS agent policy against expected decisions.

Prints PASS or FAIL per test (a FAIL names the expected and the actual decision and policy ids, never the
arguments) and a summary line. Exit 0 when every test passes, `TESTS_FAILED` when one differs, POLICY_ERROR
when the policy or tests file is invalid (every problem with its file and line).
"""

from __future__ import annotations

import argparse
import sys

from bartizan.a2as.policies import AgentPolicy, run_policy_tests
from bartizan.cli.exitcodes import OK, POLICY_ERROR
from bartizan.schema import SchemaError

TESTS_FAILED = 6


def add_test_parser(policy_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``test`` under the ``policy`` command group."""
    p = policy_subparsers.add_parser("test", help="run an A2AS agent policy file against a tests file")
    p.add_argument("policy_file", help="A2AS agent policy YAML (version: 1, policies, enforce)")
    p.add_argument("tests_file", help="YAML list of {name, request, expect[, policy_ids]}")
    p.set_defaults(run=run_test)


def run_test(args: argparse.Namespace) -> int:
    try:
        policy = AgentPolicy.load(args.policy_file)
        outcomes = run_policy_tests(policy, args.tests_file)
    except SchemaError as exc:
        print(str(exc), file=sys.stderr)
        return POLICY_ERROR
    for outcome in outcomes:
        print(outcome.describe())
    failed = sum(not o.passed for o in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed — policy sha256 {policy.sha256[:16]}")
    return TESTS_FAILED if failed else OK
