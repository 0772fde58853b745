"""Where text sits in OpenAI API bodies, and which role it is scanned as.

A *surface* is one string inside a request or response body, with its JSON path and the role whose
detectors read it. Every route's requests and answers are enumerated here and nowhere else, so that the
test that proves "every surface is scanned" has one place to check.

Request side (chat completions): ``system``/``developer`` messages are read as SYSTEM, ``user`` as USER,
``tool``/``function`` results as TOOL, earlier ``assistant`` turns as ASSISTANT (their text and their tool
calls' arguments), and tool definitions' descriptions as TOOL (a poisoned tool description is untrusted
text). Retrieved documents have no role of their own in the OpenAI API; bartizan reads a message whose
``name`` is ``retrieved`` or starts with ``retrieved:`` as RETRIEVED. Content may be a string or a list of
parts; every text part is a surface (images and audio are not scanned).

Responses API: ``instructions`` (SYSTEM), ``input`` as a string (USER) or a list of items: messages by
role, ``function_call_output`` (TOOL), ``function_call`` arguments (ASSISTANT). Embeddings: each string of
``input`` (USER). Answers: message text and every tool call's name and arguments (ASSISTANT).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bartizan.types import Role

Path = tuple[str | int, ...]

_MESSAGE_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
    "function": Role.TOOL,
}
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


@dataclass(frozen=True)
class Surface:
    """One scanned string: where it is (`path` into the JSON body), what it is read as, and its text."""

    path: Path
    role: Role
    text: str

    @property
    def name(self) -> str:
        """A readable path such as ``messages[2].content``; safe to log (it holds no content)."""
        out = ""
        for p in self.path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
        return out


def message_role(message: dict[str, Any]) -> Role | None:
    role = _MESSAGE_ROLES.get(str(message.get("role", "")))
    name = message.get("name")
    if role in (Role.USER, Role.SYSTEM) and isinstance(name, str):
        if name == "retrieved" or name.startswith("retrieved:"):
            return Role.RETRIEVED
    return role


def _content(path: Path, role: Role, content: Any) -> Iterator[Surface]:
    if isinstance(content, str):
        yield Surface(path, role, content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
                yield Surface((*path, j, "text"), role, part["text"])
            elif isinstance(part, str):
                yield Surface((*path, j), role, part)


def _tool_calls(path: Path, calls: Any) -> Iterator[Surface]:
    if not isinstance(calls, list):
        return
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        if isinstance(fn.get("name"), str):
            yield Surface((*path, j, "function", "name"), Role.ASSISTANT, fn["name"])
        if isinstance(fn.get("arguments"), str):
            yield Surface((*path, j, "function", "arguments"), Role.ASSISTANT, fn["arguments"])


def chat_request(body: dict[str, Any]) -> list[Surface]:
    out: list[Surface] = []
    messages = body.get("messages")
    for i, msg in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(msg, dict):
            continue
        role = message_role(msg)
        if role is None:
            continue
        out.extend(_content(("messages", i, "content"), role, msg.get("content")))
        if role is Role.ASSISTANT:
            out.extend(_tool_calls(("messages", i, "tool_calls"), msg.get("tool_calls")))
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("description"), str):
            out.append(Surface(("tools", i, "function", "description"), Role.TOOL, fn["description"]))
    return out


def chat_response(body: dict[str, Any]) -> list[Surface]:
    out: list[Surface] = []
    choices = body.get("choices")
    for i, choice in enumerate(choices if isinstance(choices, list) else []):
        msg = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(msg, dict):
            continue
        out.extend(_content(("choices", i, "message", "content"), Role.ASSISTANT, msg.get("content")))
        out.extend(_tool_calls(("choices", i, "message", "tool_calls"), msg.get("tool_calls")))
    return out


def responses_request(body: dict[str, Any]) -> list[Surface]:
    out: list[Surface] = []
    if isinstance(body.get("instructions"), str):
        out.append(Surface(("instructions",), Role.SYSTEM, body["instructions"]))
    items = body.get("input")
    if isinstance(items, str):
        out.append(Surface(("input",), Role.USER, items))
        return out
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" or ("role" in item and "content" in item):
            role = message_role(item)
            if role is not None:
                out.extend(_content(("input", i, "content"), role, item.get("content")))
        elif kind == "function_call_output" and isinstance(item.get("output"), str):
            out.append(Surface(("input", i, "output"), Role.TOOL, item["output"]))
        elif kind == "function_call":
            for key in ("name", "arguments"):
                if isinstance(item.get(key), str):
                    out.append(Surface(("input", i, key), Role.ASSISTANT, item[key]))
    return out


def responses_output(body: dict[str, Any]) -> list[Surface]:
    """Surfaces of a Responses API ``response`` object (its ``output`` items)."""
    out: list[Surface] = []
    items = body.get("output")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            out.extend(_content(("output", i, "content"), Role.ASSISTANT, item.get("content")))
        elif item.get("type") == "function_call":
            for key in ("name", "arguments"):
                if isinstance(item.get(key), str):
                    out.append(Surface(("output", i, key), Role.ASSISTANT, item[key]))
    return out


def embeddings_request(body: dict[str, Any]) -> list[Surface]:
    items = body.get("input")
    if isinstance(items, str):
        return [Surface(("input",), Role.USER, items)]
    if isinstance(items, list):
        return [Surface(("input", i), Role.USER, t) for i, t in enumerate(items) if isinstance(t, str)]
    return []


def set_text(body: dict[str, Any], path: Path, value: str) -> None:
    """Replace the string at `path` (as enumerated above) inside `body`, in place."""
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
