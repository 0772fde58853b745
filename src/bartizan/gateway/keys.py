"""Gateway API keys: generation, hashing and authentication of a request's key.

The config stores only each key's sha256 digest, so a leaked config file grants nothing. A fast, unsalted
hash is the right tool here, unlike for passwords: keys are 256 bits of randomness, so no dictionary or
brute-force search over the input space is feasible however fast the hash is, and a slow KDF would only add
latency to every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import yaml

from bartizan.gateway.config import GatewayConfig, KeyEntry, RateLimit, check_name

KEY_PREFIX = "bzk_"
KEY_BYTES = 32
# Longer header values are rejected before hashing: no real key is this long.
MAX_HEADER_CHARS = 512


def generate_key() -> str:
    """A new API key: "bzk_" + 43 characters of urlsafe base64 (32 random bytes, no padding)."""
    return KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode("ascii")


def hash_key(key: str) -> str:
    """The sha256 hex digest of `key` (what the config's `keys[].sha256` holds)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the key's public id, its tenant, and the rate limit that applies to it."""

    key_id: str
    tenant: str
    rate_limit: RateLimit


def extract_key(header_value: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` value or a raw `api-key` value; None when absent/malformed."""
    if header_value is None:
        return None
    value = header_value.strip()
    if not value or len(value) > MAX_HEADER_CHARS:
        return None
    scheme, _, rest = value.partition(" ")
    if rest:
        if scheme.lower() != "bearer":
            return None
        value = rest.strip()
    if not value or any(c.isspace() for c in value):
        return None
    return value


class KeyRing:
    """The configured keys, indexed by digest. Built once from the config; read-only afterwards."""

    def __init__(self, config: GatewayConfig) -> None:
        self._by_digest: dict[str, tuple[str, Principal]] = {}
        for entry in config.keys:
            self._by_digest[entry.sha256] = (entry.sha256, self._principal(config, entry))

    @staticmethod
    def _principal(config: GatewayConfig, entry: KeyEntry) -> Principal:
        limit = entry.rate_limit or config.tenants[entry.tenant].rate_limit
        return Principal(key_id=entry.id, tenant=entry.tenant, rate_limit=limit)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, header_value: str | None) -> Principal | None:
        """The principal for an `Authorization` header value (`Bearer <key>`) or a raw `api-key` header value;
        None for a missing, malformed or unknown key. Anonymous access is the app's decision, not this one's."""
        key = extract_key(header_value)
        if key is None:
            return None
        digest = hash_key(key)
        # The lookup is keyed by the digest of the presented key, which an attacker cannot steer towards a
        # stored digest; the final comparison is constant-time all the same, so no byte-wise timing leaks.
        found = self._by_digest.get(digest)
        if found is None:
            return None
        stored, principal = found
        return principal if hmac.compare_digest(digest, stored) else None


def main_keygen(tenant: str, key_id: str) -> tuple[str, str]:
    """A new key and the YAML entry to paste into the config's `keys:` list (which stores only the digest).

    The key itself is shown once to the operator and never written anywhere by bartizan.
    """
    check_name(tenant, "tenant name")
    check_name(key_id, "key id")
    key = generate_key()
    entry = {"id": key_id, "sha256": hash_key(key), "tenant": tenant}
    snippet = yaml.safe_dump([entry], sort_keys=False, default_flow_style=False)
    return key, snippet
