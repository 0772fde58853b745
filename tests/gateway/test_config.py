"""Gateway config: YAML validation with located errors, cross-field checks, environment overrides."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.gateway.config import (
    AuditConfig,
    GatewayConfig,
    KeyEntry,
    RateLimit,
    TenantConfig,
    UpstreamConfig,
    load_gateway_config,
    load_gateway_config_text,
)
from bartizan.schema import SchemaError

DIGEST = "ab" * 32


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def issues(exc: pytest.ExceptionInfo[SchemaError]) -> list[tuple[int | None, str, str]]:
    return [(i.line, i.key, i.message) for i in exc.value.issues]


def test_defaults_without_file() -> None:
    cfg = load_gateway_config(None, env={})
    assert cfg.host == "127.0.0.1" and cfg.port == 8080
    assert list(cfg.tenants) == ["default"]
    assert cfg.tenants["default"].upstream.url == "demo"
    assert cfg.keys == [] and cfg.allow_anonymous is False and cfg.redis_url is None
    assert cfg.audit.url is None  # the embedded trail in the home directory (bartizan.gateway.embedded)


def test_full_file_loads(tmp_path: Path) -> None:
    (tmp_path / "strict.yaml").write_text("version: 1\n", encoding="utf-8")
    path = write(
        tmp_path,
        f"""\
host: 0.0.0.0
port: 9000
tenants:
  acme:
    policy: strict.yaml
    upstream:
      url: https://api.openai.com/v1/
      api_key_env: OPENAI_API_KEY
      timeout_s: 30
    on_block: refusal
    rate_limit: {{requests_per_minute: 120, burst: 10}}
    models: [gpt-4o-mini]
  default: {{}}
keys:
  - id: acme-ci
    sha256: {DIGEST.upper()}
    tenant: acme
    rate_limit: {{requests_per_minute: 6, burst: 1}}
redis_url: redis://127.0.0.1:6379/0
stream: {{holdback_chars: 0, scan_every_chars: 1}}
audit: {{url: "postgresql://postgres@127.0.0.1:5432/test", capture_prompts: true, capture_key_env: BZ_CAP}}
log_level: DEBUG
""",
    )
    cfg = load_gateway_config(path, env={})
    acme = cfg.tenants["acme"]
    assert acme.policy == str((tmp_path / "strict.yaml").resolve())  # relative to the config file
    assert acme.upstream.url == "https://api.openai.com/v1"
    assert acme.on_block == "refusal" and acme.models == ["gpt-4o-mini"]
    assert cfg.keys[0].sha256 == DIGEST  # normalised to lower case
    assert cfg.keys[0].rate_limit == RateLimit(requests_per_minute=6, burst=1)
    assert cfg.log_level == "debug" and cfg.stream.holdback_chars == 0


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("port: 8080\nbogus: 1\n", 2, "bogus", "unknown key"),
        ("port: high\n", 1, "port", "integer"),
        ("port: 70000\n", 1, "port", "65535"),
        ("tenants:\n  t1:\n    on_block: shrug\n", 3, "tenants.t1.on_block", "'error' or 'refusal'"),
        ("tenants:\n  t1:\n    rate_limit:\n      burst: 0\n", 4, "tenants.t1.rate_limit.burst", "greater than"),
        ("tenants:\n  t1:\n    rate_limit:\n      requests_per_minute: 0\n", 4, "requests_per_minute", "greater"),
        ("tenants:\n  t1:\n    upstream:\n      url: ftp://x\n", 4, "tenants.t1.upstream.url", "http"),
        ("tenants:\n  t1:\n    upstream:\n      api_key_env: sk-live-123\n", 4, "api_key_env", "NAME"),
        ("tenants: {}\n", 1, "tenants", "at least one"),
        ("tenants:\n  'bad name': {}\n", 1, "tenants", "tenant name"),
        ("keys:\n  - id: k\n    sha256: abc\n    tenant: default\n", 3, "keys[0].sha256", "64 hex"),
        ("keys:\n  - id: k\n    tenant: default\n", 2, "keys[0].sha256", "required"),
        ("redis_url: http://x\n", 1, "redis_url", "redis://"),
        ("log_level: loud\n", 1, "log_level", "one of"),
        ("audit:\n  capture_prompts: true\n", 1, "audit", "capture_key_env"),
        ("stream:\n  scan_every_chars: 0\n", 2, "stream.scan_every_chars", "greater"),
    ],
)
def test_schema_errors_name_line_and_key(text: str, line: int, key: str, fragment: str) -> None:
    with pytest.raises(SchemaError) as exc:
        load_gateway_config_text(text, "gw.yaml")
    found = issues(exc)
    assert any(ln == line and key in k and fragment in msg for ln, k, msg in found), found
    assert str(exc.value).startswith(f"gw.yaml:{line}: ")


def test_invalid_yaml_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "host: a\nport: [1,\n")
    with pytest.raises(SchemaError) as exc:
        load_gateway_config(path, env={})
    assert exc.value.issues[0].source == str(path)
    assert exc.value.issues[0].line is not None and "invalid YAML" in exc.value.issues[0].message


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot read config"):
        load_gateway_config(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"host: \xff\n")
    with pytest.raises(SchemaError, match="not UTF-8"):
        load_gateway_config(bad, env={})


def test_cross_field_checks_are_located(tmp_path: Path) -> None:
    text = f"""\
tenants:
  acme:
    policy: nowhere.yaml
keys:
  - id: a
    sha256: {DIGEST}
    tenant: acme
  - id: a
    sha256: {"cd" * 32}
    tenant: ghost
  - id: c
    sha256: {DIGEST}
    tenant: acme
allow_anonymous: true
"""
    with pytest.raises(SchemaError) as exc:
        load_gateway_config(write(tmp_path, text), env={})
    found = issues(exc)
    assert (3, "tenants.acme.policy", f"policy file not found: {tmp_path.resolve() / 'nowhere.yaml'}") in found
    assert any(ln == 10 and k == "keys[1].tenant" and "unknown tenant 'ghost'" in m for ln, k, m in found)
    assert (8, "keys[1].id", "duplicate key id 'a'") in found
    assert (12, "keys[2].sha256", "the same key digest is listed twice") in found
    assert any(ln == 14 and k == "allow_anonymous" for ln, k, _ in found)


def test_cross_field_checks_apply_to_configs_built_in_code() -> None:
    with pytest.raises(ValueError, match="unknown tenant"):
        GatewayConfig(keys=[KeyEntry(id="k", sha256=DIGEST, tenant="ghost")])
    GatewayConfig(keys=[KeyEntry(id="k", sha256=DIGEST, tenant="default")])


def test_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 9000\n")
    env = {
        "BARTIZAN_HOST": "192.0.2.7",
        "BARTIZAN_PORT": "9100",
        "BARTIZAN_UPSTREAM_URL": "http://127.0.0.1:1234/v1",
        "BARTIZAN_UPSTREAM_API_KEY_ENV": "UP_KEY",
        "BARTIZAN_AUDIT_URL": "sqlite:////tmp/x.db",
        "BARTIZAN_REDIS_URL": "redis://127.0.0.1:6379/1",
        "BARTIZAN_ALLOW_ANONYMOUS": "TRUE",
        "UNRELATED": "x",
    }
    cfg = load_gateway_config(path, env=env)
    assert (cfg.host, cfg.port) == ("192.0.2.7", 9100)
    assert cfg.tenants["default"].upstream.url == "http://127.0.0.1:1234/v1"
    assert cfg.tenants["default"].upstream.api_key_env == "UP_KEY"
    assert cfg.audit.url == "sqlite:////tmp/x.db"
    assert cfg.redis_url == "redis://127.0.0.1:6379/1"
    assert cfg.allow_anonymous is True
    assert load_gateway_config(path, env={"BARTIZAN_ALLOW_ANONYMOUS": "off", "BARTIZAN_PORT": ""}).port == 9000


def test_env_reads_process_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BARTIZAN_PORT", "9321")
    assert load_gateway_config(None).port == 9321


@pytest.mark.parametrize(
    ("env", "var", "fragment"),
    [
        ({"BARTIZAN_PORT": "eighty"}, "BARTIZAN_PORT", "port number"),
        ({"BARTIZAN_PORT": "99999"}, "BARTIZAN_PORT", "65535"),
        ({"BARTIZAN_ALLOW_ANONYMOUS": "maybe"}, "BARTIZAN_ALLOW_ANONYMOUS", "must be one of"),
        ({"BARTIZAN_UPSTREAM_URL": "not a url"}, "BARTIZAN_UPSTREAM_URL", "http(s)"),
        ({"BARTIZAN_UPSTREAM_API_KEY_ENV": "sk-123"}, "BARTIZAN_UPSTREAM_API_KEY_ENV", "NAME"),
        ({"BARTIZAN_REDIS_URL": "localhost:6379"}, "BARTIZAN_REDIS_URL", "redis://"),
        ({"BARTIZAN_AUDIT_URL": "audit.db"}, "BARTIZAN_AUDIT_URL", "database URL"),
        ({"BARTIZAN_HOST": "a b"}, "BARTIZAN_HOST", "host"),
    ],
)
def test_bad_env_values_name_the_variable(env: dict[str, str], var: str, fragment: str) -> None:
    with pytest.raises(SchemaError) as exc:
        load_gateway_config(None, env=env)
    assert [(i.source, i.key) for i in exc.value.issues] == [("environment", var)]
    assert fragment in exc.value.issues[0].message


def test_env_for_missing_default_tenant(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants:\n  acme: {}\n")
    with pytest.raises(SchemaError) as exc:
        load_gateway_config(path, env={"BARTIZAN_UPSTREAM_URL": "https://x/v1"})
    assert exc.value.issues[0].key == "BARTIZAN_UPSTREAM_URL"
    with pytest.raises(SchemaError) as exc:
        load_gateway_config(path, env={"BARTIZAN_ALLOW_ANONYMOUS": "1"})
    assert exc.value.issues[0].source == "environment" and "default" in exc.value.issues[0].message


def test_upstream_api_key_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    up = UpstreamConfig(api_key_env="BZ_TEST_UPSTREAM_KEY")
    monkeypatch.delenv("BZ_TEST_UPSTREAM_KEY", raising=False)
    assert up.api_key() is None
    monkeypatch.setenv("BZ_TEST_UPSTREAM_KEY", "sk-one")
    assert up.api_key() == "sk-one"
    monkeypatch.setenv("BZ_TEST_UPSTREAM_KEY", "sk-two")
    assert up.api_key() == "sk-two"
    assert UpstreamConfig().api_key() is None
    assert "sk-two" not in GatewayConfig(tenants={"default": TenantConfig(upstream=up)}).model_dump_json()


def test_defaults_are_not_shared_between_instances() -> None:
    a, b = GatewayConfig(), GatewayConfig()
    a.tenants["default"].rate_limit.burst = 5
    assert b.tenants["default"].rate_limit.burst == 60
    assert AuditConfig().capture_prompts is False


# ---- property-based: the parser never fails with anything but SchemaError, and locates what it reports ----

_yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False), st.text(max_size=12)
)
_keys = st.sampled_from(
    ["host", "port", "tenants", "keys", "allow_anonymous", "redis_url", "stream", "audit", "log_level", "x"]
)
_docs = st.recursive(
    _yaml_scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.one_of(_keys, st.text(max_size=5)), kids)),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _docs, max_size=5))
def test_parser_total_on_arbitrary_documents(doc: dict[str, object]) -> None:
    import yaml

    text = yaml.safe_dump(doc)
    try:
        load_gateway_config_text(text, "h.yaml")
    except SchemaError as exc:
        assert exc.issues
        nlines = text.count("\n") + 1
        for issue in exc.issues:
            assert issue.source == "h.yaml"
            assert issue.line is None or 1 <= issue.line <= nlines


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=string.printable, max_size=80))
def test_parser_total_on_arbitrary_text(text: str) -> None:
    try:
        load_gateway_config_text(text, "t.yaml")
    except SchemaError as exc:
        assert exc.issues


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20), st.sampled_from(sorted(["BARTIZAN_PORT", "BARTIZAN_ALLOW_ANONYMOUS", "BARTIZAN_HOST"])))
def test_env_values_either_apply_or_name_the_variable(value: str, var: str) -> None:
    try:
        load_gateway_config(None, env={var: value})
    except SchemaError as exc:
        assert {i.key for i in exc.issues} == {var}
