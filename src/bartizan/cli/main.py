"""`bartizan` command line: one module per command group, dispatched from here.

Exit codes (stable, documented in the README):
  0  allowed / success          10 flagged
  1  internal error             11 redacted
  2  usage error                12 blocked
  3  input error (unreadable, binary, invalid UTF-8, malformed lines)
  4  invalid policy or configuration; certificate invalid or not verified
  5  audit trail tampered (`bartizan audit verify`)
  6  a policy test failed (`bartizan policy test`)
  7  a red-team --fail-under threshold was missed (`bartizan redteam`)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bartizan import __version__
from bartizan.cli import (
    agent_cmds,
    attacks_cmd,
    audit_cmd,
    cert_cmd,
    detectors_cmd,
    eval_cmd,
    policy_cmd,
    redteam_cmd,
    scan_cmd,
    serve_cmd,
)
from bartizan.cli.exitcodes import INTERNAL_ERROR, POLICY_ERROR
from bartizan.policy.loader import PolicyError

COMMANDS = (
    scan_cmd,
    detectors_cmd,
    policy_cmd,
    eval_cmd,
    attacks_cmd,
    serve_cmd,
    audit_cmd,
    cert_cmd,
    agent_cmds,
    redteam_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bartizan",
        description="Security toolkit for LLM applications and agents.",
        epilog="Exit codes: 0 allow, 10 flag, 11 redact, 12 block, 2 usage, 3 input error, 4 bad policy, config or "
        "certificate, "
        "5 audit trail tampered, 6 policy test failed, 7 red-team threshold missed, 1 internal.",
    )
    parser.add_argument("--version", action="version", version=f"bartizan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except PolicyError as exc:
        print(f"bartizan: invalid policy:\n{exc}", file=sys.stderr)
        return POLICY_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # last resort: say what broke, without echoing input content
        print(f"bartizan: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
