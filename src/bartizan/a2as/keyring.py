"""Transport-signature keyring (spec §3.3): key ids to HMAC secrets or Ed25519 keys, with rotation.

``current`` signs; every key verifies, and a retired key only until ``retired_until[kid]`` (the grace period).
Secrets come from environment variables or files, never from literal configuration values, and no error,
``repr`` or event ever shows one. A key's type fixes its algorithm (bytes: HMAC-SHA256; Ed25519 keys:
``ed25519``), so a verifier never lets a header choose the algorithm.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bartizan.schema import SchemaError, SchemaIssue

KeyMaterial = bytes | Ed25519PrivateKey | Ed25519PublicKey
MIN_HMAC_KEY_BYTES = 16


class SignatureFailure(Exception):
    """Internal: a verification step failed with ``reason`` (turned into an `AuthResult` by the verifier)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyringError(ValueError):
    """A keyring that cannot be used as configured (names the key id, never the key)."""


def alg_of(key: KeyMaterial) -> str:
    return "hmac-sha256" if isinstance(key, bytes) else "ed25519"


@dataclass
class Keyring:
    """Keys by ``kid``: ``current`` signs; every key verifies, a retired one only until ``retired_until[kid]``.

    A key is an HMAC secret (``bytes``, at least 16) or an Ed25519 private/public key; its type fixes the
    algorithm. A verifier of Ed25519 signatures holds the public keys. ``repr`` shows key ids only.
    """

    current: str
    keys: dict[str, KeyMaterial] = field(repr=False)
    retired_until: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeyringError(f"current key id {self.current!r} is not in the keyring")
        for kid, key in self.keys.items():
            if isinstance(key, bytes):
                if len(key) < MIN_HMAC_KEY_BYTES:
                    raise KeyringError(f"key {kid!r}: HMAC secret shorter than {MIN_HMAC_KEY_BYTES} bytes")
            elif not isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
                raise KeyringError(f"key {kid!r}: expected bytes or an Ed25519 key")

    @classmethod
    def from_env(
        cls,
        spec: Mapping[str, str],
        current: str,
        env: Mapping[str, str] | None = None,
        *,
        retired_until: Mapping[str, float] | None = None,
        base_dir: Path | None = None,
        source: str = "a2as.auth.keyring",
    ) -> Keyring:
        """Load keys named ``kid: "env:NAME" | "file:PATH"``; literal secrets are refused.

        The value read is, after stripping surrounding whitespace: a PEM Ed25519 private or public key;
        ``ed25519:<b64url 32 bytes>`` (a public key, a2as.org format); ``base64:<...>``; ``hex:<...>``; otherwise
        the raw bytes are the HMAC secret. Every problem is reported at once as a `SchemaError`, never with the
        value itself.
        """
        environ: Mapping[str, str] = os.environ if env is None else env
        issues: list[SchemaIssue] = []
        keys: dict[str, KeyMaterial] = {}
        for kid, ref in spec.items():
            key_path = f"keys.{kid}"
            raw: bytes | None = None
            if ref.startswith("env:"):
                value = environ.get(ref[4:])
                if value is None:
                    issues.append(SchemaIssue(source, None, key_path, f"environment variable {ref[4:]} is not set"))
                else:
                    raw = value.encode("utf-8")
            elif ref.startswith("file:"):
                path = Path(ref[5:])
                if base_dir is not None and not path.is_absolute():
                    path = base_dir / path
                try:
                    raw = path.read_bytes()
                except OSError as exc:
                    issues.append(SchemaIssue(source, None, key_path, f"cannot read {path}: {exc.strerror}"))
            else:
                issues.append(
                    SchemaIssue(source, None, key_path, "must be env:NAME or file:PATH (literal secrets are refused)")
                )
            if raw is None:
                continue
            decoded = _decode_key(raw)
            if isinstance(decoded, str):
                issues.append(SchemaIssue(source, None, key_path, decoded))
            else:
                keys[kid] = decoded
        if current not in spec:
            issues.append(SchemaIssue(source, None, "current", f"key id {current!r} is not among the keys"))
        if issues:
            raise SchemaError(issues)
        try:
            return cls(current, keys, dict(retired_until or {}))
        except KeyringError as exc:
            raise SchemaError([SchemaIssue(source, None, "keys", str(exc))]) from None

    def signing_key(self) -> bytes | Ed25519PrivateKey:
        key = self.keys[self.current]
        if isinstance(key, Ed25519PublicKey):
            raise KeyringError(f"current key {self.current!r} is a public key and cannot sign")
        return key

    def verification_key(self, kid: str, now: float) -> KeyMaterial:
        """The key for ``kid`` at ``now``; raises `SignatureFailure` with ``unknown_kid`` or ``key_retired``."""
        key = self.keys.get(kid)
        if key is None:
            raise SignatureFailure("unknown_kid")
        until = self.retired_until.get(kid)
        if until is not None and now > until:
            raise SignatureFailure("key_retired")
        return key

    def active_hmac_keys(self, now: float) -> list[tuple[str, bytes]]:
        return [
            (kid, key)
            for kid, key in self.keys.items()
            if isinstance(key, bytes) and not (kid in self.retired_until and now > self.retired_until[kid])
        ]


def _decode_key(raw: bytes) -> KeyMaterial | str:
    """Key material from a file or variable, or an error message that does not quote it."""
    s = raw.strip()
    try:
        if s.startswith(b"-----BEGIN"):
            if b"PRIVATE KEY" in s.split(b"\n", 1)[0]:
                private = serialization.load_pem_private_key(s, password=None)
                if isinstance(private, Ed25519PrivateKey):
                    return private
            else:
                public = serialization.load_pem_public_key(s)
                if isinstance(public, Ed25519PublicKey):
                    return public
            return "PEM key is not an Ed25519 key"
        if s.startswith(b"ed25519:"):
            data = base64.urlsafe_b64decode(s[8:] + b"=" * (-len(s[8:]) % 4))
            return Ed25519PublicKey.from_public_bytes(data)
        if s.startswith(b"base64:"):
            body = s[7:].replace(b"-", b"+").replace(b"_", b"/")
            return base64.b64decode(body + b"=" * (-len(body) % 4), validate=True)
        if s.startswith(b"hex:"):
            return bytes.fromhex(s[4:].decode("ascii"))
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error, UnicodeDecodeError):
        return "key material cannot be decoded"
    return s
