"""A2AS codified policies (spec §5): loading, rendering, Cedar decisions, fail-closed arguments, located errors."""

from __future__ import annotations

import json
import statistics
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.a2as.cedar_engine import ContextError, glob_to_like, to_cedar
from bartizan.a2as.policies import (
    ARGS_INVALID,
    DEFAULT_ALLOW,
    DEFAULT_DENY,
    AgentPolicy,
    ToolCallRequest,
    parse_arguments,
    run_policy_tests,
)
from bartizan.schema import SchemaError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "a2as"

SPEC = """\
version: 1
policies:
  - {id: READ_ONLY,  severity: critical, text: "Read-only assistant: never send, delete or modify emails."}
  - {id: REDACT_PII, severity: high,     text: "Redact SSNs, bank accounts and payment details."}
  - {id: EXT_MAIL,   severity: high,     text: "Only write to corporate addresses."}
enforce:
  - {policy: READ_ONLY, deny_tools: ["email.send_*", "email.delete_*", "email.modify_*"]}
  - {policy: EXT_MAIL,  tool: "email.send_message", arg: "to", must_match: "@corp\\\\.example$"}
"""

MAIL = """\
version: 1
policies:
  - {id: EXT_MAIL, severity: high, text: "Only write to corporate addresses."}
  - {id: PAY, severity: low, text: "Payments need approval."}
enforce:
  - {policy: EXT_MAIL, tool: "email.send_*", arg: "to", must_match: "@corp\\\\.example$"}
  - {policy: PAY, ask_tools: ["pay.*"]}
"""


def call(tool: str, arguments: str | dict[str, Any] = "{}", **flags: bool) -> ToolCallRequest:
    return ToolCallRequest("agent-1", "acme", tool, arguments, **flags)


def test_spec_example_renders_and_blocks() -> None:
    policy = AgentPolicy.from_text(SPEC, "spec.yaml")
    assert policy.render_block() == (
        "<a2as:policy>\nPOLICIES:\n"
        "1. READ_ONLY [CRITICAL]: Read-only assistant: never send, delete or modify emails.\n"
        "2. REDACT_PII [HIGH]: Redact SSNs, bank accounts and payment details.\n"
        "3. EXT_MAIL [HIGH]: Only write to corporate addresses.\n"
        "</a2as:policy>"
    )
    assert policy.version == "1" and len(policy.sha256) == 64
    d = policy.decide(call("email.send_message", '{"to": "bob@corp.example"}'))
    assert (d.decision, d.policy_ids) == ("deny", ("READ_ONLY",))
    d = policy.decide(call("email.read", "{}"))
    assert (d.decision, d.policy_ids) == ("allow", (DEFAULT_ALLOW,))
    assert d.elapsed_ms >= 0


@pytest.mark.parametrize(
    ("args", "decision"),
    [
        ({"to": "bob@corp.example"}, "allow"),
        ('{"to": "bob@corp.example", "cc": null, "n": 1.5}', "allow"),
        ({"to": "eve@evil.example"}, "deny"),
        ({"to": "bob@corp.example.evil"}, "deny"),
        ({"to": ["a@corp.example", "b@corp.example"]}, "allow"),
        ({"to": ["a@corp.example", "eve@evil.example"]}, "deny"),
        ({"to": []}, "deny"),
        ({"to": 7}, "deny"),
        ({"body": "hi"}, "deny"),  # missing argument fails closed
    ],
)
def test_must_match(args: dict[str, Any] | str, decision: str) -> None:
    policy = AgentPolicy.from_text(MAIL, "mail.yaml")
    d = policy.decide(call("email.send_message", args))
    assert d.decision == decision
    if decision == "deny":
        assert d.policy_ids == ("EXT_MAIL",) and "eve" not in " ".join(d.reasons)
    assert policy.decide(call("email.read", args)).decision == "allow"  # the rule is scoped to its tool


@pytest.mark.parametrize(
    "args",
    [
        "",
        "not json",
        '{"to": ',
        "[1, 2]",
        '"s"',
        "null",
        '{"to": "a@corp.example", "to": "eve@evil.example"}',
        {"x": {"__entity": {"type": "Admin", "id": "root"}}},
        {"x": {"__extn": {"fn": "ip", "arg": "1.2.3.4"}}},
        "[" * 5000 + "]" * 5000,
    ],
)
def test_unparsable_or_unsafe_arguments_fail_closed(args: str | dict[str, Any]) -> None:
    policy = AgentPolicy.from_text(MAIL, "mail.yaml")
    d = policy.decide(call("email.read", args))
    assert (d.decision, d.policy_ids) == ("deny", (ARGS_INVALID,))


def test_ask_and_deny_precedence() -> None:
    text = (
        MAIL
        + """\
  - cedar: |
      @id("PAY_LIMIT")
      forbid(principal, action, resource) when { context.tool == "pay.send" && context.args.amount > 1000 };
"""
    )
    policy = AgentPolicy.from_text(text, "mail.yaml")
    d = policy.decide(call("pay.send", {"amount": 10}))
    assert (d.decision, d.policy_ids) == ("ask", ("PAY",))
    d = policy.decide(call("pay.send", {"amount": 5000}))
    assert (d.decision, d.policy_ids) == ("deny", ("PAY_LIMIT",))  # a plain forbid beats ask


def test_default_deny_needs_a_permit_and_ask_cannot_override_it() -> None:
    text = (
        MAIL.replace("version: 1", "version: 1\ndefault: deny")
        + """\
  - cedar: |
      @id("ACME_TOOLS")
      permit(principal in Tenant::"acme", action == Action::"call", resource)
      when { principal.tenant == "acme" && (context.tool like "email.*" || context.tool like "pay.*") };
"""
    )
    policy = AgentPolicy.from_text(text, "p.yaml")
    assert policy.decide(call("email.read")).policy_ids == ("ACME_TOOLS",)
    assert policy.decide(call("pay.x")).decision == "ask"
    other = ToolCallRequest("agent-2", "globex", "pay.x", "{}")
    assert (policy.decide(other).decision, policy.decide(other).policy_ids) == ("deny", (DEFAULT_DENY,))
    assert policy.decide(call("shell.exec")).policy_ids == (DEFAULT_DENY,)


def test_context_flags_and_raw_cedar_on_arguments() -> None:
    text = (
        MAIL
        + """\
  - cedar: |
      @id("TAINT")
      @reason("TAINT: untrusted context")
      forbid(principal, action, resource)
      when { context.untrusted_in_context && context.destination_outside_allowlist };

      @id("NO_BCC")
      forbid(principal, action, resource) when { context.args has bcc };
"""
    )
    policy = AgentPolicy.from_text(text, "p.yaml")
    assert policy.decide(call("http.post", untrusted_in_context=True)).decision == "allow"
    d = policy.decide(call("http.post", untrusted_in_context=True, destination_outside_allowlist=True))
    assert (d.decision, d.policy_ids, d.reasons) == ("deny", ("TAINT",), ("TAINT: untrusted context",))
    assert policy.decide(call("x", {"bcc": "a"})).policy_ids == ("NO_BCC",)


def test_erroring_forbid_fails_closed() -> None:
    text = (
        MAIL
        + """\
  - cedar: |
      @id("SLOPPY")
      forbid(principal, action, resource) when { context.args.to like "*@evil.example" };
"""
    )
    policy = AgentPolicy.from_text(text, "p.yaml")
    d = policy.decide(call("other.tool", {"x": 1}))  # `to` is missing: the forbid errors
    assert (d.decision, d.policy_ids) == ("deny", ("SLOPPY",))
    assert "fail closed" in d.reasons[0]


def _error(text: str) -> str:
    with pytest.raises(SchemaError) as info:
        AgentPolicy.from_text(text, "bad.yaml")
    return str(info.value)


def test_cedar_parse_error_names_file_line() -> None:
    text = (
        MAIL
        + """\
  - cedar: |
      @id("OK")
      forbid(principal, action, resource)
      when { context.x = 1 };
"""
    )
    msg = _error(text)
    line = text.split("\n").index("      when { context.x = 1 };") + 1
    assert msg.startswith(f"bad.yaml:{line}: enforce[2].cedar: Cedar parse error (Cedar line 3)")


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("  - {policy: NOPE, deny_tools: [a]}\n", "bad.yaml:8: enforce[2].policy: unknown policy id 'NOPE'"),
        ("  - {policy: PAY, deny_tools: [a?]}\n", "only '*' wildcards"),
        ('  - {policy: PAY, tool: a, arg: b, must_match: "("}\n', "regex does not compile"),
        ("  - {policy: PAY, deny_tools: [a], ask_tools: [b]}\n", "exactly one of"),
        ("  - {policy: PAY, must_match: x}\n", "must_match needs tool and arg"),
        ("  - cedar: 'permit(principal, action, resource);'\n", "has no @id"),
        ('  - cedar: \'@id("A") @ask("true") permit(principal, action, resource);\'\n', "@ask only applies"),
        ("  - cedar: '@id(\"T\") permit(principal == ?principal, action, resource);'\n", "templates are not supported"),
        ("  - {policy: PAY, deny_tools: [a], extra: 1}\n", "unknown key"),
    ],
)
def test_located_schema_errors(snippet: str, expected: str) -> None:
    assert expected in _error(MAIL + snippet)


def test_file_level_errors() -> None:
    assert "version" in _error("version: 2\n")
    assert "duplicate policy id" in _error(MAIL.replace("id: PAY,", "id: EXT_MAIL,"))
    assert "<a2as:" in _error(MAIL.replace("Payments need approval.", "x </a2as:policy> y"))
    with pytest.raises(SchemaError):
        AgentPolicy.load("/nonexistent/policies.yaml")


def test_example_files_pass(tmp_path: Path) -> None:
    policy = AgentPolicy.load(EXAMPLES / "policies.yaml")
    outcomes = run_policy_tests(policy, EXAMPLES / "policies.tests.yaml")
    assert outcomes and all(o.passed for o in outcomes), [o.describe() for o in outcomes if not o.passed]
    event = policy.event(policy.decide(call("email.delete_x")))
    assert (event.name, event.decision, event.rule) == ("a2as.policy.enforced", "deny", "READ_ONLY")
    assert event.detail["severity"] == "critical" and event.detail["policy_sha256"] == policy.sha256


_TOOL_CHARS = st.characters(codec="utf-8")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(_TOOL_CHARS.filter(lambda c: c not in "*?[\x00"), max_size=4), min_size=1, max_size=4),
    st.text(_TOOL_CHARS.filter(lambda c: c != "\x00"), min_size=1, max_size=12),
)
def test_glob_compiles_to_equivalent_cedar_like(parts: list[str], tool: str) -> None:
    glob = "*".join(parts)
    if not glob:
        return
    doc = {"version": 1, "policies": [{"id": "P", "severity": "low", "text": "t"}]}
    text = yaml.safe_dump({**doc, "enforce": [{"policy": "P", "deny_tools": [glob]}]})
    policy = AgentPolicy.from_text(text, "g.yaml")
    for candidate in (tool, glob.replace("*", tool)):
        expected = "deny" if fnmatchcase(candidate, glob) else "allow"
        assert policy.decide(call(candidate)).decision == expected, (glob, candidate)
    assert glob_to_like(glob).startswith('"')


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=60), _JSON.map(json.dumps)))
def test_decide_never_raises_and_denies_unparsable(arguments: str) -> None:
    policy = AgentPolicy.from_text(MAIL, "mail.yaml")
    d = policy.decide(call("email.send_message", arguments))
    assert d.decision in ("allow", "deny")
    try:
        parsed = parse_arguments(arguments)
    except ValueError:
        assert d.policy_ids == (ARGS_INVALID,)
        return
    if d.decision == "allow":
        assert isinstance(parsed.get("to"), (str, list))


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_to_cedar_keeps_only_cedar_types(value: Any) -> None:
    def check(v: Any) -> None:
        assert v is not None and not isinstance(v, float)
        if isinstance(v, dict):
            for x in v.values():
                check(x)
        elif isinstance(v, list):
            for x in v:
                check(x)

    if value is None:
        return
    try:
        converted = to_cedar(value)
    except ContextError:
        assert any(k in json.dumps(value) for k in ('"__entity"', '"__extn"', '"__expr"'))
        return
    check(converted)


def test_decide_latency() -> None:
    policy = AgentPolicy.load(EXAMPLES / "policies.yaml")
    req = call("email.send_message", '{"to": "bob@corp.example", "body": "hello"}')
    for _ in range(200):
        policy.decide(req)
    samples = []
    for _ in range(2000):
        t = time.perf_counter()
        policy.decide(req)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99)]
    print(f"decide p50={p50:.4f} ms p99={p99:.4f} ms")
    assert p50 < 2.0
