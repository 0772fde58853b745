"""`bartizan policy check FILE`: validate a firewall policy file; errors name the line and the key.
`bartizan policy test POLICY TESTS`: run an agent policy's unit tests (see `bartizan.cli.agent_policy_cmd`)."""

from __future__ import annotations

import argparse
import sys

from bartizan.cli.exitcodes import OK, POLICY_ERROR
from bartizan.policy.loader import PolicyError, load_policy
from bartizan.types import Role


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("policy", help="work with policy files")
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate a policy file (default: the built-in policy)")
    check.add_argument("file", nargs="?", help="policy YAML file")
    check.set_defaults(run=run_check)
    from bartizan.cli.agent_policy_cmd import add_test_parser

    add_test_parser(psub)  # `bartizan policy test AGENT_POLICY TESTS`: codified (Cedar) tool-call policies


def run_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return POLICY_ERROR
    where = args.file or "built-in default policy"
    print(f"{where}: ok — policy {policy.name!r}, sha256 {policy.fingerprint()[:16]}")
    for role in Role:
        names = [n for n, d in policy.detectors.items() if d.enabled and role in d.roles]
        print(f"  {role.value:<9} {', '.join(names) if names else '(nothing scanned)'}")
    return OK
