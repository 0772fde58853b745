"""`bartizan mcp-proxy`: put the agent tool-call firewall in front of an MCP server (stdio).

    bartizan mcp-proxy --cert signed.yaml --issuer issuer.pub --policy policies.yaml -- python server.py

The proxy is itself an MCP server on stdin/stdout: point the agent's MCP client at this command instead of
the server's. Tools the certificate does not grant are hidden and refused, every call is decided by the
Cedar policy (with "untrusted content has entered this session" once any result came back), and results are
scanned by the firewall.
"""

from __future__ import annotations

import argparse
import sys

from bartizan.cli.exitcodes import POLICY_ERROR, USAGE_ERROR


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mcp-proxy", help="firewall an MCP server's tools (stdio proxy)")
    p.add_argument("--cert", help="behavior certificate (deny by default)")
    p.add_argument("--issuer", action="append", default=[], help="trusted issuer public key (pin); repeatable")
    p.add_argument("--allow-unsigned", action="store_true", help="development only: accept an unsigned certificate")
    p.add_argument("--policy", help="codified policy file (Cedar-enforced rules)")
    p.add_argument("--firewall-policy", help="firewall policy for scanning tool results (default: built-in)")
    p.add_argument("--agent", default="agent")
    p.add_argument("server", nargs=argparse.REMAINDER, help="-- command that starts the real MCP server")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    command = [c for c in args.server if c != "--"] if args.server else []
    if not command:
        print("bartizan mcp-proxy: give the server command after --", file=sys.stderr)
        return USAGE_ERROR
    from bartizan.a2as.certificates import CertificateError, load_certificate, load_issuer, verify
    from bartizan.a2as.mcp_proxy import run_proxy
    from bartizan.a2as.policies import AgentPolicy
    from bartizan.agent.gate import GuardGate
    from bartizan.agent.guard import AgentGuard
    from bartizan.pipeline import Firewall
    from bartizan.schema import SchemaError

    try:
        cert = load_certificate(args.cert) if args.cert else None
        if cert is not None:
            check = verify(cert, [load_issuer(v) for v in args.issuer])
            if check.status != "verified" and not (check.status == "unsigned" and args.allow_unsigned):
                print(f"bartizan mcp-proxy: certificate {check.status}: {check.reason}", file=sys.stderr)
                return POLICY_ERROR
        policy = AgentPolicy.load(args.policy) if args.policy else None
    except (CertificateError, SchemaError, OSError) as exc:
        print(f"bartizan mcp-proxy: {exc}", file=sys.stderr)
        return POLICY_ERROR
    firewall = Firewall(args.firewall_policy)
    guard = AgentGuard(certificate=cert, policy=policy, firewall=firewall, agent=args.agent)
    run_proxy(command, GuardGate(guard), firewall)
    return 0
