"""`bartizan cert`: create signing keys, sign, verify and lint A2AS behavior certificates (spec §6).

    bartizan cert keygen --out DIR                            new Ed25519 key pair (private key mode 0600)
    bartizan cert sign CERT --key PRIVATE_KEY --out SIGNED    write CERT with manifest.signatures to SIGNED
    bartizan cert verify SIGNED --issuer PUBLIC_KEY           exit 0 only when signed by a pinned issuer
    bartizan cert lint CERT                                   every schema problem as file:line: key: message

Exit codes: 0 success / verified / no problems; 3 unreadable input (missing file, bad key file, refusing to
overwrite); 4 the certificate is invalid (lint problems) or does not verify (invalid, untrusted, unsigned,
unverifiable: the status word is printed first). `--issuer` takes a public key file written by `keygen`, a PEM
Ed25519 public key, or the pin ``ed25519:<b64url>`` itself; repeat it to trust several issuers. Key material is
never printed.
"""

from __future__ import annotations

import argparse
import sys

from bartizan.a2as.certificates import (
    Certificate,
    CertificateError,
    keygen,
    lint,
    load_certificate,
    load_issuer,
    sign,
    verify,
)
from bartizan.cli.exitcodes import INPUT_ERROR, OK, POLICY_ERROR
from bartizan.schema import SchemaError

CERT_INVALID = POLICY_ERROR


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cert", help="A2AS behavior certificates: keygen, sign, verify, lint")
    s = p.add_subparsers(dest="cert_command", required=True, metavar="ACTION")

    k = s.add_parser("keygen", help="write a new Ed25519 signing key pair into DIR")
    k.add_argument("--out", required=True, metavar="DIR", help="directory for the key files (created if missing)")
    k.set_defaults(run=_keygen)

    g = s.add_parser("sign", help="sign a certificate (JCS digest + Ed25519, spec §6.3)")
    g.add_argument("cert", metavar="CERT", help="a2as.yaml, paper JSON or native YAML certificate")
    g.add_argument("--key", required=True, metavar="PRIVATE_KEY", help="PEM private key from `cert keygen`")
    g.add_argument("--out", required=True, metavar="SIGNED", help="where to write the signed certificate")
    g.set_defaults(run=_sign)

    v = s.add_parser("verify", help="verify a signed certificate against pinned issuers (exit 0 when verified)")
    v.add_argument("cert", metavar="SIGNED", help="signed certificate")
    v.add_argument(
        "--issuer",
        required=True,
        action="append",
        metavar="PUBLIC_KEY",
        help="trusted issuer: public key file or ed25519:<b64url> (repeatable)",
    )
    v.set_defaults(run=_verify)

    lp = s.add_parser("lint", help="list every schema problem of a certificate with its line")
    lp.add_argument("cert", metavar="CERT", help="certificate file")
    lp.set_defaults(run=_lint)


def _err(msg: str) -> None:
    print(f"bartizan cert: {msg}", file=sys.stderr)


def _summary(cert: Certificate) -> str:
    p = cert.permissions
    return (
        f"{cert.format} certificate: {len(p.tools_allow)} tool allow, {len(p.tools_deny)} tool deny, "
        f"{len(p.models)} model, {len(p.networks)} network, {len(p.mcp)} mcp entries; {cert.digest}"
    )


def _keygen(args: argparse.Namespace) -> int:
    try:
        priv, pub = keygen(args.out)
        pin = load_issuer(str(pub))
    except (CertificateError, OSError) as exc:
        _err(str(exc))
        return INPUT_ERROR
    print(f"private key: {priv} (mode 600; keep it secret)")
    print(f"public key:  {pub}")
    print(f"trusted issuer pin: {pin}")
    return OK


def _sign(args: argparse.Namespace) -> int:
    try:
        sign(args.cert, args.key, args.out)
        cert = load_certificate(args.out)
    except SchemaError as exc:
        _err(f"invalid certificate:\n{exc}")
        return CERT_INVALID
    except (CertificateError, OSError) as exc:
        _err(str(exc))
        return INPUT_ERROR
    sigs = cert.signatures or {}
    print(f"{args.out}: signed {_summary(cert)}")
    print(f"  key {sigs.get('key')}")
    return OK


def _verify(args: argparse.Namespace) -> int:
    try:
        pins = [load_issuer(value) for value in args.issuer]
        cert = load_certificate(args.cert)
    except SchemaError as exc:
        _err(f"invalid certificate:\n{exc}")
        return CERT_INVALID
    except (CertificateError, OSError) as exc:
        _err(str(exc))
        return INPUT_ERROR
    result = verify(cert, pins)
    if not result.ok:
        print(f"{args.cert}: {result.status}: {result.reason}", file=sys.stderr)
        return CERT_INVALID
    print(f"{args.cert}: verified: {result.reason}")
    return OK


def _lint(args: argparse.Namespace) -> int:
    try:
        issues = lint(args.cert)
    except OSError as exc:
        _err(f"{args.cert}: cannot read: {exc.strerror or type(exc).__name__}")
        return INPUT_ERROR
    if issues:
        for issue in issues:
            print(issue)
        print(f"{args.cert}: {len(issues)} problem{'s' if len(issues) != 1 else ''}", file=sys.stderr)
        return CERT_INVALID
    print(f"{args.cert}: ok — {_summary(load_certificate(args.cert))}")
    return OK
