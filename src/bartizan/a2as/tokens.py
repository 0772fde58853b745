"""Boundary tokens for A2AS security-boundary tags (spec §3.1).

Keyed mode (default): a per-session key is derived with HKDF-SHA256 from a keyring secret, and each tag's
token is a truncated HMAC-SHA256 over ``kind 0x1F index 0x1F content``. The index makes tokens differ for
identical contents at different positions; the key means an attacker who sees or controls the content cannot
compute (or brute-force offline) a valid token.

The unkeyed token (``SHA-256(content)`` prefix, [paper]/[higress] compatibility) is a public function of the
content and proves nothing about its author (spec §3.2); it exists for interoperability only and must always
be combined with neutralisation (`bartizan.a2as.boundaries.neutralize`).
"""

from __future__ import annotations

import hashlib
import hmac
import re

HKDF_INFO_PREFIX = b"a2as-boundary-v1"
SEP = b"\x1f"
MIN_TOKEN_LEN = 8
MAX_TOKEN_LEN = 16
MIN_SECRET_BYTES = 16
_KIND = re.compile(r"[a-z]{1,16}")


class TokenError(ValueError):
    """Invalid input to a token function (bad kind, index, length or key). Never carries key material."""


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract then expand)."""
    if not 0 < length <= 255 * 32:
        raise TokenError("HKDF output length out of range")
    prk = hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def derive_session_key(secret: bytes, kid: str, session_id: str) -> bytes:
    """K_s = HKDF-SHA256(ikm=secret, salt=kid, info="a2as-boundary-v1" 0x1F session_id, L=32).

    `secret` must be at least 16 bytes; `kid` and `session_id` must be non-empty and free of 0x1F.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise TokenError(f"boundary secret must be at least {MIN_SECRET_BYTES} bytes")
    if not kid or "\x1f" in kid:
        raise TokenError("kid must be non-empty and contain no 0x1F")
    if not session_id or "\x1f" in session_id:
        raise TokenError("session_id must be non-empty and contain no 0x1F")
    info = HKDF_INFO_PREFIX + SEP + session_id.encode("utf-8")
    return _hkdf_sha256(secret, kid.encode("utf-8"), info, 32)


def _check_length(length: int) -> None:
    if not MIN_TOKEN_LEN <= length <= MAX_TOKEN_LEN:
        raise TokenError(f"token length must be {MIN_TOKEN_LEN}..{MAX_TOKEN_LEN} hex characters")


def boundary_token(session_key: bytes, kind: str, index: int, content: str, length: int = 16) -> str:
    """Keyed token: lowerhex(HMAC-SHA256(K_s, kind 0x1F index 0x1F UTF-8(content)))[:length].

    `kind` is a lowercase ASCII word (user, tool, agent, system), `index` the message position (>= 0),
    `content` the neutralised text that goes inside the tag.
    """
    _check_length(length)
    if len(session_key) < MIN_SECRET_BYTES:
        raise TokenError(f"session key must be at least {MIN_SECRET_BYTES} bytes")
    if not _KIND.fullmatch(kind):
        raise TokenError("kind must be a lowercase ASCII word")
    if isinstance(index, bool) or index < 0:
        raise TokenError("index must be a non-negative integer")
    msg = kind.encode("ascii") + SEP + str(index).encode("ascii") + SEP + content.encode("utf-8")
    return hmac.new(session_key, msg, hashlib.sha256).hexdigest()[:length]


def unkeyed_token(content: str, length: int = 8) -> str:
    """Compatibility token lowerhex(SHA-256(UTF-8(content)))[:length]. Spoofable: see spec §3.2."""
    _check_length(length)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:length]
