"""Codified policies (A2AS "C", spec §5): a versioned policy file, rendered for the model, enforced by Cedar.

The file has ``version: 1``, optional ``default: allow | deny``, ``policies`` (id, severity, text: rendered into
the ``<a2as:policy>`` block, guidance only) and ``enforce`` rules, the only thing that blocks:

- ``{policy: P, deny_tools: [globs]}`` — calls to matching tools are denied;
- ``{policy: P, ask_tools: [globs]}`` — calls to matching tools need human approval ("ask");
- ``{policy: P, tool: glob, arg: NAME, must_match: REGEX}`` — the argument must exist and match (fail closed);
- ``{policy: P, cedar: TEXT}`` — raw Cedar policies, each with ``@id``, for anything else.

Simple rules compile to Cedar (globs become ``like``); regexes run here in Python (Cedar has no regex) and reach
Cedar as ``context.arg_checks["<policy>#<rule index>"]`` booleans. Unparsable arguments (not a JSON object,
duplicate keys, too large) are denied before Cedar runs. The Cedar model is described in `cedar_engine`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from bartizan.a2as.cedar_engine import CedarBlock, CedarEngine, ContextError, cedar_string, glob_to_like, to_cedar
from bartizan.a2as.events import POLICY_ENFORCED, A2ASEvent
from bartizan.schema import SchemaError, SchemaIssue, YamlDoc, validate
from bartizan.text import fastre

DEFAULT_ALLOW = "DEFAULT_ALLOW"  # the implicit base permit
DEFAULT_DENY = "DEFAULT_DENY"  # nothing permitted the call (`default: deny`)
ARGS_INVALID = "ARGS_INVALID"  # arguments unparsable or not representable: denied before Cedar runs
EVALUATION_ERROR = "EVALUATION_ERROR"  # Cedar rejected the request: denied
MAX_REGEX_CHARS = 512
MAX_ARG_VALUE_CHARS = 65_536
MAX_ARGS_CHARS = 1_000_000
_TAG = re.compile(r"<\s*/?\s*a2as", re.IGNORECASE)

Decision = Literal["allow", "deny", "ask"]


class PolicyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    severity: Literal["critical", "high", "medium", "low"]
    text: str = Field(min_length=1, max_length=2000)


class EnforceRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str | None = None
    deny_tools: list[str] | None = Field(default=None, min_length=1)
    ask_tools: list[str] | None = Field(default=None, min_length=1)
    tool: str | None = Field(default=None, min_length=1)
    arg: str | None = Field(default=None, min_length=1)
    must_match: str | None = Field(default=None, min_length=1, max_length=MAX_REGEX_CHARS)
    cedar: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> EnforceRule:
        forms = [self.deny_tools is not None, self.ask_tools is not None, self.must_match is not None]
        forms.append(self.cedar is not None)
        if sum(forms) != 1:
            raise ValueError("a rule has exactly one of deny_tools, ask_tools, must_match (with tool, arg), cedar")
        if self.must_match is not None and (self.tool is None or self.arg is None):
            raise ValueError("must_match needs tool and arg")
        if self.must_match is None and (self.tool is not None or self.arg is not None):
            raise ValueError("tool and arg belong to a must_match rule")
        if self.cedar is None and self.policy is None:
            raise ValueError("policy is required (the id of an entry in policies)")
        return self


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    default: Literal["allow", "deny"] = "allow"
    policies: list[PolicyEntry] = []
    enforce: list[EnforceRule] = []


@dataclass(frozen=True)
class ToolCallRequest:
    """One proposed tool call; `arguments` is the model's JSON text or an already parsed object."""

    agent: str
    tenant: str
    tool: str
    arguments: str | dict[str, Any]
    untrusted_in_context: bool = False
    args_contain_pii: bool = False
    destination_outside_allowlist: bool = False


@dataclass(frozen=True)
class PolicyDecision:
    """allow / deny / ask, the ``@id``s of the determining policies, content-free reasons, and the time taken."""

    decision: Decision
    policy_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class _ArgCheck:
    key: str
    tool_glob: str
    arg: str
    pattern: Any  # a compiled RE2 (or, for lookaround, `re`) pattern

    def passes(self, tool: str, args: dict[str, Any]) -> bool:
        """True unless the rule applies to `tool` and the argument is missing, not text, too long or no match."""
        if not fnmatchcase(tool, self.tool_glob):
            return True
        value = args.get(self.arg)
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            return False
        return all(len(v) <= MAX_ARG_VALUE_CHARS and self.pattern.search(v) is not None for v in values)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key in arguments")
        out[k] = v
    return out


def parse_arguments(arguments: str | dict[str, Any]) -> dict[str, Any]:
    """Tool-call arguments as a JSON object; ValueError when unparsable, not an object, duplicated keys or huge."""
    if isinstance(arguments, dict):
        return arguments
    if len(arguments) > MAX_ARGS_CHARS:
        raise ValueError("arguments too large")
    try:
        value = json.loads(arguments, object_pairs_hook=_reject_duplicates)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError("arguments are not valid JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("arguments are not a JSON object")
    return value


def _value_line(doc: YamlDoc, loc: tuple[Any, ...]) -> int | None:
    """File line of the first line of a string value (the line after the key for ``|`` / ``>`` blocks)."""
    line = doc.line(loc)
    if line is None:
        return None
    lines = doc.text.split("\n")
    head = lines[line - 1].split("#")[0].rstrip() if line - 1 < len(lines) else ""
    return line + 1 if re.search(r":\s*[|>][-+0-9]*$", head) else line


def _compile(doc: YamlDoc, model: PolicyFile) -> tuple[list[CedarBlock], list[_ArgCheck]]:
    issues: list[SchemaIssue] = []
    known = {p.id for p in model.policies}
    seen: set[str] = set()
    for i, p in enumerate(model.policies):
        if p.id in seen:
            issues.append(doc.issue(("policies", i, "id"), f"duplicate policy id {p.id!r}"))
        seen.add(p.id)
        if _TAG.search(p.text):
            issues.append(doc.issue(("policies", i, "text"), "policy text must not contain <a2as: tags"))
    blocks: list[CedarBlock] = []
    checks: list[_ArgCheck] = []
    if model.default == "allow":
        blocks.append(
            CedarBlock(
                f"@id({cedar_string(DEFAULT_ALLOW)})\npermit(principal, action, resource);", doc.source, None, "default"
            )
        )
    for i, rule in enumerate(model.enforce):
        loc: tuple[Any, ...] = ("enforce", i)
        if rule.policy is not None and rule.policy not in known:
            issues.append(doc.issue((*loc, "policy"), f"unknown policy id {rule.policy!r}"))
            continue
        if rule.cedar is not None:
            blocks.append(CedarBlock(rule.cedar, doc.source, _value_line(doc, (*loc, "cedar")), f"enforce[{i}].cedar"))
            continue
        assert rule.policy is not None
        pid = cedar_string(rule.policy)
        head = f"@id({pid})\n"
        try:
            if rule.must_match is not None:
                assert rule.tool is not None and rule.arg is not None
                key = f"{rule.policy}#{i}"
                try:
                    pattern = fastre.compile(rule.must_match)
                except fastre.ERRORS as exc:
                    issues.append(doc.issue((*loc, "must_match"), f"regex does not compile: {exc}"))
                    continue
                checks.append(_ArgCheck(key, rule.tool, rule.arg, pattern))
                reason = f"{rule.policy}: argument {rule.arg!r} of {rule.tool} must match the policy pattern"
                cond = f"context.tool like {glob_to_like(rule.tool)} && !context.arg_checks[{cedar_string(key)}]"
            else:
                globs = rule.deny_tools if rule.deny_tools is not None else rule.ask_tools
                assert globs is not None
                if rule.ask_tools is not None:
                    head += '@ask("true")\n'
                    reason = f"{rule.policy}: tool needs human approval (ask_tools)"
                else:
                    reason = f"{rule.policy}: tool denied (deny_tools)"
                cond = " || ".join(f"context.tool like {glob_to_like(g)}" for g in globs)
        except ValueError as exc:
            issues.append(doc.issue(loc, str(exc)))
            continue
        text = f'{head}@reason({cedar_string(reason)})\nforbid(principal, action == Action::"call", resource)\n'
        blocks.append(CedarBlock(text + f"when {{ {cond} }};", doc.source, doc.line(loc), f"enforce[{i}]"))
    if issues:
        raise SchemaError(issues)
    return blocks, checks


class AgentPolicy:
    """A loaded policy file: the rendered block for the model and the compiled Cedar set that decides calls."""

    def __init__(self, text: str, source: str) -> None:
        doc = YamlDoc(text, source)
        self.model = validate(PolicyFile, doc)
        blocks, self._checks = _compile(doc, self.model)
        self._engine = CedarEngine(blocks)
        self.source = source
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.version = str(self.model.version)
        self.severity = {p.id: p.severity for p in self.model.policies}

    @classmethod
    def load(cls, path: str | Path) -> AgentPolicy:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError([SchemaIssue(str(path), None, "", f"cannot read policy file: {exc}")]) from None
        return cls(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<policy>") -> AgentPolicy:
        return cls(text, source)

    def render_block(self) -> str:
        """The ``<a2as:policy>`` block: every policy numbered, with its severity; guidance for the model only."""
        lines = ["<a2as:policy>", "POLICIES:"]
        for n, p in enumerate(self.model.policies, 1):
            lines.append(f"{n}. {p.id} [{p.severity.upper()}]: {' '.join(p.text.split())}")
        lines.append("</a2as:policy>")
        return "\n".join(lines)

    def decide(self, request: ToolCallRequest) -> PolicyDecision:
        """Decide one tool call with Cedar; anything that cannot be evaluated is denied."""
        start = time.perf_counter()

        def done(decision: Decision, ids: tuple[str, ...], reasons: tuple[str, ...]) -> PolicyDecision:
            return PolicyDecision(decision, ids, reasons, (time.perf_counter() - start) * 1000.0)

        try:
            args = parse_arguments(request.arguments)
            cedar_args = to_cedar(args)
        except (ValueError, ContextError) as exc:
            return done("deny", (ARGS_INVALID,), (f"{ARGS_INVALID}: {exc}",))
        context = {
            "tool": request.tool,
            "args": cedar_args,
            "untrusted_in_context": request.untrusted_in_context,
            "args_contain_pii": request.args_contain_pii,
            "destination_outside_allowlist": request.destination_outside_allowlist,
            "arg_checks": {c.key: c.passes(request.tool, args) for c in self._checks},
        }
        try:
            result = self._engine.evaluate(request.agent, request.tenant, request.tool, context)
        except ValueError:
            return done("deny", (EVALUATION_ERROR,), (f"{EVALUATION_ERROR}: the request could not be evaluated",))
        ids = tuple(dict.fromkeys(i.policy_id for i in result.policies))
        if result.fail_closed:
            reasons = tuple(f"{i.policy_id}: evaluation error (fail closed)" for i in result.policies)
        else:
            reasons = tuple(dict.fromkeys(i.reason for i in result.policies))
        if result.decision == "deny" and not ids:
            return done("deny", (DEFAULT_DENY,), (f"{DEFAULT_DENY}: no policy permits this call",))
        return done(result.decision, ids, reasons)

    def event(self, decision: PolicyDecision) -> A2ASEvent:
        """An ``a2as.policy.enforced`` event for a deny/ask; severity (of the first known id) sets the level."""
        severity = next((self.severity[i] for i in decision.policy_ids if i in self.severity), None)
        return A2ASEvent(
            POLICY_ENFORCED,
            decision.decision,
            rule=decision.policy_ids[0] if decision.policy_ids else None,
            reason=decision.reasons[0] if decision.reasons else None,
            detail={
                "policy_ids": list(decision.policy_ids),
                "severity": severity,
                "policy_sha256": self.sha256,
                "latency_ms": round(decision.elapsed_ms, 4),
            },
        )


class _TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = "agent"
    tenant: str = "default"
    tool: str = Field(min_length=1)
    arguments: str | dict[str, Any] = Field(default_factory=dict)
    untrusted_in_context: bool = False
    args_contain_pii: bool = False
    destination_outside_allowlist: bool = False


class _TestCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    request: _TestRequest
    expect: Decision
    policy_ids: list[str] | None = None


class _TestFile(RootModel[list[_TestCase]]):
    pass


@dataclass(frozen=True)
class TestOutcome:
    """One policy test: what was expected, what `decide` said, and whether they agree."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str
    passed: bool
    expected: Decision
    expected_policy_ids: tuple[str, ...] | None
    actual: PolicyDecision

    def describe(self) -> str:
        want = self.expected + (f" {list(self.expected_policy_ids)}" if self.expected_policy_ids is not None else "")
        got = f"{self.actual.decision} {list(self.actual.policy_ids)}"
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}" + (
            "" if self.passed else f": expected {want}, got {got}"
        )


def run_policy_tests(
    policy: AgentPolicy, tests_path: str | Path, decide: Callable[[ToolCallRequest], PolicyDecision] | None = None
) -> list[TestOutcome]:
    """Run a YAML list of ``{name, request, expect[, policy_ids]}``; policy ids compare as sets."""
    try:
        text = Path(tests_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError([SchemaIssue(str(tests_path), None, "", f"cannot read tests file: {exc}")]) from None
    cases = validate(_TestFile, YamlDoc(text, str(tests_path))).root
    run = decide or policy.decide
    out = []
    for case in cases:
        r = case.request
        actual = run(
            ToolCallRequest(
                r.agent,
                r.tenant,
                r.tool,
                r.arguments,
                r.untrusted_in_context,
                r.args_contain_pii,
                r.destination_outside_allowlist,
            )
        )
        want_ids = tuple(case.policy_ids) if case.policy_ids is not None else None
        ok = actual.decision == case.expect and (want_ids is None or set(want_ids) == set(actual.policy_ids))
        out.append(TestOutcome(case.name, ok, case.expect, want_ids, actual))
    return out
