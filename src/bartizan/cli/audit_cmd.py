"""`bartizan audit`: check and read the hash-chained audit trail the gateway writes.

    bartizan audit verify --url URL [--chain-key-env NAME] [--json]   exit 0 intact, 5 tampered, 3 unreadable
    bartizan audit tail --url URL [-n 20] [--tenant T] [--json]         newest rows first, never any captured text
    bartizan audit keygen                                               a new base64 256-bit key (capture or chain)

`--url` defaults to $BARTIZAN_AUDIT_URL, else the embedded trail in the home directory (`bartizan.home`).
Keys are read from environment variables, never from the command line, so they do not end up in shell history
or process listings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bartizan.cli.exitcodes import INPUT_ERROR, OK, USAGE_ERROR
from bartizan.home import default_audit_url

TAMPERED = 5


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="verify and read the gateway's audit trail")
    s = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    default_url = os.environ.get("BARTIZAN_AUDIT_URL") or default_audit_url()

    v = s.add_parser("verify", help="check the hash chain (exit 5 when rows were edited, deleted or reordered)")
    v.add_argument("--url", default=default_url, required=default_url is None, help="database URL")
    v.add_argument("--chain-key-env", metavar="NAME", help="env var holding the base64 chain key (HMAC chains)")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(run=_verify)

    t = s.add_parser("tail", help="show the newest audit rows")
    t.add_argument("--url", default=default_url, required=default_url is None, help="database URL")
    t.add_argument("-n", type=int, default=20, help="number of rows (default 20)")
    t.add_argument("--tenant", help="only this tenant's rows")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.set_defaults(run=_tail)

    k = s.add_parser("keygen", help="print a new random base64 256-bit key")
    k.set_defaults(run=_keygen)


def _err(msg: str) -> None:
    print(f"bartizan audit: {msg}", file=sys.stderr)


def _open(url: str, chain_key: bytes | None = None) -> Any:
    """An existing store, or None after printing why it cannot be opened (the URL's password is hidden)."""
    from sqlalchemy.exc import SQLAlchemyError

    from bartizan.audit import AuditError, AuditStore

    try:
        return AuditStore(url, chain_key=chain_key, create=False)
    except (AuditError, SQLAlchemyError, ValueError) as exc:
        detail = str(exc) if isinstance(exc, AuditError) else type(exc).__name__
        _err(f"cannot open the audit log: {detail}")
        return None


def _verify(args: argparse.Namespace) -> int:
    from bartizan.audit import key_from_env

    chain_key = None
    if args.chain_key_env:
        try:
            chain_key = key_from_env(args.chain_key_env, min_bytes=16, max_bytes=None)
        except ValueError as exc:
            _err(str(exc))
            return USAGE_ERROR
    store = _open(args.url, chain_key)
    if store is None:
        return INPUT_ERROR
    try:
        report = store.verify()
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.to_dict(), sort_keys=True))
    elif report.ok:
        print(f"ok: {report.rows} rows, chain intact up to seq {report.head_seq}")
    else:
        print(f"TAMPERED: {report.rows} rows read, first bad seq {report.first_bad_seq}")
        for problem in report.problems:
            print(f"  {problem}")
    return OK if report.ok else TAMPERED


def _tail(args: argparse.Namespace) -> int:
    if args.n < 0:
        _err("-n must be >= 0")
        return USAGE_ERROR
    store = _open(args.url)
    if store is None:
        return INPUT_ERROR
    try:
        rows = store.rows(limit=args.n, tenant=args.tenant)
    finally:
        store.close()
    for row in rows:
        if args.json:
            print(json.dumps(row, sort_keys=True, ensure_ascii=False))
            continue
        rules = ",".join(sorted({str(f.get("rule_id") or f.get("detector")) for f in row["findings"]})) or "-"
        surface = f" {row['surface']}" if row["surface"] else ""
        print(
            f"{row['seq']:>8} {row['ts']:.3f} {row['tenant']} {row['request_id']} {row['route']} "
            f"{row['direction']}{surface} {row['verdict']} {rules}"
        )
    return OK


def _keygen(args: argparse.Namespace) -> int:
    from bartizan.audit import generate_key

    print(generate_key())
    return OK
