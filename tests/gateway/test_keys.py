"""API keys: format, hashing, authentication from either header, and the keygen helper."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.gateway.config import GatewayConfig, KeyEntry, RateLimit, TenantConfig, load_gateway_config_text
from bartizan.gateway.keys import KeyRing, Principal, extract_key, generate_key, hash_key, main_keygen

KEY_RE = re.compile(r"bzk_[A-Za-z0-9_-]{43}")


def ring_with(*keys: str) -> KeyRing:
    cfg = GatewayConfig(
        tenants={
            "default": TenantConfig(),
            "acme": TenantConfig(rate_limit=RateLimit(requests_per_minute=60, burst=5)),
        },
        keys=[
            KeyEntry(
                id=f"k{i}",
                sha256=hash_key(k),
                tenant="acme" if i else "default",
                rate_limit=RateLimit(requests_per_minute=1, burst=1) if i == 2 else None,
            )
            for i, k in enumerate(keys)
        ],
    )
    return KeyRing(cfg)


def test_generate_key_format_and_entropy() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for k in keys:
        assert KEY_RE.fullmatch(k), k
        raw = base64.urlsafe_b64decode(k[4:] + "=")
        assert len(raw) == 32


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("bzk_x") == hashlib.sha256(b"bzk_x").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(generate_key()))


def test_authenticate_bearer_and_raw_header() -> None:
    k0, k1, k2 = generate_key(), generate_key(), generate_key()
    ring = ring_with(k0, k1, k2)
    assert len(ring) == 3
    assert ring.authenticate(f"Bearer {k0}") == Principal("k0", "default", RateLimit())
    assert ring.authenticate(f"bearer   {k1} ") == Principal("k1", "acme", RateLimit(requests_per_minute=60, burst=5))
    assert ring.authenticate(k1) == Principal("k1", "acme", RateLimit(requests_per_minute=60, burst=5))  # api-key
    assert ring.authenticate(k2) == Principal("k2", "acme", RateLimit(requests_per_minute=1, burst=1))  # override


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a b",
        "Token {k}",
        "{k}x",
        "x{k}",
        "Bearer " * 100,
    ],
)
def test_authenticate_rejects(value: str | None) -> None:
    k = generate_key()
    ring = ring_with(k)
    assert ring.authenticate(None if value is None else value.replace("{k}", k)) is None


def test_unknown_and_oversized_keys_rejected() -> None:
    ring = ring_with(generate_key())
    assert ring.authenticate(f"Bearer {generate_key()}") is None
    assert extract_key("Bearer " + "a" * 600) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_hash_properties(key: str) -> None:
    digest = hash_key(key)
    assert len(digest) == 64 and digest == digest.lower()
    assert digest == hashlib.sha256(key.encode("utf-8")).hexdigest()
    assert KeyEntry(id="k", sha256=digest, tenant="t").sha256 == digest  # every digest is a valid config value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.sampled_from(["", "Bearer ", "bearer ", "BEARER  "]), st.sampled_from(["", " ", "\t"]))
def test_authenticate_only_exact_key(noise: str, scheme: str, pad: str) -> None:
    k = "bzk_fixed-test-key"
    ring = ring_with(k)
    principal = ring.authenticate(pad + scheme + noise + pad)
    assert (principal is not None) == (noise.strip() == k)
    assert ring.authenticate(pad + scheme + k + pad) is not None


def test_main_keygen_snippet_loads_and_authenticates() -> None:
    key, snippet = main_keygen("acme", "ci-1")
    assert KEY_RE.fullmatch(key)
    assert key not in snippet
    assert yaml.safe_load(snippet) == [{"id": "ci-1", "sha256": hash_key(key), "tenant": "acme"}]
    indented = "\n".join("  " + line for line in snippet.splitlines())
    cfg = load_gateway_config_text(f"tenants:\n  acme: {{}}\nkeys:\n{indented}\n", "k.yaml")
    assert KeyRing(cfg).authenticate(f"Bearer {key}") == Principal("ci-1", "acme", RateLimit())


def test_main_keygen_quotes_yaml_lookalikes() -> None:
    _, snippet = main_keygen("123", "true")
    assert yaml.safe_load(snippet)[0]["id"] == "true" and yaml.safe_load(snippet)[0]["tenant"] == "123"


@pytest.mark.parametrize(("tenant", "key_id"), [("", "k"), ("t", ""), ("a b", "k"), ("t", "x" * 65), ("t", "-k")])
def test_main_keygen_rejects_bad_names(tenant: str, key_id: str) -> None:
    with pytest.raises(ValueError):
        main_keygen(tenant, key_id)
