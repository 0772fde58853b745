"""The `secrets` detector: provider keys, cloud credentials, private keys, JWTs, passwords in URLs and
assignments, high-entropy tokens; the placeholders and code it must leave alone; values hidden by encoding
or folding; evidence that never repeats a value; and the default pipeline's redaction.

No real credential appears in this file: every token is built at run time from a seeded generator.
"""

from __future__ import annotations

import base64
import json
import random
import string
import time

import pytest
from pydantic import ValidationError

from bartizan import taxonomy as tx
from bartizan.detectors.base import ScanContext
from bartizan.detectors.registry import ConfigError, default_registry
from bartizan.detectors.secrets import SecretRule, rule_set
from bartizan.pipeline import Firewall
from bartizan.policy.loader import load_policy_text
from bartizan.text.views import TextViews
from bartizan.types import Finding, Message, Role, Verdict

B62 = string.ascii_letters + string.digits
B64URL = B62 + "-_"
HEX = "0123456789abcdef"
UPPER_DIGITS = string.ascii_uppercase + string.digits


def rand(n: int, alphabet: str = B62, seed: int = 7) -> str:
    rng = random.Random(f"{seed}:{n}:{alphabet}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt() -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}))
    payload = b64url(json.dumps({"sub": "1234567890", "name": "Test User", "iat": 1516239022}))
    return f"{header}.{payload}.{rand(43, B64URL)}"


def scan(text: str, role: Role = Role.USER, **config: object) -> list[Finding]:
    detector = default_registry.get("secrets").build(config)
    return detector.scan(ScanContext(Message(role=role, content=text), TextViews(text)))


def one(text: str, **config: object) -> Finding:
    found = scan(text, **config)
    assert len(found) == 1, found
    return found[0]


def covered(text: str, f: Finding) -> str:
    (span,) = f.spans
    return text[span.start : span.end]


def assert_safe(f: Finding, value: str) -> None:
    """Evidence repeats no 8 characters of the value (public prefixes are shorter or not used)."""
    for i in range(max(1, len(value) - 7)):
        assert value[i : i + 8] not in f.evidence, f.evidence


TOKENS = [
    ("ghp_" + rand(36), "secrets.github.pat", "api_key"),
    ("gho_" + rand(36), "secrets.github.oauth", "api_key"),
    ("github_pat_" + rand(22) + "_" + rand(59), "secrets.github.fine_grained_pat", "api_key"),
    ("glpat-" + rand(20, B64URL), "secrets.gitlab.pat", "api_key"),
    ("sk-proj-" + rand(120, B64URL), "secrets.openai.project_key", "api_key"),
    ("sk-" + rand(20) + "T3BlbkFJ" + rand(20, seed=8), "secrets.openai.legacy_key", "api_key"),
    ("sk-ant-api03-" + rand(93, B64URL) + "AA", "secrets.anthropic.api_key", "api_key"),
    ("sk-" + rand(48), "secrets.generic.sk_key", "api_key"),
    ("gsk_" + rand(52), "secrets.groq.api_key", "api_key"),
    ("hf_" + rand(34, string.ascii_letters), "secrets.huggingface.token", "api_key"),
    ("xoxb-" + rand(12, string.digits) + "-" + rand(13, string.digits) + "-" + rand(24),
     "secrets.slack.token", "api_key"),
    ("https://hooks.slack.com/services/T" + rand(8, UPPER_DIGITS) + "/B" + rand(10, UPPER_DIGITS) + "/" + rand(24),
     "secrets.slack.webhook", "api_key"),
    ("sk_live_" + rand(24), "secrets.stripe.live_key", "api_key"),
    ("AIza" + rand(35, B64URL), "secrets.google.api_key", "api_key"),
    ("SG." + rand(22, B64URL) + "." + rand(43, B64URL), "secrets.sendgrid.api_key", "api_key"),
    ("npm_" + rand(36), "secrets.npm.token", "api_key"),
    ("pypi-AgEIcHlwaS5vcmc" + rand(70, B64URL), "secrets.pypi.token", "api_key"),
    (b64url("123456789012345678") + "." + rand(6, B64URL) + "." + rand(27, B64URL),
     "secrets.discord.bot_token", "api_key"),
    (rand(9, string.digits) + ":AA" + rand(33, B64URL), "secrets.telegram.bot_token", "api_key"),
    ("SK" + rand(32, HEX), "secrets.twilio.api_key", "api_key"),
    ("shpat_" + rand(32, HEX), "secrets.shopify.token", "api_key"),
    ("dapi" + rand(32, HEX), "secrets.databricks.token", "api_key"),
    ("dop_v1_" + rand(64, HEX), "secrets.digitalocean.token", "api_key"),
    ("AKIA" + rand(16, UPPER_DIGITS), "secrets.aws.access_key_id", "cloud_credentials"),
    (rand(3) + "8Q~" + rand(34, B62 + "_~.-"), "secrets.azure.client_secret", "cloud_credentials"),
    ("AGE-SECRET-KEY-1" + rand(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"), "secrets.private_key.age", "private_key"),
    (jwt(), "secrets.jwt", "jwt"),
]  # fmt: skip


# --- provider tokens --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("token", "rule_id", "category"), TOKENS, ids=[t[1] for t in TOKENS])
def test_token_found_with_exact_span_and_safe_evidence(token: str, rule_id: str, category: str) -> None:
    text = f"Here you go: {token} — keep it safe."
    f = one(text)
    assert (f.rule_id, f.category, covered(text, f)) == (rule_id, category, token)
    assert f.evidence.endswith(f"({len(token)} chars)")
    assert f.atlas == (tx.UNSECURED_CREDENTIALS, tx.DATA_LEAKAGE) and f.owasp == (tx.LLM02,)
    assert f.score >= 0.7
    assert_safe(f, token)


def test_github_evidence_reads_like_the_brief() -> None:
    assert one("ghp_" + rand(36)).evidence == "github personal access token (40 chars)"


def test_aws_key_pair_both_found() -> None:
    key_id, secret = "AKIA" + rand(16, UPPER_DIGITS), rand(40, B62 + "/+")
    text = f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    found = {f.rule_id: covered(text, f) for f in scan(text)}
    assert found == {"secrets.aws.access_key_id": key_id, "secrets.aws.secret_access_key": secret}


def test_azure_connection_string_key_only_is_the_span() -> None:
    key = rand(86, B62 + "+/") + "=="
    text = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net"
    f = one(text)
    assert (f.rule_id, covered(text, f)) == ("secrets.azure.storage_key", key)


# --- private keys and JWTs --------------------------------------------------------------------------------
def pem(kind: str = "RSA PRIVATE KEY", end: bool = True) -> str:
    body = "\n".join(rand(64, B62 + "+/", seed=i) for i in range(4))
    return f"-----BEGIN {kind}-----\n{body}\n" + (f"-----END {kind}-----" if end else "")


def test_pem_private_key_block_is_covered_whole() -> None:
    block = pem()
    text = f"my key:\n{block}\nthanks"
    f = one(text)
    assert (f.category, covered(text, f)) == ("private_key", block)
    assert_safe(f, block)


def test_pem_without_end_line_covers_the_body_and_json_escaped_keys_work() -> None:
    block = pem("OPENSSH PRIVATE KEY", end=False).rstrip()
    assert covered(block + "\n\nWhat is this?", one(block + "\n\nWhat is this?")) == block
    escaped = json.dumps({"type": "service_account", "private_key": pem("PRIVATE KEY")})
    assert one(escaped).rule_id == "secrets.private_key.pem"


@pytest.mark.parametrize(
    "text",
    ["What does -----BEGIN RSA PRIVATE KEY----- mean?", pem("PUBLIC KEY"), pem("CERTIFICATE")],
)
def test_headers_without_key_material_or_public_blocks(text: str) -> None:
    assert [f for f in scan(text) if f.category == "private_key"] == []


def test_jwt_needs_a_header_naming_alg() -> None:
    no_alg = b64url(json.dumps({"typ": "JWT", "kid": "k1"})) + "." + jwt().split(".", 1)[1]
    assert [f for f in scan(f"token {no_alg}") if f.category == "jwt"] == []


# --- URLs and assignments ---------------------------------------------------------------------------------
def test_password_in_url_only_the_password_is_redacted() -> None:
    text = "DATABASE_URL=postgres://admin:Xk9_pL2vQ@db.example.com:5432/app"
    f = one(text)
    assert (f.category, covered(text, f)) == ("url_credentials", "Xk9_pL2vQ")
    result = Firewall().scan(text)
    assert result.sanitized == "DATABASE_URL=postgres://admin:[URL_CREDENTIALS_1]@db.example.com:5432/app"


@pytest.mark.parametrize(
    "text",
    ["ssh://deploy@host.example.com/srv", "postgres://user:password@localhost/db", "https://example.com:8080/a@b",
     "mongodb+srv://<username>:<password>@cluster0.example.net", "redis://:${REDIS_PASSWORD}@cache:6379"],
)  # fmt: skip
def test_urls_without_a_real_password(text: str) -> None:
    assert scan(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [('DB_PASSWORD="Tr0ub4dor&3"', "Tr0ub4dor&3"), ("password: hunter22", "hunter22"),
     ("{'api_key': 'q8Zp2LwX7m'}", "q8Zp2LwX7m"), ("client_secret => 's3cr3t-V4lue'", "s3cr3t-V4lue"),
     ('"password": "Kj8#mP9$vL2"', "Kj8#mP9$vL2")],
)  # fmt: skip
def test_credential_assignments(text: str, value: str) -> None:
    f = one(text)
    assert (f.category, covered(text, f)) == ("password_assignment", value)
    assert_safe(f, value)


@pytest.mark.parametrize(
    "text",
    [
        "password: must be at least 8 characters",
        "api_key = os.environ['OPENAI_API_KEY']",
        "password = input('Password: ')",
        "def login(password: str, token: Optional[str] = None):",
        '{"password": {"type": "string", "description": "The user password"}}',
        "api_key = 'YOUR_API_KEY_HERE'",
        "token_type: Bearer",
        "max_tokens = 4096",
        "secret_key = get_random_secret_key()",
        "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
        '"token_scope": "read_write"',
        "password = '********'",
        "if password == confirm_password:",
        "passport_number: X1234567",
    ],
)
def test_assignments_that_are_not_credentials(text: str) -> None:
    assert scan(text) == []


# --- high-entropy tokens ----------------------------------------------------------------------------------
def test_high_entropy_token_after_a_credential_word() -> None:
    token = rand(40)
    for text in (f"my api key is {token}", f"Authorization: Bearer {token}"):
        f = one(text)
        assert (f.category, covered(text, f)) == ("high_entropy_token", token)
        assert f.score < 0.7


@pytest.mark.parametrize(
    "text",
    [
        "the key to success is AutoModelForSeq2SeqLM",
        "request id 123e4567-e89b-12d3-a456-426614174000",
        "token: google-auth-oauthlib-httplib2",
        f"checksum {rand(40)}",  # random, but no credential word
        "key " + "a1" * 20,
    ],
)
def test_entropy_look_alikes(text: str) -> None:
    assert scan(text) == []


# --- placeholders and near misses -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["export OPENAI_API_KEY=sk-...", "ghp_" + "x" * 36, "AKIAIOSFODNN7EXAMPLE", "sk_live_" + "0" * 24,
     "a risk-free plan", "task-" + rand(48), "my_ghp_" + rand(36), "hf_" + "a" * 34,
     "sk-" + "abcd" * 12, "eyJ" + rand(30) + " is not a JWT"],
)  # fmt: skip
def test_placeholders_and_look_alikes(text: str) -> None:
    assert scan(text) == []


# --- obfuscation ------------------------------------------------------------------------------------------
def test_secret_inside_base64_payload_maps_to_the_payload() -> None:
    token = "ghp_" + rand(36)
    blob = base64.b64encode(f"GITHUB_TOKEN={token}".encode()).decode()
    text = f"decode this: {blob}"
    found = [f for f in scan(text) if f.rule_id == "secrets.github.pat"]
    assert len(found) == 1 and found[0].view.startswith("base64")
    assert covered(text, found[0]) in blob and len(covered(text, found[0])) > 20
    assert [f for f in scan(text, scan_decoded=False) if f.rule_id == "secrets.github.pat"] == []


def test_fullwidth_and_zero_width_tokens_are_folded_and_mapped_back() -> None:
    token = "ghp_" + rand(36)
    wide = "".join(chr(ord(c) + 0xFEE0) for c in token)  # fullwidth forms
    f = one(f"key {wide} end")
    assert f.view == "normalized" and covered(f"key {wide} end", f) == wide
    split = token[:10] + "\u200b" + token[10:]
    f = one(f"key {split} end")
    assert covered(f"key {split} end", f) == split


# --- rules and configuration ------------------------------------------------------------------------------
def test_every_rule_category_is_declared_and_rules_are_well_formed() -> None:
    declared = set(default_registry.get("secrets").categories)
    rules = rule_set()
    every = [r for group in rules.by_first.values() for r, _ in group]
    every += [r for _, r, _ in rules.literal] + [r for r, _ in rules.near + rules.keyword]
    assert {r.category for r in every} == declared
    for r in every:
        assert r.provider and r.id.startswith("secrets.")


def test_rule_needs_exactly_one_trigger() -> None:
    base = {"id": "x", "category": "api_key", "provider": "p", "pattern": "abc"}
    with pytest.raises(ValidationError):
        SecretRule.model_validate(base)
    with pytest.raises(ValidationError):
        SecretRule.model_validate({**base, "prefixes": ["a"], "literals": ["b"]})
    assert SecretRule.model_validate({**base, "prefixes": ["abc"]}).ignore_case is False


def test_config_is_validated_and_min_entropy_applies() -> None:
    with pytest.raises(ConfigError):
        default_registry.get("secrets").build({"threshold": 1})
    assert scan(f"my api key is {rand(40)}", min_entropy=7.0) == []


@pytest.mark.parametrize("unit", ["password=", "token: ", "ghp_", "eyJ", "AKIA", "-----BEGIN ", "1a", "key ", "sk-"])
def test_adversarial_repetition_stays_fast(unit: str) -> None:
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    t0 = time.perf_counter()
    scan(text)
    assert time.perf_counter() - t0 < 2.0


# --- pipeline ---------------------------------------------------------------------------------------------
def test_pipeline_redacts_a_key_in_a_prompt_and_in_an_answer() -> None:
    token = "ghp_" + rand(36)
    result = Firewall().scan(f"Use {token} to push, then {token} again.")
    assert result.verdict is Verdict.REDACT
    assert result.sanitized == "Use [API_KEY_1] to push, then [API_KEY_1] again."
    answer = Firewall().scan(f"Sure, the key is sk_live_{rand(24)}.", role=Role.ASSISTANT)
    assert answer.verdict is Verdict.REDACT and "sk_live_" not in answer.sanitized


def test_pipeline_custom_policy_can_block() -> None:
    policy = load_policy_text("version: 1\ndetectors:\n  secrets:\n    action: block\n")
    assert Firewall(policy).scan(f"key AKIA{rand(16, UPPER_DIGITS)}").verdict is Verdict.BLOCK
    assert Firewall(policy).scan("how do I rotate an AWS access key?").verdict is Verdict.ALLOW
