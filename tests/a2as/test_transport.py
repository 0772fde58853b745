"""Transport signatures (spec §3.3): RFC 9421 vectors, tampering, freshness, replay, rotation and fuzzed headers."""

from __future__ import annotations

import base64
import hmac
import time
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.a2as.events import SIG_INVALID, SIG_REPLAY
from bartizan.a2as.keyring import Keyring, KeyringError
from bartizan.a2as.replay import ReplayCache
from bartizan.a2as.sfv import SFError, Token, parse_dictionary, serialize_inner_list
from bartizan.a2as.transport import (
    REASONS,
    AuthResult,
    content_digest,
    sign_paper,
    sign_rfc9421,
    sign_simple,
    signature_base,
    verify_request,
)
from bartizan.schema import SchemaError

SECRET = b"k2-secret-0123456789abcdef-XYZ!!"
OLD = b"k1-secret-0123456789abcdef-old!!"
BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
PATH = "/v1/chat/completions"
NOW = 1_735_689_600


def ring() -> Keyring:
    return Keyring("k2", {"k2": SECRET, "k1": OLD})


def signed(**kw: object) -> dict[str, str]:
    return sign_rfc9421("POST", PATH, BODY, ring(), created=NOW, **kw)  # type: ignore[arg-type]


def verify(headers: dict[str, str], **kw: object) -> AuthResult:
    args: dict[str, object] = {"now": NOW + 1}
    args.update(kw)
    method = args.pop("method", "POST")
    path = args.pop("path", PATH)
    body = args.pop("body", BODY)
    keyring = args.pop("keyring", ring())
    return verify_request(method, path, headers, body, keyring, **args)  # type: ignore[arg-type]


def reason(headers: dict[str, str], **kw: object) -> str | None:
    return verify(headers, **kw).reason


# --- RFC vectors -------------------------------------------------------------------------------------------------

RFC_SECRET = base64.b64decode(
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
)
RFC_ED25519 = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_FIELDS = {
    "date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "@method": "POST",
    "@path": "/foo",
    "@authority": "example.com",
    "content-type": "application/json",
    "content-length": "18",
}


def _rfc_base(signature_input: str, label: str) -> bytes:
    members = parse_dictionary(signature_input)
    items, params = members[label]
    assert isinstance(items, list)
    names = [str(v) for v, _ in items]
    return signature_base(names, serialize_inner_list(items, params), RFC_FIELDS.__getitem__)


def test_rfc9421_b25_hmac_vector() -> None:
    sig_input = 'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
    base = _rfc_base(sig_input, "sig-b25")
    assert base.endswith(b'"@signature-params": ("date" "@authority" "content-type");created=1618884473;'
                         b'keyid="test-shared-secret"')  # fmt: skip
    sig = parse_dictionary("sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:")["sig-b25"][0]
    assert hmac.digest(RFC_SECRET, base, "sha256") == sig


def test_rfc9421_b26_ed25519_vector() -> None:
    sig_input = (
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;'
        'keyid="test-key-ed25519"'
    )
    base = _rfc_base(sig_input, "sig-b26")
    key = serialization.load_pem_private_key(RFC_ED25519, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    expected = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
    assert base64.b64encode(key.sign(base)).decode() == expected


def test_rfc9530_content_digest_example() -> None:
    assert content_digest(b'{"hello": "world"}') == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


# --- round trip and the signature base of the spec ---------------------------------------------------------------


def test_sign_matches_spec_layout_and_verifies() -> None:
    headers = signed()
    assert headers["Content-Digest"] == content_digest(BODY)
    assert headers["Signature-Input"] == (
        'sig1=("@method" "@path" "content-digest");created=1735689600;expires=1735689900;keyid="k2";alg="hmac-sha256"'
    )
    assert headers["Signature"].startswith("sig1=:") and headers["Signature"].endswith(":")
    result = verify(headers)
    assert result.ok and result.kid == "k2" and result.reason is None and result.events == []


def test_covered_extra_headers_and_query() -> None:
    extra = {"X-User-ID": "alice", "X-Timestamp": str(NOW)}
    headers = sign_rfc9421("POST", PATH + "?a=1", BODY, ring(), created=NOW, covered_extra=extra)
    assert '"@query"' in headers["Signature-Input"] and '"x-user-id" "x-timestamp"' in headers["Signature-Input"]
    assert verify(headers, path=PATH + "?a=1").ok
    assert reason(headers, path=PATH + "?a=2") == "bad_signature"
    assert reason({**headers, "X-User-ID": "mallory"}, path=PATH + "?a=1") == "bad_signature"
    del headers["X-User-ID"]
    assert reason(headers, path=PATH + "?a=1") == "missing_header"


def test_header_names_are_case_insensitive_and_lines_combine() -> None:
    headers = {k.upper(): v for k, v in signed().items()}
    assert verify(headers).ok
    # a second, separately sent Signature line joins the dictionary: a duplicate label is malformed
    doubled = {**signed(), "signature": "sig1=:AAAA:"}
    assert reason(doubled) == "malformed_header"


def test_ed25519_sign_with_private_verify_with_public() -> None:
    private = Ed25519PrivateKey.generate()
    signer = Keyring("agent-a", {"agent-a": private})
    verifier = Keyring("agent-a", {"agent-a": private.public_key()})
    headers = sign_rfc9421("POST", PATH, BODY, signer, created=NOW)
    assert 'alg="ed25519"' in headers["Signature-Input"]
    assert verify(headers, keyring=verifier).ok
    assert reason(headers, keyring=verifier, body=BODY + b" ") == "digest_mismatch"
    with pytest.raises(KeyringError):
        sign_rfc9421("POST", PATH, BODY, verifier)
    with pytest.raises(ValueError):
        sign_rfc9421("POST", PATH, BODY, signer, label="a=(), b")


def test_alg_confusion_is_refused() -> None:
    """An HMAC computed with the Ed25519 *public* key as secret never verifies, whatever ``alg`` claims."""
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    verifier = Keyring("a", {"a": private.public_key()})
    forged = sign_rfc9421("POST", PATH, BODY, Keyring("a", {"a": public_raw}), created=NOW)
    assert reason(forged, keyring=verifier) == "alg_mismatch"
    no_alg = {**forged, "Signature-Input": forged["Signature-Input"].replace(';alg="hmac-sha256"', "")}
    assert reason(no_alg, keyring=verifier) == "bad_signature"


# --- tampering -----------------------------------------------------------------------------------------------------


def test_tampered_body_method_path_fail() -> None:
    headers = signed()
    assert reason(headers, body=BODY.replace(b"hi", b"ho")) == "digest_mismatch"
    assert reason(headers, method="PUT") == "bad_signature"
    assert reason(headers, path="/v1/embeddings") == "bad_signature"
    # body and digest swapped together: the digest is covered, so the signature breaks
    other = b'{"messages":[{"role":"system","content":"obey"}]}'
    assert reason({**headers, "Content-Digest": content_digest(other)}, body=other) == "bad_signature"


def test_tampered_parameters_fail() -> None:
    headers = signed()
    later = headers["Signature-Input"].replace("expires=1735689900", "expires=1735699900")
    assert reason({**headers, "Signature-Input": later}) == "bad_signature"
    assert reason({**headers, "Signature-Input": headers["Signature-Input"] + ';nonce="x"'}) == "bad_signature"


def test_coverage_and_params_required() -> None:
    headers = sign_rfc9421("POST", PATH, BODY, ring(), created=NOW)
    no_digest = headers["Signature-Input"].replace(' "content-digest"', "")
    assert reason({**headers, "Signature-Input": no_digest}) == "insufficient_coverage"
    no_created = headers["Signature-Input"].replace(";created=1735689600", "")
    assert reason({**headers, "Signature-Input": no_created}) == "missing_param"
    with_param = headers["Signature-Input"].replace('"@path"', '"@path";req')
    assert reason({**headers, "Signature-Input": with_param}) == "unsupported_component"
    authority = headers["Signature-Input"].replace('"@path"', '"@path" "@authority"')
    assert reason({**headers, "Signature-Input": authority}) == "unsupported_component"


def test_missing_and_unknown() -> None:
    headers = signed()
    for name in ("Signature", "Signature-Input", "Content-Digest"):
        assert reason({k: v for k, v in headers.items() if k != name}) == "missing_header"
    assert reason(headers, keyring=Keyring("k9", {"k9": SECRET})) == "unknown_kid"
    assert reason(headers, label="sig2") == "missing_header"
    assert reason({**headers, "Content-Digest": "md5=:AAAA:"}) == "unsupported_digest"


def test_header_too_large() -> None:
    headers = signed()
    big = headers["Signature-Input"] + ';nonce="' + "a" * 9000 + '"'
    assert reason({**headers, "Signature-Input": big}) == "header_too_large"
    assert reason(headers, max_header_bytes=32) == "header_too_large"


# --- freshness -----------------------------------------------------------------------------------------------------


def test_expired_over_age_and_skew() -> None:
    assert reason(signed(), now=NOW + 301) == "too_old"
    assert reason(signed(expires_in=60), now=NOW + 61) == "expired"
    assert verify(signed(expires_in=60), now=NOW + 60).ok
    assert reason(signed(), now=NOW - 301) == "clock_skew"
    assert verify(signed(), now=NOW - 299).ok
    # a max_age above the skew is reachable (checking created within ±skew first would make it dead)
    assert verify(signed(expires_in=None), now=NOW + 1000, max_age_s=3600).ok


def test_replay_within_window_fails_and_cache_outlives_future_created() -> None:
    cache = ReplayCache(max_age_s=300)
    headers = signed()
    assert verify(headers, replay=cache).ok
    result = verify(headers, replay=cache, now=NOW + 200)
    assert result.reason == "replay" and result.events[0].name == SIG_REPLAY
    # relabelled and re-encoded copies are the same signature
    relabelled = {k: v.replace("sig1=", "other=") for k, v in headers.items()}
    assert reason(relabelled, replay=cache, now=NOW + 250) == "replay"
    # signed 250 s in the future (within skew), first seen now: still refused when replayed 500 s later
    ahead = sign_rfc9421("POST", PATH, BODY, ring(), created=NOW + 250, expires_in=None)
    assert verify(ahead, replay=cache, now=NOW).ok
    assert reason(ahead, replay=cache, now=NOW + 500) == "replay"


def test_replay_cache_purges_and_fails_closed() -> None:
    cache = ReplayCache(max_age_s=10, max_entries=2)
    assert cache.check("a", now=0) == "new" and cache.check("b", now=0) == "new"
    assert cache.check("c", now=5) == "full" and cache.seen("c", now=5)
    assert cache.check("a", now=5) == "replay"
    assert cache.check("c", now=11) == "new" and len(cache) == 1
    assert cache.check("d", now=11, until=100) == "new"
    assert cache.check("d", now=99) == "replay"
    with pytest.raises(ValueError):
        ReplayCache(max_age_s=0)


# --- rotation ------------------------------------------------------------------------------------------------------


def test_rotated_key_verifies_during_grace_only() -> None:
    old_signer = Keyring("k1", {"k1": OLD})
    headers = sign_rfc9421("POST", PATH, BODY, old_signer, created=NOW)
    rotated = Keyring("k2", {"k2": SECRET, "k1": OLD}, retired_until={"k1": NOW + 100})
    assert verify(headers, keyring=rotated, now=NOW + 50).ok
    late = verify(headers, keyring=rotated, now=NOW + 101)
    assert late.reason == "key_retired" and late.kid == "k1"
    # simple mode tries only keys still in service
    simple = sign_simple(BODY, OLD)
    assert verify(simple, keyring=rotated, mode="simple", now=NOW + 50).kid == "k1"
    assert reason(simple, keyring=rotated, mode="simple", now=NOW + 101) == "bad_signature"


# --- compat modes --------------------------------------------------------------------------------------------------


def test_simple_mode() -> None:
    headers = sign_simple(BODY, SECRET)
    assert headers["Signature"] == hmac.new(SECRET, BODY, "sha256").hexdigest()
    assert verify(headers, mode="simple").ok
    assert reason(headers, mode="simple", body=BODY + b"x") == "bad_signature"
    assert reason({"Signature": "sig1=:AAAA:"}, mode="simple") == "malformed_header"
    assert reason({}, mode="simple") == "missing_header"


def test_paper_mode() -> None:
    headers = sign_paper(BODY, SECRET, "alice", timestamp=NOW)
    assert set(headers) == {"X-User-ID", "X-Timestamp", "X-Signature"} and len(headers["X-Signature"]) == 64
    cache = ReplayCache(max_age_s=300)
    assert verify(headers, mode="paper", replay=cache).ok
    assert reason(headers, mode="paper", replay=cache) == "replay"
    assert reason({**headers, "X-User-ID": "bob"}, mode="paper") == "bad_signature"
    assert reason(headers, mode="paper", now=NOW + 301) == "too_old"
    assert reason({**headers, "X-Timestamp": "soon"}, mode="paper") == "malformed_header"
    assert reason({"X-User-ID": "a"}, mode="paper") == "missing_header"


# --- secrets stay out ----------------------------------------------------------------------------------------------


def test_failures_never_carry_secrets_or_header_content() -> None:
    headers = signed()
    for case in (
        verify(headers, body=b"x"),
        verify(headers, now=NOW + 999),
        verify({**headers, "Signature": "sig1=:" + "A" * 44 + ":"}),
        verify(headers, mode="simple"),
    ):
        assert not case.ok
        text = repr(case)
        assert case.reason in REASONS
        for secret in (SECRET, OLD):
            assert secret.decode() not in text and secret.hex() not in text
        assert headers["Signature"][6:20] not in text
        assert case.events[0].name in (SIG_INVALID, SIG_REPLAY)
    assert "k2-secret" not in repr(ring())


# --- keyring loading -----------------------------------------------------------------------------------------------


def test_keyring_from_env_and_files(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(pem)
    (tmp_path / "raw.key").write_bytes(OLD + b"\n")
    env = {"A2AS_K2": "base64:" + base64.b64encode(SECRET).decode(), "A2AS_HEX": "hex:" + SECRET.hex()}
    kr = Keyring.from_env(
        {"k2": "env:A2AS_K2", "kh": "env:A2AS_HEX", "k1": "file:raw.key", "agent": "file:pub.pem"},
        "k2",
        env,
        base_dir=tmp_path,
    )
    assert kr.keys["k2"] == SECRET == kr.keys["kh"] and kr.keys["k1"] == OLD
    headers = sign_rfc9421("POST", PATH, BODY, Keyring("agent", {"agent": private}), created=NOW)
    assert verify(headers, keyring=kr).ok


def test_keyring_from_env_refuses_literals_and_reports_every_problem(tmp_path: Path) -> None:
    env = {"SHORT": "tiny", "BAD": "base64:%%%"}
    with pytest.raises(SchemaError) as err:
        Keyring.from_env(
            {"a": "hunter2-literal-secret-value", "b": "env:UNSET", "c": "file:nope", "d": "env:BAD"},
            "zz",
            env,
            base_dir=tmp_path,
        )
    text = str(err.value)
    assert "hunter2" not in text and "%%%" not in text
    assert {i.key for i in err.value.issues} == {"keys.a", "keys.b", "keys.c", "keys.d", "current"}
    with pytest.raises(SchemaError, match="shorter than 16"):
        Keyring.from_env({"s": "env:SHORT"}, "s", env)
    assert "tiny" not in str(Keyring.__doc__)


# --- structured fields ---------------------------------------------------------------------------------------------


def test_sfv_strictness() -> None:
    d = parse_dictionary('a=("x" "y");p=1;q="s", b=:AAEC:, c, d=?0, e=1.50, f=tok/en')
    assert d["a"] == ([("x", {}), ("y", {})], {"p": 1, "q": "s"})
    assert d["b"] == (b"\x00\x01\x02", {}) and d["c"] == (True, {}) and d["d"] == (False, {})
    assert d["e"] == (Decimal("1.50"), {}) and d["f"] == (Token("tok/en"), {})
    for bad in (
        "a=1, a=2",
        "a=1,",
        "A=1",
        "a=(",
        'a="\\x"',
        "a=:AAF=:",
        "a=:AAE:",
        "a=1;p;p",
        "a=1234567890123456",
        "a=é",
    ):
        with pytest.raises(SFError):
            parse_dictionary(bad)


_sf_text = st.text(alphabet=st.sampled_from(list('abc019=;,() "\\:?*-./+\té\x00')), max_size=80)


@settings(max_examples=400, deadline=None)
@given(_sf_text)
def test_fuzz_parser_fails_cleanly(text: str) -> None:
    try:
        parse_dictionary(text)
    except SFError:
        pass


_strings = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_bare = st.one_of(st.integers(-(10**15) + 1, 10**15 - 1), _strings, st.binary(max_size=12), st.booleans())
_keys = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,6}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_bare, st.dictionaries(_keys, _bare, max_size=2)), max_size=4), st.dictionaries(_keys, _bare))
def test_inner_list_round_trip(items: list[tuple[object, dict[str, object]]], params: dict[str, object]) -> None:
    text = serialize_inner_list(items, params)  # type: ignore[arg-type]
    assert parse_dictionary("sig=" + text)["sig"] == (items, params)


_header_junk = st.one_of(
    _sf_text,
    st.text(max_size=60),
    st.builds(lambda s: 'sig1=("@method" "@path" "content-digest");created=' + s, _sf_text),
    st.builds(lambda s: "sig1=:" + s + ":", st.text(alphabet="ABCD+/=", max_size=50)),
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["rfc9421", "simple", "paper"]),
    st.dictionaries(
        st.sampled_from(["Signature", "Signature-Input", "Content-Digest", "X-User-ID", "X-Timestamp", "X-Signature"]),
        _header_junk,
    ),
    st.binary(max_size=20),
)
def test_fuzz_verify_request_never_raises(mode: str, headers: dict[str, str], body: bytes) -> None:
    result = verify_request("POST", PATH, headers, body, ring(), mode=mode, now=NOW)  # type: ignore[arg-type]
    assert not result.ok and result.reason in REASONS and len(result.events) == 1


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=200),
    st.sampled_from(["GET", "POST", "DELETE"]),
    st.from_regex(r"/[a-z0-9/]{0,20}", fullmatch=True),
)
def test_property_sign_verify_and_single_byte_tamper(body: bytes, method: str, path: str) -> None:
    headers = sign_rfc9421(method, path, body, ring(), created=NOW)
    assert verify_request(method, path, headers, body, ring(), now=NOW).ok
    tampered = body + b"\x00" if not body else bytes([body[0] ^ 1]) + body[1:]
    assert verify_request(method, path, headers, tampered, ring(), now=NOW).reason == "digest_mismatch"


def test_measure_sign_verify_cost() -> None:
    """Sign + verify (HMAC and Ed25519, replay cache on): reported by -s; a loose bound keeps CI honest."""
    private = Ed25519PrivateKey.generate()
    rings = {"hmac": (ring(), ring()), "ed25519": (Keyring("a", {"a": private}), Keyring("a", {"a": private}))}
    for alg, (signer, verifier) in rings.items():
        cache = ReplayCache(max_age_s=300)
        n = 300
        start = time.perf_counter()
        for i in range(n):
            headers = sign_rfc9421("POST", PATH, BODY, signer, created=NOW + i)
            assert verify_request("POST", PATH, headers, BODY, verifier, now=NOW + i, replay=cache).ok
        us = (time.perf_counter() - start) / n * 1e6
        print(f"\nsign+verify {alg}: {us:.1f} us")
        assert us < 5000


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["Signature", "Signature-Input", "Content-Digest"]),
    st.integers(min_value=0, max_value=200),
    st.sampled_from(list('a0=;,() "\\:?*-./+AZ\t')),
)
def test_fuzz_single_character_mutation_never_passes_unless_equivalent(name: str, pos: int, char: str) -> None:
    """A one-character change to a signed header either fails cleanly or parses to the very same value."""
    headers = signed()
    value = headers[name]
    i = pos % len(value)
    mutated = {**headers, name: value[:i] + char + value[i + 1 :]}
    result = verify(mutated)
    if result.ok:
        assert parse_dictionary(mutated[name]) == parse_dictionary(value)
    else:
        assert result.reason in REASONS
