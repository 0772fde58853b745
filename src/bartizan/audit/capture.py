"""Encrypted capture of raw text (opt-in): AES-256-GCM with a random 96-bit nonce per record.

The associated data binds the ciphertext to its row (request id, tenant, route, direction, surface, timestamp),
so a ciphertext copied onto another row does not decrypt. Keys are 32 random bytes, passed around base64-encoded
through environment variables; this module never reads the process environment by itself unless asked to.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bartizan.audit.chain import canonical_json
from bartizan.audit.record import CaptureError

BLOB_VERSION = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded, for capture or chain keys."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def decode_key(value: str, *, name: str, min_bytes: int = KEY_BYTES, max_bytes: int | None = KEY_BYTES) -> bytes:
    """Base64 (standard or URL-safe) to bytes; errors name `name` (an env var) but never echo the value."""
    text = value.strip()
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if len(raw) < min_bytes or (max_bytes is not None and len(raw) > max_bytes):
        want = f"{min_bytes}" if max_bytes == min_bytes else f"at least {min_bytes}"
        raise ValueError(f"{name} must decode to {want} bytes, got {len(raw)}")
    return raw


def key_from_env(
    name: str, env: Mapping[str, str] | None = None, *, min_bytes: int = KEY_BYTES, max_bytes: int | None = KEY_BYTES
) -> bytes:
    """Read and decode a base64 key from environment variable `name` (or from `env` when given)."""
    source = os.environ if env is None else env
    value = source.get(name)
    if not value:
        raise ValueError(f"environment variable {name} is not set")
    return decode_key(value, name=name, min_bytes=min_bytes, max_bytes=max_bytes)


def associated_data(fields: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(fields)).encode("ascii")


def encrypt(key: bytes, plaintext: str, aad: bytes) -> bytes:
    """version byte || nonce || ciphertext+tag."""
    if len(key) != KEY_BYTES:
        raise ValueError("the capture key must be 32 bytes")
    nonce = os.urandom(NONCE_BYTES)
    return BLOB_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext.encode("utf-8", "surrogatepass"), aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> str:
    if len(key) != KEY_BYTES:
        raise CaptureError("the capture key must be 32 bytes")
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != BLOB_VERSION:
        raise CaptureError("the captured blob is malformed")
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad).decode("utf-8", "surrogatepass")
    except InvalidTag:
        raise CaptureError("cannot decrypt the captured text: wrong key, or the row was altered") from None
