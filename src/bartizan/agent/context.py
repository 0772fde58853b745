"""BASIC on a chat request and its answer, shared by the gateway and the SDK (one way through).

Request (after the firewall has scanned the unwrapped text): **B** the requested model and the offered
tools against the certificate (disallowed tools are stripped); **I** the in-context defense block and **C**
the rendered policy block, injected as one system message at the front; **S** untrusted messages (user, tool,
retrieved) neutralised and wrapped in keyed boundary tags. Answer: **B/C** every tool call decided by
`AgentGuard` (certificate, then the Cedar policy); denied calls are removed and the model's message says
why; the answer text is checked for leaked ``<a2as:`` tags.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from bartizan.a2as.boundaries import Boundaries, find_tag_leak
from bartizan.a2as.defense import defense_block
from bartizan.a2as.events import A2ASEvent
from bartizan.agent.guard import AgentGuard, ToolDecision
from bartizan.gateway.surfaces import message_role
from bartizan.types import Role

_KINDS = {Role.USER: "user", Role.TOOL: "tool", Role.RETRIEVED: "tool", Role.AGENT: "agent"}


@dataclass
class Prepared:
    body: dict[str, Any]
    events: list[A2ASEvent] = field(default_factory=list)
    stripped_tools: list[str] = field(default_factory=list)
    added_chars: int = 0
    model_denied: bool = False


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(parts) if parts else None
    return None


def _model_denied(out: dict[str, Any], guard: AgentGuard, prep: Prepared) -> bool:
    model = out.get("model")
    if isinstance(model, str) and not guard.check_model(model):
        prep.model_denied = True
        prep.events.append(A2ASEvent("a2as.cert.model_denied", "deny", rule=model))
        return True
    return False


def _preamble(guard: AgentGuard, defense: bool | str, policy_block: bool) -> list[str]:
    """The I and C blocks: the in-context defense and the rendered policy."""
    out = []
    if defense:
        out.append(defense_block(defense if isinstance(defense, str) else None))
    if policy_block and guard.policy is not None:
        out.append(guard.policy.render_block())
    return out


def _wrap_content(
    boundaries: Boundaries, kind: str, index: int, content: Any, tool_name: str | None, events: list[A2ASEvent]
) -> Any:
    """S on one message content: a string, or each text part of a list (images and audio pass as they are)."""
    if isinstance(content, str):
        wrapped, found = boundaries.wrap(kind, index, content, tool_name=tool_name)
        events += found
        return wrapped
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"], found = boundaries.wrap(kind, index, part["text"], tool_name=tool_name)
                events += found
    return content


def prepare_chat(
    body: dict[str, Any],
    guard: AgentGuard,
    *,
    boundaries: Boundaries | None,
    defense: bool | str = True,
    policy_block: bool = True,
) -> Prepared:
    """A copy of the chat-completions `body` with BASIC applied (see the module docstring)."""
    out = copy.deepcopy(body)
    prep = Prepared(out)
    if _model_denied(out, guard, prep):
        return prep
    if isinstance(out.get("tools"), list):
        kept, stripped = guard.filter_tools(out["tools"])
        prep.stripped_tools = stripped
        prep.events += [A2ASEvent("a2as.cert.tool_denied", "strip", rule=name) for name in stripped]
        if kept:
            out["tools"] = kept
        else:
            out.pop("tools", None)
            out.pop("tool_choice", None)
    raw_messages = out.get("messages")
    messages: list[Any] = raw_messages if isinstance(raw_messages, list) else []
    before = sum(len(_text_of(m.get("content")) or "") for m in messages if isinstance(m, dict))
    names: dict[str, str] = {}
    for m in messages:
        for call in (m.get("tool_calls") or []) if isinstance(m, dict) else []:
            fn = call.get("function") or {}
            if call.get("id") and fn.get("name"):
                names[call["id"]] = fn["name"]
    for index, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        role = message_role(m)
        if role in (Role.TOOL, Role.RETRIEVED):
            guard.taint()
        kind = _KINDS.get(role) if role is not None else None
        if boundaries is None or kind is None:
            continue
        tool_name = names.get(str(m.get("tool_call_id")))
        if "content" in m:
            m["content"] = _wrap_content(boundaries, kind, index, m["content"], tool_name, prep.events)
    preamble = _preamble(guard, defense, policy_block)
    if preamble:
        messages.insert(0, {"role": "system", "content": "\n\n".join(preamble)})
    out["messages"] = messages
    after = sum(len(_text_of(m.get("content")) or "") for m in messages if isinstance(m, dict))
    prep.added_chars = after - before
    return prep


@dataclass
class Enforced:
    decisions: list[ToolDecision] = field(default_factory=list)
    events: list[A2ASEvent] = field(default_factory=list)
    tag_leak: bool = False

    @property
    def denied(self) -> list[ToolDecision]:
        return [d for d in self.decisions if not d.allowed]


def _leak_check(text: str, result: Enforced, mode: Literal["block", "strip", "monitor"]) -> str:
    """The answer text after the tag-leak check: an event when it holds a ``<a2as:`` tag, escaped on "strip"."""
    if not find_tag_leak(text):
        return text
    result.tag_leak = True
    result.events.append(A2ASEvent("a2as.output.tag_leak", mode))
    return text.replace("<a2as:", "&lt;a2as:").replace("</a2as:", "&lt;/a2as:") if mode == "strip" else text


def enforce_answer(
    message: dict[str, Any], guard: AgentGuard, *, tag_leak: Literal["block", "strip", "monitor"] = "block"
) -> Enforced:
    """Decide every tool call of one assistant `message` (a chat-completions ``choices[i].message`` dict) in
    place: denied and unapproved calls are removed and the reasons go into the message text."""
    result = Enforced()
    raw_calls = message.get("tool_calls")
    calls: list[Any] = raw_calls if isinstance(raw_calls, list) else []
    kept = []
    notes = []
    for call in calls:
        fn = call.get("function") or {}
        decision = guard.check_tool_call(str(fn.get("name", "")), fn.get("arguments") or "")
        result.decisions.append(decision)
        result.events += list(decision.events)
        if decision.allowed:
            kept.append(call)
        else:
            notes.append(f"[bartizan: call to {decision.tool} not run: {decision.message}]")
    if calls:
        if kept:
            message["tool_calls"] = kept
        else:
            message.pop("tool_calls", None)
    if notes:
        text = message.get("content") if isinstance(message.get("content"), str) else ""
        message["content"] = "\n".join(filter(None, [text, *notes]))
    if isinstance(message.get("content"), str):
        message["content"] = _leak_check(message["content"], result, tag_leak)
    return result


def prepare_responses(
    body: dict[str, Any],
    guard: AgentGuard,
    *,
    boundaries: Boundaries | None,
    defense: bool | str = True,
    policy_block: bool = True,
) -> Prepared:
    """BASIC on a Responses API body: model and ``tools`` (function tools name their function at the top
    level) against the certificate, the defense and policy blocks prepended to ``instructions``, untrusted input
    (a string input, user messages, ``function_call_output``) neutralised and wrapped."""
    out = copy.deepcopy(body)
    prep = Prepared(out)
    if _model_denied(out, guard, prep):
        return prep
    if isinstance(out.get("tools"), list):
        as_chat = [{"function": {"name": t.get("name")}} if isinstance(t, dict) else t for t in out["tools"]]
        kept_names = {k["function"]["name"] for k in guard.filter_tools(as_chat)[0]}
        kept = [t for t in out["tools"] if isinstance(t, dict) and t.get("name") in kept_names]
        stripped = [str(t.get("name")) for t in out["tools"] if isinstance(t, dict) and t.get("name") not in kept_names]
        prep.stripped_tools = stripped
        prep.events += [A2ASEvent("a2as.cert.tool_denied", "strip", rule=name) for name in stripped]
        if kept:
            out["tools"] = kept
        else:
            out.pop("tools", None)
            out.pop("tool_choice", None)
    before = len(json.dumps(out.get("input"), ensure_ascii=False)) + len(str(out.get("instructions") or ""))
    items = out.get("input")
    if isinstance(items, str):
        if boundaries is not None:
            out["input"], events = boundaries.wrap("user", 0, items)
            prep.events += events
    elif isinstance(items, list):
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            if item.get("type") == "function_call_output":
                guard.taint()
                if boundaries is not None and isinstance(item.get("output"), str):
                    item["output"], events = boundaries.wrap("tool", index, item["output"])
                    prep.events += events
                continue
            role = message_role(item) if "role" in item else None
            if role in (Role.TOOL, Role.RETRIEVED):
                guard.taint()
            kind = _KINDS.get(role) if role is not None else None
            if boundaries is not None and kind is not None and "content" in item:
                item["content"] = _wrap_content(boundaries, kind, index, item["content"], None, prep.events)
    preamble = _preamble(guard, defense, policy_block)
    if preamble:
        existing = out.get("instructions")
        out["instructions"] = "\n\n".join([*preamble, *([existing] if isinstance(existing, str) and existing else [])])
    after = len(json.dumps(out.get("input"), ensure_ascii=False)) + len(str(out.get("instructions") or ""))
    prep.added_chars = after - before
    return prep


def enforce_response_output(
    response: dict[str, Any], guard: AgentGuard, *, tag_leak: Literal["block", "strip", "monitor"] = "block"
) -> Enforced:
    """Decide every ``function_call`` item of a Responses API ``response`` in place: denied ones are removed
    and a message item says why; output text is checked for leaked tags."""
    result = Enforced()
    items = response.get("output") if isinstance(response.get("output"), list) else []
    kept: list[Any] = []
    notes = []
    for item in items or []:
        if isinstance(item, dict) and item.get("type") == "function_call":
            decision = guard.check_tool_call(str(item.get("name", "")), item.get("arguments") or "")
            result.decisions.append(decision)
            result.events += list(decision.events)
            if not decision.allowed:
                notes.append(f"[bartizan: call to {decision.tool} not run: {decision.message}]")
                continue
        kept.append(item)
    if notes:
        kept.append(
            {
                "id": "msg_bartizan",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "\n".join(notes), "annotations": []}],
            }
        )
    if items:
        response["output"] = kept
    for item in kept:
        for part in (item.get("content") or []) if isinstance(item, dict) and item.get("type") == "message" else []:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                part["text"] = _leak_check(text, result, tag_leak)
    return result
