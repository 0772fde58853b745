"""A2AS behavior certificates (spec §6): what an agent may call, read as a deny-by-default permission set.

Three formats are read (§6.1): the a2as.org ``a2as.yaml`` (``manifest`` plus capability sections), the
paper's JSON (``agent_id`` + ``permissions.tools.{allow,deny}``) and our native YAML (``permissions`` with
tools, models, network, mcp). All become one :class:`Permissions`: nothing is allowed unless declared, globs
(shell-style, case-sensitive) are allowed, and a deny pattern always beats an allow pattern.

Signing (§6.3) is Ed25519 over SHA-256 of the RFC 8785 (JCS) form of the certificate without
``manifest.signatures``; trust comes only from pinned issuer keys (``ed25519:<b64url>``). Parsing lives in
:mod:`bartizan.a2as.cert_document`, the format schemas in :mod:`bartizan.a2as.cert_schema`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from bartizan.a2as.cert_document import CertDocument, dump_document, parse_document
from bartizan.a2as.cert_schema import (
    A2AS_SECTIONS,
    DEFAULT_PORTS,
    A2ASOrgModel,
    NativeModel,
    NativePermissionsModel,
    PaperModel,
)
from bartizan.a2as.jcs import canonicalize
from bartizan.schema import SchemaError, SchemaIssue

CertFormat = Literal["a2as.org", "paper", "native"]
Status = Literal["verified", "invalid", "untrusted", "unsigned", "unverifiable"]


class CertificateError(ValueError):
    """A certificate operation that cannot proceed (bad key file, refusing to overwrite...). Never holds secrets."""


# --------------------------------------------------------------------------------------------- permissions


def _path_matches(path: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatchcase(path, pattern)
    prefix = pattern.rstrip("/")
    return path == pattern or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class NetworkRule:
    """One allowed egress destination: host glob, methods (``*`` = any), path prefixes or globs, protocols, ports.

    No paths means any path; no ports means the protocol's default port only.
    """

    host: str
    methods: tuple[str, ...] = ("GET",)
    paths: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ("https",)
    ports: tuple[str, ...] = ()

    def allows(self, scheme: str, host: str, port: int, path: str, method: str) -> bool:
        if scheme not in self.protocols or not fnmatchcase(host, self.host.lower()):
            return False
        if not (str(port) in self.ports if self.ports else port == DEFAULT_PORTS.get(scheme)):
            return False
        if "*" not in self.methods and method not in self.methods:
            return False
        return not self.paths or any(_path_matches(path, p) for p in self.paths)


def _egress_target(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of a URL, or None for anything ambiguous (fail closed).

    Refused: whitespace, controls and backslashes; user info (``https://good@evil``); dot segments, empty
    segments and percent-encoded dots, slashes or backslashes, which could step out of an allowed path prefix.
    """
    if any(c.isspace() or ord(c) < 0x20 or c in "\\\x7f" for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    path = parts.path or "/"
    segments = path.split("/")[1:]
    lowered = path.lower()
    if any(s in (".", "..") for s in segments) or "" in segments[:-1] or "%2e" in lowered or "%2f" in lowered:
        return None
    if "%5c" in lowered or not path.startswith("/"):
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme], path


@dataclass(frozen=True, slots=True)
class Permissions:
    """The effective allowlist of a certificate (spec §6.2): deny by default, deny wins."""

    tools_allow: tuple[str, ...] = ()
    tools_deny: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    networks: tuple[NetworkRule, ...] = ()
    mcp: tuple[str, ...] = ()

    def tool_allowed(self, name: str) -> bool:
        if not name or any(fnmatchcase(name, p) for p in self.tools_deny):
            return False
        return any(fnmatchcase(name, p) for p in self.tools_allow)

    def model_allowed(self, model: str) -> bool:
        return bool(model) and any(fnmatchcase(model, p) for p in self.models)

    def mcp_allowed(self, server: str) -> bool:
        return bool(server) and any(fnmatchcase(server, p) for p in self.mcp)

    def egress_allowed(self, url: str, method: str = "GET") -> bool:
        target = _egress_target(url)
        return target is not None and any(rule.allows(*target, method.upper()) for rule in self.networks)


# --------------------------------------------------------------------------------------------- certificate


def signing_body(doc: Any) -> Any:
    """The value that is signed: `doc` without ``manifest.signatures``; a manifest left empty goes too."""
    if not isinstance(doc, dict) or not isinstance(doc.get("manifest"), dict):
        return doc
    body = dict(doc)
    manifest = {k: v for k, v in doc["manifest"].items() if k != "signatures"}
    if manifest:
        body["manifest"] = manifest
    else:
        del body["manifest"]
    return body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def digest_bytes(doc: Any) -> bytes:
    """SHA-256 of the JCS form of the signing body."""
    return hashlib.sha256(canonicalize(signing_body(doc))).digest()


@dataclass(frozen=True)
class Certificate:
    """A loaded certificate: its `format`, JSON value (`doc`, signatures included) and permissions."""

    format: CertFormat
    doc: dict[str, Any]
    permissions: Permissions
    source: str
    syntax: Literal["json", "yaml"] = "yaml"

    @property
    def digest(self) -> str:
        """``sha256:<b64url>`` of JCS(certificate without manifest.signatures), as in manifest.signatures.digest."""
        return "sha256:" + b64url(digest_bytes(self.doc))

    @property
    def signatures(self) -> dict[str, Any] | None:
        manifest = self.doc.get("manifest")
        sigs = manifest.get("signatures") if isinstance(manifest, dict) else None
        return sigs if isinstance(sigs, dict) else None

    @property
    def issuer_name(self) -> str | None:
        """``manifest.issued.by`` (a label only: trust comes from the pinned signing key)."""
        manifest = self.doc.get("manifest")
        issued = manifest.get("issued") if isinstance(manifest, dict) else None
        by = issued.get("by") if isinstance(issued, dict) else None
        return by if isinstance(by, str) else None


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _from_a2as(m: A2ASOrgModel) -> Permissions:
    agents = [a for a in (m.agents or {}).values() if a is not None]
    nets = [
        NetworkRule(
            host=host.lower(),
            methods=_unique(n.actions if n else ["GET"]),
            paths=_unique((n.urls if n else None) or []),
            protocols=_unique(n.protocols if n else ["https"]),
            ports=_unique([str(p) for p in ((n.ports if n else None) or [])]),
        )
        for host, n in (m.networks or {}).items()
    ]
    return Permissions(
        tools_allow=_unique([t for a in agents for t in a.tools or []] + list(m.tools or {})),
        models=_unique(list(m.models or {})),
        networks=tuple(nets),
        mcp=_unique(list(m.mcp or {}) + [s for a in agents for s in a.mcp or []]),
    )


def _from_native(p: NativePermissionsModel) -> Permissions:
    nets = [
        NetworkRule(
            host=n.host.lower(),
            methods=_unique(n.methods),
            paths=_unique(n.paths),
            protocols=_unique(n.protocols),
            ports=_unique([str(x) for x in n.ports]),
        )
        for n in p.network
    ]
    return Permissions(
        tools_allow=_unique(p.tools.allow),
        tools_deny=_unique(p.tools.deny),
        models=_unique(p.models),
        networks=tuple(nets),
        mcp=_unique(p.mcp),
    )


def detect_format(data: Any) -> CertFormat | None:
    """``paper`` (agent_id + tools-only permissions), ``native`` (permissions), ``a2as.org`` (manifest/sections)."""
    if not isinstance(data, dict):
        return None
    if "permissions" in data:
        perms = data["permissions"]
        if "agent_id" in data and isinstance(perms, dict) and set(perms) <= {"tools"}:
            return "paper"
        return "native"
    if "manifest" in data or any(s in data for s in A2AS_SECTIONS):
        return "a2as.org"
    return None


def _build(doc: CertDocument) -> Certificate:
    fmt = detect_format(doc.data)
    if fmt is None:
        raise SchemaError(
            [doc.issue((), "not a certificate: expected an a2as.org `manifest`, or `permissions` (paper/native)")]
        )
    try:
        if fmt == "a2as.org":
            permissions = _from_a2as(A2ASOrgModel.model_validate(doc.data))
        elif fmt == "paper":
            permissions = _from_native(
                NativePermissionsModel(tools=PaperModel.model_validate(doc.data).permissions.tools)
            )
        else:
            permissions = _from_native(NativeModel.model_validate(doc.data).permissions)
    except ValidationError as exc:
        raise SchemaError(doc.issues_from(exc)) from None
    return Certificate(fmt, doc.data, permissions, doc.source, doc.syntax)


def load_certificate_text(text: str, source: str) -> Certificate:
    """Parse and validate certificate text; SchemaError lists every problem with file, line and key."""
    return _build(parse_document(text, source))


def load_certificate(path: str | Path) -> Certificate:
    """Read a certificate file (a2as.yaml, paper JSON or native YAML). OSError if unreadable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SchemaError([SchemaIssue(str(p), None, "", "not UTF-8 text")]) from None
    return load_certificate_text(text, str(p))


def lint_text(text: str, source: str) -> list[SchemaIssue]:
    """Every schema problem of a certificate text (empty when it loads)."""
    try:
        load_certificate_text(text, source)
    except SchemaError as exc:
        return list(exc.issues)
    return []


def lint(path: str | Path) -> list[SchemaIssue]:
    """Every schema problem of a certificate file, each with its line; OSError if the file is unreadable."""
    try:
        load_certificate(path)
    except SchemaError as exc:
        return list(exc.issues)
    return []


# --------------------------------------------------------------------------------------------- keys and signatures

PRIVATE_KEY_NAME = "a2as-cert-signing.key"
PUBLIC_KEY_NAME = "a2as-cert-signing.pub"
A2AS_ORG_ISSUER = "a2as.org"
_PIN = re.compile(r"ed25519:[A-Za-z0-9_-]{43}")


def _unb64url(text: str, size: int) -> bytes | None:
    """Strict unpadded base64url of exactly `size` bytes (canonical encoding only), else None."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size and b64url(raw) == text else None


def public_key_id(key: Ed25519PublicKey) -> str:
    """``ed25519:<b64url of the 32 raw bytes>``: the form of manifest.signatures.key and of trusted_issuers."""
    return "ed25519:" + b64url(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def load_issuer(value: str) -> str:
    """A trusted-issuer pin from a literal ``ed25519:...`` or a file holding one (or a PEM Ed25519 public key)."""
    if value.startswith("ed25519:"):
        text = value
    else:
        data = Path(value).read_bytes()
        if b"-----BEGIN" in data:
            try:
                key = serialization.load_pem_public_key(data)
            except (ValueError, UnsupportedAlgorithm):
                raise CertificateError(f"{value}: not a PEM public key") from None
            if not isinstance(key, Ed25519PublicKey):
                raise CertificateError(f"{value}: not an Ed25519 public key")
            return public_key_id(key)
        text = data.decode("utf-8", "replace").strip()
    if not _PIN.fullmatch(text) or _unb64url(text[8:], 32) is None:
        raise CertificateError(
            f"{value if not value.startswith('ed25519:') else 'issuer'}: expected ed25519:<43 b64url chars>"
        )
    return text


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """An unencrypted PKCS#8 PEM Ed25519 private key that only its owner can read (like ssh, refuse 0644)."""
    p = Path(path)
    if os.name == "posix" and p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CertificateError(f"{p}: private key is accessible to group or others (chmod 600 it)")
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except TypeError:
        raise CertificateError(f"{p}: encrypted private keys are not supported") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"{p}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CertificateError(f"{p}: not an Ed25519 private key")
    return key


def keygen(out_dir: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair into `out_dir`: PKCS#8 PEM private key (mode 0600) and the public pin file.

    Existing files are never overwritten (CertificateError).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priv, pub = out / PRIVATE_KEY_NAME, out / PUBLIC_KEY_NAME
    for path in (priv, pub):
        if path.exists():
            raise CertificateError(f"{path} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    pub.write_text(public_key_id(key.public_key()) + "\n", encoding="utf-8")
    return priv, pub


def sign_certificate(cert: Certificate, key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of `cert.doc` carrying manifest.signatures {digest, key, sig} made with `key` (spec §6.3)."""
    digest = digest_bytes(cert.doc)
    signatures = {
        "digest": "sha256:" + b64url(digest),
        "key": public_key_id(key.public_key()),
        "sig": "ed25519:" + b64url(key.sign(digest)),
    }
    doc = copy.deepcopy(cert.doc)
    if isinstance(doc.get("manifest"), dict):
        doc["manifest"]["signatures"] = signatures
        return doc
    return {"manifest": {"signatures": signatures}, **doc}


def sign(cert_path: str | Path, private_key_path: str | Path, out_path: str | Path) -> None:
    """Sign a certificate file and write it to `out_path` in the same syntax (YAML comments are not kept)."""
    cert = load_certificate(cert_path)
    doc = sign_certificate(cert, load_private_key(private_key_path))
    text = dump_document(doc, cert.syntax)
    if parse_document(text, str(out_path)).data != doc:  # the written text must read back as what was signed
        raise CertificateError(f"{cert_path}: the signed certificate does not survive a write/read round trip")
    Path(out_path).write_text(text, encoding="utf-8")


@dataclass(frozen=True, slots=True)
class CertVerification:
    """Outcome of :func:`verify`; only ``verified`` may be enforced on (spec §6.2)."""

    status: Status
    reason: str

    @property
    def ok(self) -> bool:
        return self.status == "verified"


def verify(cert: Certificate, trusted_issuers: Sequence[str]) -> CertVerification:
    """Recompute the digest, check the Ed25519 signature over its 32 bytes, and require a pinned signing key.

    Certificates issued by A2AS.org whose digest or signature we cannot reproduce are ``unverifiable``, not
    ``invalid``: A2AS.org has not published its canonicalisation (spec §6.3, interop).
    """
    pins = set()
    for i, pin in enumerate(trusted_issuers):
        if not _PIN.fullmatch(pin) or _unb64url(pin[8:], 32) is None:
            raise CertificateError(f"trusted issuer #{i + 1} is not ed25519:<43 b64url chars>")
        pins.add(pin)
    sigs = cert.signatures
    if sigs is None:
        return CertVerification("unsigned", "certificate has no manifest.signatures")
    digest_s, key_s, sig_s = (sigs.get(k) for k in ("digest", "key", "sig"))
    if not (isinstance(digest_s, str) and isinstance(key_s, str) and isinstance(sig_s, str)):
        return CertVerification("invalid", "malformed manifest.signatures")
    pk_raw = _unb64url(key_s[8:], 32) if key_s.startswith("ed25519:") else None
    sig_raw = _unb64url(sig_s[8:], 64) if sig_s.startswith("ed25519:") else None
    if pk_raw is None or sig_raw is None or not digest_s.startswith("sha256:"):
        return CertVerification("invalid", "malformed manifest.signatures")
    foreign = (cert.issuer_name or "").strip().lower() == A2AS_ORG_ISSUER
    digest = digest_bytes(cert.doc)
    if not hmac.compare_digest(digest_s, "sha256:" + b64url(digest)):
        if foreign:
            return CertVerification("unverifiable", "A2AS.org-issued digest; its canonicalisation is unpublished")
        return CertVerification("invalid", "digest_mismatch: content changed after signing")
    try:
        Ed25519PublicKey.from_public_bytes(pk_raw).verify(sig_raw, digest)
    except (InvalidSignature, ValueError):
        if foreign:
            return CertVerification("unverifiable", "A2AS.org-issued signature; its signing input is unpublished")
        return CertVerification("invalid", "bad_signature")
    if key_s not in pins:
        return CertVerification("untrusted", f"signing key {key_s[:20]}… is not a trusted issuer")
    return CertVerification("verified", f"signed by trusted issuer {key_s[:20]}…, {cert.digest}")
