"""Behavior certificates (spec §6): the three formats, deny-by-default permissions, strict YAML -> JSON,
JCS digests with a golden vector, Ed25519 signing and verification."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.a2as.cert_document import dump_document, parse_document
from bartizan.a2as.certificates import (
    Certificate,
    CertificateError,
    NetworkRule,
    Permissions,
    keygen,
    lint,
    lint_text,
    load_certificate,
    load_certificate_text,
    load_issuer,
    sign,
    verify,
)
from bartizan.schema import SchemaError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "a2as"
GOLDEN_JCS = (
    b'{"agent_id":"bot","n":1e+30,"permissions":{"models":["gpt-4o-mini"],'
    b'"tools":{"allow":["kb.*"],"deny":["kb.delete_*"]}},"t":"2025-10-01T12:00:00Z"}'
)
GOLDEN_DIGEST = "sha256:-LwBt2_ahm7bpjkVTQUH3fTEKd_BrutGY78Q58S-al8"
GOLDEN_YAML = """\
permissions:
  tools: {deny: [kb.delete_*], allow: [kb.*]}
  models: [gpt-4o-mini]
t: 2025-10-01T12:00:00Z   # a YAML timestamp: must stay the string it is written as
n: 1.0e+30
agent_id: bot
"""


def _issues(text: str, source: str = "c.yaml") -> list[str]:
    return [str(i) for i in lint_text(text, source)]


# ------------------------------------------------------------------------------------------ formats


def test_examples_one_per_format_load_and_lint_clean() -> None:
    formats = {p.name: load_certificate(p).format for p in sorted(EXAMPLES.glob("cert-*")) if p.suffix != ".pub"}
    assert formats["cert-a2as.yaml"] == "a2as.org"
    assert formats["cert-paper.json"] == "paper"
    assert formats["cert-native.yaml"] == "native"
    for name in formats:
        assert lint(EXAMPLES / name) == []


def test_a2as_org_effective_allowlist() -> None:
    p = load_certificate(EXAMPLES / "cert-a2as.yaml").permissions
    assert p.tool_allowed("email.read_inbox") and p.tool_allowed("calendar.list_events")  # agent tools + tool keys
    assert not p.tool_allowed("email.send_message") and not p.tool_allowed("")
    assert p.model_allowed("gpt-4o-mini") and not p.model_allowed("gpt-4o")
    assert p.mcp_allowed("calendar") and not p.mcp_allowed("shell")
    assert p.egress_allowed("https://api.mail.example.com/api/v1/messages")
    assert not p.egress_allowed("https://api.mail.example.com/api/v1/messages", "POST")


def test_paper_json_format() -> None:
    cert = load_certificate(EXAMPLES / "cert-paper.json")
    assert cert.syntax == "json" and cert.doc["agent_id"] == "email-assistant"
    p = cert.permissions
    assert p.tool_allowed("email.read_inbox") and p.tool_allowed("calendar.list")
    assert not p.tool_allowed("email.send_message") and not p.tool_allowed("calendar.delete_event")
    assert not p.model_allowed("gpt-4o")  # the paper format declares no models: none allowed


def test_deny_wins_and_globs_are_case_sensitive() -> None:
    p = Permissions(tools_allow=("email.*", "files.read", "x.exact"), tools_deny=("email.send_*", "x.exact"))
    assert p.tool_allowed("email.read") and p.tool_allowed("files.read")
    assert not p.tool_allowed("email.send_message")  # glob deny beats glob allow
    assert not p.tool_allowed("x.exact")  # exact deny beats exact allow
    assert not p.tool_allowed("Email.read") and not p.tool_allowed("files.read2")
    assert not Permissions().tool_allowed("anything")  # deny by default


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a.*", "a.b", "*", "b.?", "a.[bc]", "c"]), max_size=4),
    st.lists(st.sampled_from(["a.*", "a.b", "*", "b.?", "c"]), max_size=3),
    st.sampled_from(["a.b", "a.c", "b.x", "c", "d", "A.b"]),
)
def test_deny_always_wins_property(allow: list[str], deny: list[str], name: str) -> None:
    from fnmatch import fnmatchcase

    p = Permissions(tools_allow=tuple(allow), tools_deny=tuple(deny))
    expected = any(fnmatchcase(name, a) for a in allow) and not any(fnmatchcase(name, d) for d in deny)
    assert p.tool_allowed(name) is expected


def test_egress_rules_fail_closed() -> None:
    p = Permissions(
        networks=(
            NetworkRule("api.example.com", methods=("GET",), paths=("/v1",)),
            NetworkRule("*.svc.example.com", methods=("GET", "POST"), ports=("8443",)),
        )
    )
    assert p.egress_allowed("https://api.example.com/v1") and p.egress_allowed("https://API.example.com:443/v1/x?q=1")
    assert p.egress_allowed("https://a.svc.example.com:8443/anything", "post")
    denied = [
        "https://api.example.com/v10",  # prefix is per segment
        "https://api.example.com/v1/../admin",  # dot segments
        "https://api.example.com/v1/%2e%2e/admin",
        "https://api.example.com/v1//x",
        "http://api.example.com/v1",  # protocol
        "https://api.example.com:8443/v1",  # port
        "https://api.example.com@evil.com/v1",  # user info
        "https://evil.com/v1",
        "https://a.svc.example.com/x",  # default port not listed
        "https://api.example.com\\@evil.com/v1",
        "not a url",
        "",
    ]
    for url in denied:
        assert not p.egress_allowed(url), url
    assert not p.egress_allowed("https://api.example.com/v1", "DELETE")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_egress_never_raises(url: str) -> None:
    p = Permissions(networks=(NetworkRule("*"),))
    assert p.egress_allowed(url) in (True, False)
    assert p.egress_allowed("https://x.example" + url) in (True, False)


# ------------------------------------------------------------------------------------------ YAML -> JSON


def test_golden_digest_over_jcs_from_yaml_and_json() -> None:
    from bartizan.a2as.certificates import signing_body
    from bartizan.a2as.jcs import canonicalize

    from_yaml = load_certificate_text(GOLDEN_YAML, "g.yaml")
    assert from_yaml.doc["t"] == "2025-10-01T12:00:00Z"  # timestamps stay strings
    assert canonicalize(signing_body(from_yaml.doc)) == GOLDEN_JCS
    assert from_yaml.digest == GOLDEN_DIGEST
    as_json = json.dumps({"t": "2025-10-01T12:00:00Z", "agent_id": "bot", "n": 1e30, **json.loads(GOLDEN_JCS)})
    assert load_certificate_text(as_json, "g.json").digest == GOLDEN_DIGEST


def test_digest_ignores_signatures_and_empty_manifest() -> None:
    sigs = {"digest": "sha256:" + "A" * 43, "key": "ed25519:" + "A" * 43, "sig": "ed25519:" + "A" * 86}
    doc = json.loads(GOLDEN_JCS)
    signed = load_certificate_text(json.dumps({"manifest": {"signatures": sigs}, **doc}), "s.json")
    assert signed.digest == GOLDEN_DIGEST


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("permissions:\n  models: [a]\n  models: [b]\n", 3, "duplicate key 'models'"),
        ("permissions:\n  tools: {allow: [a]}\n1: x\n", 3, "non-string key 1"),
        ("permissions:\n  tools: {allow: [a]}\nyes: x\n", 3, "non-string key True"),
        ("permissions:\n  tools: {allow: [a]}\nx: .nan\n", 3, "NaN"),
        ("permissions:\n  tools: {allow: [a]}\nx: -.inf\n", 3, "Infinity"),
        ("permissions:\n  tools: {allow: [a]}\nx: !!binary aGk=\n", 3, "bytes"),
        ("permissions:\n  tools: {allow: [a]}\nx: 123456789012345678901\n", 3, "too large"),
        ('{"permissions": {"tools": {}},\n "a": 1,\n "a": 2}', 3, "duplicate key 'a'"),
        ('{"permissions": {"tools": {}},\n "a": NaN}', None, "NaN"),
        ('{"permissions": \n', 2, "invalid JSON"),
        ("permissions: [\n", 2, "invalid YAML"),
    ],
)
def test_yaml_json_rules_rejected_with_lines(text: str, line: int | None, fragment: str) -> None:
    issues = lint_text(text, "c.yaml")
    assert issues and any(fragment in str(i) for i in issues), [str(i) for i in issues]
    assert issues[0].line == line


def test_explicit_timestamp_tag_kept_as_text() -> None:
    cert = load_certificate_text("permissions: {}\nwhen: !!timestamp 2025-01-01\n", "c.yaml")
    assert cert.doc["when"] == "2025-01-01"


def test_lint_reports_every_problem_with_line_and_key() -> None:
    text = """\
manifest:
  version: 0.1
  schema: https://a2as.org/cert/schema
  subject: {name: x}
  issued: {by: me, at: yesterday}
  signatures: {digest: "sha256:short", key: x, sig: y}
agents:
  a: {tools: [ok, ""], models: gpt}
networks:
  h.example.com: {protocols: [gopher], ports: ["99999"], actions: ["G3T"]}
tool:
  oops: {}
"""
    issues = _issues(text)
    for expected in (
        "c.yaml:2: manifest.version",
        "c.yaml:5: manifest.issued.at",
        "c.yaml:6: manifest.signatures.digest",
        "c.yaml:6: manifest.signatures.key",
        "c.yaml:8: agents.a.tools[1]",
        "c.yaml:8: agents.a.models",
        "c.yaml:10: networks.h.example.com.protocols[0]",
        "c.yaml:10: networks.h.example.com.ports[0]",
        "c.yaml:10: networks.h.example.com.actions[0]",
        "c.yaml:11: tool: unknown key",
    ):
        assert any(i.startswith(expected) for i in issues), (expected, issues)


def test_native_permission_typos_are_errors_not_ignored() -> None:
    issues = _issues("permissions:\n  tools: {allow: [a], denied: [b]}\n")
    assert issues == ["c.yaml:2: permissions.tools.denied: unknown key"]
    assert _issues("hello: world\n") == [
        "c.yaml:1: not a certificate: expected an a2as.org `manifest`, or `permissions` (paper/native)"
    ]


tricky = st.text(alphabet=st.sampled_from(list("0123456789-:.eETyYnNo ~tx_é\t#'\"")), max_size=12)
cert_docs = st.fixed_dictionaries(
    {
        "agent_id": tricky,
        "permissions": st.fixed_dictionaries(
            {"tools": st.fixed_dictionaries({"allow": st.lists(tricky.filter(bool), max_size=3)})}
        ),
    },
    optional={
        "note": st.one_of(
            tricky,
            st.integers(-(2**53), 2**53),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.none(),
        )
    },
)


@settings(max_examples=200, deadline=None)
@given(cert_docs, st.sampled_from(["yaml", "json"]))
def test_dump_then_parse_round_trips(doc: dict[str, object], syntax: str) -> None:
    text = dump_document(doc, "json" if syntax == "json" else "yaml")
    assert parse_document(text, "x").data == doc


# ------------------------------------------------------------------------------------------ signing


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return keygen(tmp_path / "keys")


def test_keygen_files(keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    assert priv.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in priv.read_bytes()
    assert load_issuer(str(pub)) == pub.read_text().strip() and pub.read_text().startswith("ed25519:")
    with pytest.raises(CertificateError, match="refusing to overwrite"):
        keygen(priv.parent)


def _signed(tmp_path: Path, keys: tuple[Path, Path], name: str = "cert-native.yaml") -> tuple[Certificate, str]:
    out = tmp_path / ("signed" + Path(name).suffix)
    sign(EXAMPLES / name, keys[0], out)
    return load_certificate(out), load_issuer(str(keys[1]))


@pytest.mark.parametrize("name", ["cert-native.yaml", "cert-paper.json", "cert-a2as.yaml"])
def test_sign_then_verify_each_format(tmp_path: Path, keys: tuple[Path, Path], name: str) -> None:
    cert, pin = _signed(tmp_path, keys, name)
    assert cert.digest == load_certificate(EXAMPLES / name).digest  # signing changes nothing else
    assert cert.syntax == ("json" if name.endswith(".json") else "yaml")
    assert verify(cert, [pin]).status == "verified"


def test_checked_in_signed_example_verifies() -> None:
    cert = load_certificate(EXAMPLES / "cert-native.signed.yaml")
    pin = load_issuer(str(EXAMPLES / "cert-native.issuer.pub"))
    assert verify(cert, [pin]).ok
    assert cert.digest == load_certificate(EXAMPLES / "cert-native.yaml").digest


def test_tampering_untrusted_and_unsigned(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    cert, pin = _signed(tmp_path, keys)
    doc = json.loads(json.dumps(cert.doc))
    doc["permissions"]["tools"]["allow"].append("shell.exec")
    tampered = Certificate(cert.format, doc, cert.permissions, "t")
    result = verify(tampered, [pin])
    assert result.status == "invalid" and result.reason.startswith("digest_mismatch")

    other_priv, other_pub = keygen(tmp_path / "other")
    sign(tmp_path / "signed.yaml", other_priv, tmp_path / "resigned.yaml")
    resigned = load_certificate(tmp_path / "resigned.yaml")
    assert verify(resigned, [pin]).status == "untrusted"
    assert verify(resigned, [pin, load_issuer(str(other_pub))]).status == "verified"

    forged = json.loads(json.dumps(cert.doc))
    forged["manifest"]["signatures"]["sig"] = resigned.doc["manifest"]["signatures"]["sig"]
    assert verify(Certificate(cert.format, forged, cert.permissions, "f"), [pin]).reason == "bad_signature"

    assert verify(load_certificate(EXAMPLES / "cert-native.yaml"), [pin]).status == "unsigned"
    with pytest.raises(CertificateError):
        verify(cert, ["ed25519:not-a-key"])


def test_a2as_org_issued_signature_is_unverifiable_not_invalid(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    cert, pin = _signed(tmp_path, keys, "cert-a2as.yaml")
    doc = json.loads(json.dumps(cert.doc))
    doc["manifest"]["issued"]["by"] = "A2AS.org"  # its digest now differs from what A2AS.org would have signed
    result = verify(Certificate("a2as.org", doc, cert.permissions, "x"), [pin])
    assert result.status == "unverifiable" and not result.ok


def test_private_key_checks(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv = keys[0]
    os.chmod(priv, 0o644)
    with pytest.raises(CertificateError, match="chmod 600"):
        sign(EXAMPLES / "cert-native.yaml", priv, tmp_path / "o.yaml")
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    bad = tmp_path / "ec.pem"
    bad.write_bytes(ec_key)
    bad.chmod(0o600)
    with pytest.raises(CertificateError, match="not an Ed25519"):
        sign(EXAMPLES / "cert-native.yaml", bad, tmp_path / "o.yaml")
    assert not (tmp_path / "o.yaml").exists()


def test_sign_refuses_invalid_certificate(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("permissions:\n  tools: {allow: [a]}\n  tools: {}\n")
    with pytest.raises(SchemaError, match="bad.yaml:3"):
        sign(bad, keys[0], tmp_path / "o.yaml")
