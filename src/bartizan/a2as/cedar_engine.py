"""The Cedar side of codified policies (spec §5): compile policy text once, decide tool calls with cedarpy.

Model [ours]: principal ``Agent::"<agent>"`` (attribute ``tenant``, parent ``Tenant::"<tenant>"``), one action
``Action::"call"`` for every tool call, resource ``Tool::"<tool name>"``, and a context record built by
`bartizan.a2as.policies`. One action rather than one per tool keeps tool names out of the action hierarchy, so a
policy matches tools with ``context.tool like "email.send_*"`` (Cedar's ``like`` works on strings, not on entity
ids).

Every policy must carry ``@id("...")``; that annotation is the policy id reported in decisions. A forbid annotated
``@ask("true")`` asks for human approval instead of denying, unless a plain forbid also matches or nothing would
permit the call once approved. An optional ``@reason("...")`` annotation is the reason text reported. A forbid
whose evaluation errors (for example a missing attribute read without ``has``) denies: fail closed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cedarpy
from cedarpy import pst

from bartizan.schema import SchemaError, SchemaIssue

ACTION = {"type": "Action", "id": "call"}
MAX_CONTEXT_DEPTH = 32
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
CEDAR_ESCAPE_KEYS = frozenset({"__entity", "__extn", "__expr"})  # keys Cedar's JSON format reads as escapes
_EOF = "unexpected end of input"
_ERRORED = re.compile(r"policy `([^`]+)`")


@dataclass(frozen=True, slots=True)
class CedarBlock:
    """Cedar policy text plus where it came from: `line` is the file line of the text's first line."""

    text: str
    source: str
    line: int | None
    key: str


@dataclass(frozen=True, slots=True)
class CedarPolicyInfo:
    """One compiled policy: Cedar's positional id, its ``@id``, effect, and whether it asks instead of denying."""

    cedar_id: str
    policy_id: str
    effect: Literal["permit", "forbid"]
    ask: bool
    reason: str


@dataclass(frozen=True, slots=True)
class CedarResult:
    """The engine's answer: the decision and the policies that determined it (in policy-set order)."""

    decision: Literal["allow", "deny", "ask"]
    policies: tuple[CedarPolicyInfo, ...]
    fail_closed: bool = False


class ContextError(ValueError):
    """A value that cannot be put into a Cedar context faithfully (too deep, or a Cedar escape key)."""


def _escape(value: str) -> str:
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)


def cedar_string(value: str) -> str:
    """A Cedar string literal for `value` (quotes and backslashes escaped, control chars as \\u{...})."""
    return '"' + _escape(value) + '"'


def glob_to_like(glob: str) -> str:
    """A Cedar ``like`` pattern literal for a shell glob that uses only ``*`` (``?`` and ``[`` are refused)."""
    if "?" in glob or "[" in glob:
        raise ValueError("only '*' wildcards are supported in tool globs (Cedar like)")
    return '"' + "*".join(_escape(part) for part in glob.split("*")) + '"'


def to_cedar(value: Any, depth: int = 0) -> Any:
    """JSON value -> Cedar JSON value: floats and out-of-range ints become strings, nulls are dropped.

    A mapping holding a key Cedar reads as an escape (``__entity``, ``__extn``, ``__expr``) is refused: passed
    through, attacker-controlled arguments could forge entity references in the context.
    """
    if depth > MAX_CONTEXT_DEPTH:
        raise ContextError("arguments nested too deeply")
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if I64_MIN <= value <= I64_MAX else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        if CEDAR_ESCAPE_KEYS.intersection(value):
            raise ContextError("arguments use a reserved Cedar key")
        return {str(k): to_cedar(v, depth + 1) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_cedar(v, depth + 1) for v in value if v is not None]
    raise ContextError(f"unsupported argument type {type(value).__name__}")


def locate_parse_error(text: str) -> tuple[int, str]:
    """(0-based line, message) of a Cedar parse error: the first line whose prefix fails other than by EOF."""
    lines = text.split("\n")
    message = _EOF
    for k in range(1, len(lines) + 1):
        try:
            cedarpy.PolicySet.from_str("\n".join(lines[:k]))
        except ValueError as exc:
            message = str(exc)
            if message != _EOF:
                return k - 1, message
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=0)
    return last, message


def _parse_block(block: CedarBlock) -> None:
    try:
        cedarpy.PolicySet.from_str(block.text)
    except ValueError:
        offset, message = locate_parse_error(block.text)
        line = block.line + offset if block.line is not None else None
        raise SchemaError(
            [SchemaIssue(block.source, line, block.key, f"Cedar parse error (Cedar line {offset + 1}): {message}")]
        ) from None


class CedarEngine:
    """A compiled Cedar policy set with the metadata needed to report ids and tell ask from deny."""

    def __init__(self, blocks: Sequence[CedarBlock]) -> None:
        for block in blocks:
            _parse_block(block)
        text = "\n\n".join(b.text for b in blocks)
        self.policy_set = cedarpy.PolicySet.from_str(text)
        tree = self.policy_set.to_pst()
        issues = []
        where = blocks[0] if blocks else CedarBlock("", "<policy>", None, "")
        if tree.templates:
            issues.append(SchemaIssue(where.source, where.line, where.key, "Cedar templates are not supported"))
        self.info: dict[str, CedarPolicyInfo] = {}
        for cedar_id, policy in tree.static_policies.items():
            ann = dict(policy.annotations)
            pid = ann.get("id", "")
            if not pid:
                issues.append(SchemaIssue(where.source, where.line, where.key, f"Cedar policy {cedar_id} has no @id"))
            ask = ann.get("ask")
            if ask not in (None, "true", "false"):
                issues.append(SchemaIssue(where.source, where.line, where.key, f'{pid}: @ask must be "true"'))
            if ask == "true" and policy.effect != "forbid":
                issues.append(SchemaIssue(where.source, where.line, where.key, f"{pid}: @ask only applies to forbid"))
            effect: Literal["permit", "forbid"] = "forbid" if policy.effect == "forbid" else "permit"
            reason = ann.get("reason") or f"{effect} {pid}"
            self.info[cedar_id] = CedarPolicyInfo(cedar_id, pid, effect, ask == "true", reason)
        if issues:
            raise SchemaError(issues)
        self._order = {cid: i for i, cid in enumerate(self.info)}
        kept = {cid: p for cid, p in tree.static_policies.items() if not self.info[cid].ask}
        self._has_ask = len(kept) != len(tree.static_policies)
        no_ask = pst.PolicySet(templates={}, static_policies=pst.FrozenMap(kept), template_links=())
        self.no_ask_set = cedarpy.PolicySet.from_pst(no_ask) if self._has_ask else self.policy_set

    def _infos(self, cedar_ids: Sequence[str]) -> tuple[CedarPolicyInfo, ...]:
        known = [self.info[c] for c in cedar_ids if c in self.info]
        return tuple(sorted(known, key=lambda i: self._order[i.cedar_id]))

    def evaluate(self, agent: str, tenant: str, tool: str, context: Mapping[str, Any]) -> CedarResult:
        """Decide one call. Raises ValueError when Cedar rejects the request (the caller fails closed)."""
        entities = json.dumps(
            [
                {
                    "uid": {"type": "Agent", "id": agent},
                    "attrs": {"tenant": tenant},
                    "parents": [{"type": "Tenant", "id": tenant}],
                },
                {"uid": {"type": "Tenant", "id": tenant}, "attrs": {}, "parents": []},
                {"uid": {"type": "Tool", "id": tool}, "attrs": {}, "parents": []},
            ]
        )
        request = {
            "principal": {"type": "Agent", "id": agent},
            "action": ACTION,
            "resource": {"type": "Tool", "id": tool},
            "context": dict(context),
        }
        result = cedarpy.is_authorized(request, self.policy_set, entities)
        errored = [m.group(1) for e in result.diagnostics.errors if (m := _ERRORED.search(e))]
        bad = tuple(i for i in self._infos(errored) if i.effect == "forbid")
        if bad:
            return CedarResult("deny", bad, fail_closed=True)
        if result.diagnostics.errors and not errored:
            raise ValueError("Cedar evaluation error")
        reasons = self._infos(result.diagnostics.reasons)
        if result.allowed:
            return CedarResult("allow", reasons)
        plain = tuple(i for i in reasons if not i.ask)
        if plain or not reasons:
            return CedarResult("deny", plain)
        # Only ask-forbids matched: ask when the call would be permitted once a human approves it.
        second = cedarpy.is_authorized(request, self.no_ask_set, entities)
        if second.allowed:
            return CedarResult("ask", reasons)
        return CedarResult("deny", self._infos(second.diagnostics.reasons))
