"""Boundary token derivation (spec §3.1): HKDF session keys, keyed HMAC tokens, unkeyed compat tokens."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from bartizan.a2as.tokens import (
    TokenError,
    _hkdf_sha256,
    boundary_token,
    derive_session_key,
    unkeyed_token,
)

SECRET = b"s" * 32
KEY = derive_session_key(SECRET, "k1", "session-1")


def test_hkdf_rfc5869_vectors() -> None:
    ikm = bytes.fromhex("0b" * 22)
    okm1 = _hkdf_sha256(ikm, bytes(range(13)), bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42)
    assert okm1.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    okm3 = _hkdf_sha256(ikm, b"", b"", 42)
    assert okm3.hex() == ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")


def test_session_key_matches_spec_derivation() -> None:
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"k1", info=b"a2as-boundary-v1\x1fsession-1").derive(
        SECRET
    )
    assert KEY == expected
    assert len(KEY) == 32


def test_session_key_depends_on_every_input() -> None:
    keys = {
        KEY,
        derive_session_key(SECRET, "k2", "session-1"),
        derive_session_key(SECRET, "k1", "session-2"),
        derive_session_key(b"t" * 32, "k1", "session-1"),
    }
    assert len(keys) == 4


@pytest.mark.parametrize(
    ("secret", "kid", "session"),
    [(b"short", "k1", "s"), (SECRET, "", "s"), (SECRET, "k1", ""), (SECRET, "k\x1f1", "s"), (SECRET, "k1", "a\x1fb")],
)
def test_session_key_rejects_bad_input_without_echoing_secret(secret: bytes, kid: str, session: str) -> None:
    with pytest.raises(TokenError) as info:
        derive_session_key(secret, kid, session)
    assert "sssss" not in str(info.value) and "short" not in str(info.value)


def test_boundary_token_is_the_spec_hmac() -> None:
    msg = b"user\x1f3\x1fhello \xc3\xa9"
    assert boundary_token(KEY, "user", 3, "hello é") == hmac.new(KEY, msg, hashlib.sha256).hexdigest()[:16]
    assert boundary_token(KEY, "user", 3, "hello é", length=8) == hmac.new(KEY, msg, hashlib.sha256).hexdigest()[:8]


def test_tokens_unique_per_index_kind_key_and_content() -> None:
    tokens = {
        boundary_token(KEY, "user", 0, "same"),
        boundary_token(KEY, "user", 1, "same"),
        boundary_token(KEY, "tool", 0, "same"),
        boundary_token(KEY, "user", 0, "same!"),
        boundary_token(derive_session_key(SECRET, "k1", "session-2"), "user", 0, "same"),
    }
    assert len(tokens) == 5


def test_index_and_content_cannot_be_shifted_across_the_separator() -> None:
    # index 1 + content "2x" must differ from index 12 + content "x": the 0x1F separator keeps them apart
    assert boundary_token(KEY, "user", 1, "2x") != boundary_token(KEY, "user", 12, "x")


@pytest.mark.parametrize("length", [0, 7, 17, 64])
def test_token_length_bounds(length: int) -> None:
    with pytest.raises(TokenError):
        boundary_token(KEY, "user", 0, "x", length=length)
    with pytest.raises(TokenError):
        unkeyed_token("x", length=length)


@pytest.mark.parametrize(("kind", "index"), [("User", 0), ("us er", 0), ("", 0), ("user", -1), ("user", True)])
def test_token_rejects_bad_kind_and_index(kind: str, index: int) -> None:
    with pytest.raises(TokenError):
        boundary_token(KEY, kind, index, "x")


def test_token_rejects_short_key() -> None:
    with pytest.raises(TokenError):
        boundary_token(b"k" * 8, "user", 0, "x")


def test_unkeyed_token_is_public_sha256_prefix() -> None:
    assert unkeyed_token("hello") == hashlib.sha256(b"hello").hexdigest()[:8]
    assert unkeyed_token("hello", 16) == hashlib.sha256(b"hello").hexdigest()[:16]


@given(
    content=st.text(),
    index=st.integers(min_value=0, max_value=10**6),
    kind=st.sampled_from(["user", "tool", "agent", "system"]),
    length=st.integers(min_value=8, max_value=16),
)
def test_tokens_are_deterministic_lowerhex(content: str, index: int, kind: str, length: int) -> None:
    t = boundary_token(KEY, kind, index, content, length)
    assert re.fullmatch(f"[0-9a-f]{{{length}}}", t)
    assert t == boundary_token(KEY, kind, index, content, length)
    assert re.fullmatch(f"[0-9a-f]{{{length}}}", unkeyed_token(content, length))
