"""`bartizan serve`: the OpenAI-compatible security gateway; `bartizan serve --new-key TENANT` mints a key."""

from __future__ import annotations

import argparse
import os
import sys

from bartizan.cli.exitcodes import OK, POLICY_ERROR, USAGE_ERROR


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the OpenAI-compatible gateway",
        description="Proxy /v1/chat/completions, /v1/responses, /v1/embeddings and /v1/models to an upstream, "
        "scanning every surface with the tenant's policy. Configuration: --config FILE (YAML), then environment "
        "(BARTIZAN_HOST, BARTIZAN_PORT, BARTIZAN_UPSTREAM_URL, BARTIZAN_UPSTREAM_API_KEY_ENV, BARTIZAN_AUDIT_URL, "
        "BARTIZAN_REDIS_URL, BARTIZAN_ALLOW_ANONYMOUS), then these flags.",
    )
    p.add_argument("--config", help="gateway YAML file")
    p.add_argument("--upstream", help="upstream base URL for tenant 'default', or 'demo' for the built-in demo model")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--audit-url", help="sqlite:///FILE (default) or postgresql://...")
    p.add_argument("--allow-anonymous", action="store_true", help="accept requests without a key (tenant 'default')")
    p.add_argument("--demo-script", help="YAML/JSON script for the demo upstream (canned replies, tool calls)")
    p.add_argument("--check", action="store_true", help="validate the configuration and exit")
    p.add_argument("--new-key", metavar="TENANT", help="print a new API key and its config entry, then exit")
    p.add_argument("--key-id", default=None, help="id for --new-key (default: TENANT-key)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from bartizan.gateway.config import load_gateway_config
    except ImportError as exc:  # the gateway extra is not installed
        print(f"bartizan serve needs the gateway extra: pip install 'bartizan[gateway]' ({exc})", file=sys.stderr)
        return USAGE_ERROR
    from bartizan.schema import SchemaError

    if args.new_key:
        from bartizan.gateway.embedded import mint_key

        try:
            key, path = mint_key(args.new_key, args.key_id or f"{args.new_key}-key")
        except ValueError as exc:
            print(f"bartizan: {exc}", file=sys.stderr)
            return USAGE_ERROR
        print(f"API key for tenant {args.new_key!r} (shown once, store it now): {key}\nIts sha256 is in {path}.")
        return OK
    env = dict(os.environ)
    if args.upstream:
        env["BARTIZAN_UPSTREAM_URL"] = args.upstream
    if args.host:
        env["BARTIZAN_HOST"] = args.host
    if args.port is not None:
        env["BARTIZAN_PORT"] = str(args.port)
    if args.audit_url:
        env["BARTIZAN_AUDIT_URL"] = args.audit_url
    if args.allow_anonymous:
        env["BARTIZAN_ALLOW_ANONYMOUS"] = "1"
    from bartizan.gateway.embedded import apply_embedded_defaults

    try:
        config, notes = apply_embedded_defaults(load_gateway_config(args.config, env), env)
    except SchemaError as exc:
        print(f"bartizan: invalid gateway configuration:\n{exc}", file=sys.stderr)
        return POLICY_ERROR
    if not config.keys and not config.allow_anonymous:
        print(
            "bartizan: no API keys configured; add keys (bartizan serve --new-key TENANT) or --allow-anonymous",
            file=sys.stderr,
        )
        return POLICY_ERROR
    if args.check:
        print(f"gateway configuration ok: {len(config.tenants)} tenant(s), {len(config.keys)} key(s)")
        for note in notes:
            print(f"  {note}")
        return OK
    demo = None
    if args.demo_script:
        from bartizan.gateway.demo import DemoScript, DemoUpstream

        demo = DemoUpstream(DemoScript.load(args.demo_script))
    from bartizan.gateway.server import serve

    serve(config, demo=demo, notes=notes)
    return OK
