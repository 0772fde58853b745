"""Ed25519 signing of known-attack entries over a canonical JSON encoding.

Why: the known-attack index decides what gets blocked, so whoever can write an entry can make bartizan
block ordinary traffic (or, with a forged threshold, stop blocking). Every entry therefore carries an
Ed25519 signature, and the detector loads only entries whose signature verifies against pinned public keys
(the packaged project key plus keys the operator configures). A component that can only write data into the
index directory cannot add a trusted entry without a private key.

Canonical encoding: ``json.dumps(record_without_sig, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8. Embeddings are base64 of little-endian float16 bytes, not float lists;
the few floats that are signed (thresholds, metrics) use Python's shortest round-trip repr, which is stable
across Python 3 versions (a verifier in another language must reproduce it).

Key files: the private key is PKCS#8 PEM written with mode 0600 and never printed; the public key file is
one line ``ed25519:<base64 of the 32 raw bytes>``. A key id is the first 16 hex digits of the SHA-256 of the
raw public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PUBKEY_PREFIX = "ed25519:"
SIG_FIELD = "sig"
KEY_FIELD = "key_id"
PRIVATE_NAME = "attacks_ed25519.key"
PUBLIC_NAME = "attacks_ed25519.pub"


class SigningError(ValueError):
    """A key file that cannot be read, or a record that cannot be signed."""


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8, the signature field left out."""
    body = {k: v for k, v in record.items() if k != SIG_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Short, stable name of a public key: sha256(raw 32 bytes)[:16 hex]."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_key_text(key: Ed25519PublicKey) -> str:
    return PUBKEY_PREFIX + base64.b64encode(raw_public(key)).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Read ``ed25519:<base64>`` (the .pub file format) or a PEM SubjectPublicKeyInfo."""
    text = text.strip()
    try:
        if text.startswith(PUBKEY_PREFIX):
            raw = base64.b64decode(text[len(PUBKEY_PREFIX) :], validate=True)
            return Ed25519PublicKey.from_public_bytes(raw)
        if text.startswith("-----BEGIN PUBLIC KEY-----"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            if isinstance(key, Ed25519PublicKey):
                return key
    except (ValueError, TypeError) as exc:
        raise SigningError(f"not an Ed25519 public key: {type(exc).__name__}") from None
    raise SigningError("not an Ed25519 public key (expected 'ed25519:<base64>' or a PEM public key)")


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SigningError(f"cannot read public key {path}: {exc.strerror}") from None
    return parse_public_key(text)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read a PKCS#8 PEM private key; refuses a file that others can read (like ssh does)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        data = p.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read private key {path}: {exc.strerror}") from None
    if os.name == "posix" and mode & 0o077:
        raise SigningError(f"private key {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"cannot parse private key {path}: {type(exc).__name__}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"private key {path} is not Ed25519")
    return key


def generate_keypair(out_dir: str | Path, *, overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write a new key pair into `out_dir`: private (0600, created exclusively) and public. Returns paths + id."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(priv_path, flags, 0o600)
    except FileExistsError:
        raise SigningError(f"{priv_path} exists; refusing to overwrite a private key") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(priv_path, 0o600)  # O_CREAT's mode is masked by umask; O_TRUNC keeps an old mode
    pub = key.public_key()
    pub_path.write_text(public_key_text(pub) + "\n", encoding="utf-8")
    return priv_path, pub_path, key_id(pub)


def sign_record(record: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of `record` with `key_id` set and `sig` (base64) over its canonical encoding."""
    out = {k: v for k, v in record.items() if k != SIG_FIELD}
    out[KEY_FIELD] = key_id(key.public_key())
    out[SIG_FIELD] = base64.b64encode(key.sign(canonical_json(out))).decode("ascii")
    return out


class Keyring:
    """Pinned public keys by key id. Only records signed by one of these are trusted."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for k in keys:
            self.add(k)

    def add(self, key: Ed25519PublicKey) -> str:
        kid = key_id(key)
        self._keys[kid] = key
        return kid

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def verify(self, record: Mapping[str, Any]) -> str | None:
        """None when the record's signature verifies against a pinned key, else why not (no text echoed)."""
        sig, kid = record.get(SIG_FIELD), record.get(KEY_FIELD)
        if not sig:
            return "unsigned"
        if not isinstance(kid, str) or kid not in self._keys:
            return f"signed by a key that is not pinned ({kid!r})" if isinstance(kid, str) else "no key id"
        try:
            raw = base64.b64decode(str(sig), validate=True)
            self._keys[kid].verify(raw, canonical_json(record))
        except (InvalidSignature, ValueError, TypeError):
            return "bad signature (tampered or re-encoded)"
        return None
