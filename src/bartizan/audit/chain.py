"""The hash chain: every row commits to the previous row's hash and to all of its own stored columns.

`row_hash = H(prev_hash || canonical JSON of every stored column except row_hash)`, where H is SHA-256, or
HMAC-SHA256 under a chain key when one is configured. Without a key the chain proves order and completeness
against accidental damage and naive edits; with a key, someone who can write to the database but does not hold
the key cannot rewrite history and recompute the hashes. The head (last seq and hash) carries a MAC of its own so
that removing the newest rows and rolling the head back is caught too (with a key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64
MODE_SHA256 = "sha256"
MODE_HMAC = "hmac-sha256"


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, ASCII only (so NULs and lone surrogates are escaped), no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def chain_mode(key: bytes | None) -> str:
    return MODE_HMAC if key else MODE_SHA256


def _digest(key: bytes | None, message: bytes) -> str:
    if key:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def row_hash(prev_hash: str, columns: Mapping[str, Any], key: bytes | None) -> str:
    """Hash of one row; `columns` are the stored values (bytes as hex) of every column except `row_hash`."""
    body = {k: (v.hex() if isinstance(v, bytes | bytearray | memoryview) else v) for k, v in columns.items()}
    return _digest(key, prev_hash.encode("ascii") + canonical_json(body).encode("ascii"))


def head_mac(mode: str, seq: int, last_hash: str, key: bytes | None) -> str:
    """MAC over the head's state: with a chain key, an edited or rolled-back head cannot be made to match."""
    return _digest(key, f"bartizan-audit-head|{mode}|{seq}|{last_hash}".encode("ascii"))
