"""Wire shapes of the demo upstream: OpenAI chat completions and Responses objects, whole and streamed.

`bartizan.gateway.demo` decides *what* the demo model answers (a `DemoReply`); this module only renders that
answer in the exact JSON and server-sent-event shapes the OpenAI API uses, so that the official SDK (and the
gateway, which must relay and rewrite them) can be tested against realistic traffic without a network.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

SYSTEM_FINGERPRINT = "bartizan-demo"
MODEL_CREATED = 1_700_000_000  # fixed so that /v1/models is deterministic
OWNER = "bartizan-demo"


@dataclass(frozen=True, slots=True)
class DemoToolCallOut:
    """One tool call the demo model makes: ids are assigned per request so that they are unique and stable."""

    call_id: str
    name: str
    arguments: str  # a JSON text, as the OpenAI API sends it
    item_id: str  # Responses API item id ("fc_...")


@dataclass(frozen=True, slots=True)
class DemoReply:
    """What the demo model answers to one request, independent of the wire format."""

    ident: str  # per-request suffix for object ids
    model: str
    created: int
    text: str | None
    tool_calls: tuple[DemoToolCallOut, ...] = ()
    chunk_chars: int = 8
    chunk_delay_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request: dict[str, Any] = field(default_factory=dict)  # the request body (echoed settings for Responses)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def pieces(text: str, size: int) -> Iterator[str]:
    """`text` in consecutive slices of `size` characters (nothing for an empty text)."""
    for start in range(0, len(text), size):
        yield text[start : start + size]


def _sse(payload: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


# ---------------------------------------------------------------- chat completions


def chat_usage(reply: DemoReply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.total_tokens,
    }


def chat_completion(reply: DemoReply) -> dict[str, Any]:
    """A whole `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    return {
        "id": f"chatcmpl-demo-{reply.ident}",
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": chat_usage(reply),
    }


async def chat_stream(reply: DemoReply, include_usage: bool) -> AsyncIterator[bytes]:
    """`chat.completion.chunk` events as OpenAI sends them, then ``data: [DONE]``.

    First a chunk carrying the role, then content deltas of `chunk_chars`, then per tool call a delta with index,
    id and name followed by argument fragments, a final chunk with `finish_reason`, and (when the client asked
    for `stream_options.include_usage`) a usage chunk with no choices; every other chunk then has ``usage: null``.
    """
    base = {
        "id": f"chatcmpl-demo-{reply.ident}",
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return _sse(body)

    yield chunk({"role": "assistant", "content": "" if reply.text is not None else None, "refusal": None})
    for piece in pieces(reply.text or "", reply.chunk_chars):
        await _pause(reply)
        yield chunk({"content": piece})
    for index, call in enumerate(reply.tool_calls):
        await _pause(reply)
        fn = {"name": call.name, "arguments": ""}
        yield chunk({"tool_calls": [{"index": index, "id": call.call_id, "type": "function", "function": fn}]})
        for piece in pieces(call.arguments, reply.chunk_chars):
            await _pause(reply)
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield _sse({**base, "choices": [], "usage": chat_usage(reply)})
    yield b"data: [DONE]\n\n"


async def _pause(reply: DemoReply) -> None:
    if reply.chunk_delay_s > 0:
        await asyncio.sleep(reply.chunk_delay_s)


# ---------------------------------------------------------------- Responses API


def _message_item(reply: DemoReply, text: str, done: bool) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if done else []
    return {
        "id": f"msg_demo_{reply.ident}",
        "type": "message",
        "role": "assistant",
        "status": "completed" if done else "in_progress",
        "content": content,
    }


def _call_item(call: DemoToolCallOut, done: bool) -> dict[str, Any]:
    return {
        "id": call.item_id,
        "type": "function_call",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments if done else "",
        "status": "completed" if done else "in_progress",
    }


def _has_message(reply: DemoReply) -> bool:
    """A message item is emitted when there is text, or when there is nothing else to emit."""
    return reply.text is not None or not reply.tool_calls


def response_object(reply: DemoReply, done: bool = True) -> dict[str, Any]:
    """A `response` object; `done=False` gives the in-progress snapshot sent by `response.created`."""
    req = reply.request
    output: list[dict[str, Any]] = []
    if done:
        if _has_message(reply):
            output.append(_message_item(reply, reply.text or "", True))
        output.extend(_call_item(c, True) for c in reply.tool_calls)
    out_text = "".join(part["text"] for item in output if item["type"] == "message" for part in item["content"])
    tools = req.get("tools")
    metadata = req.get("metadata")
    return {
        "id": f"resp_demo_{reply.ident}",
        "object": "response",
        "created_at": float(reply.created),
        "status": "completed" if done else "in_progress",
        "completed_at": float(reply.created) if done else None,
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": reply.model,
        "output": output,
        "output_text": out_text,
        "parallel_tool_calls": bool(req.get("parallel_tool_calls", True)),
        "previous_response_id": req.get("previous_response_id"),
        "temperature": req.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "top_p": req.get("top_p", 1.0),
        "truncation": "disabled",
        "metadata": metadata if isinstance(metadata, dict) else {},
        "usage": (
            {
                "input_tokens": reply.prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": reply.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": reply.total_tokens,
            }
            if done
            else None
        ),
    }


async def responses_stream(reply: DemoReply) -> AsyncIterator[bytes]:
    """The typed Responses events, each as ``event: <type>`` + ``data: {...}`` with a `sequence_number`.

    response.created, response.in_progress; for the message: output_item.added, content_part.added,
    output_text.delta (per `chunk_chars`), output_text.done, content_part.done, output_item.done; per tool call:
    output_item.added, function_call_arguments.delta (fragments), function_call_arguments.done,
    output_item.done; finally response.completed. No ``[DONE]`` line: the Responses API does not send one.
    """
    seq = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal seq
        payload = {"type": kind, "sequence_number": seq, **fields}
        seq += 1
        return _sse(payload, kind)

    yield event("response.created", response=response_object(reply, done=False))
    yield event("response.in_progress", response=response_object(reply, done=False))
    index = 0
    if _has_message(reply):
        text = reply.text or ""
        item_id = f"msg_demo_{reply.ident}"
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield event("response.output_item.added", output_index=index, item=_message_item(reply, "", False))
        yield event("response.content_part.added", **where, part=part)
        for piece in pieces(text, reply.chunk_chars):
            await _pause(reply)
            yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
        yield event("response.output_text.done", **where, text=text, logprobs=[])
        yield event("response.content_part.done", **where, part={**part, "text": text})
        yield event("response.output_item.done", output_index=index, item=_message_item(reply, text, True))
        index += 1
    for call in reply.tool_calls:
        await _pause(reply)
        yield event("response.output_item.added", output_index=index, item=_call_item(call, False))
        for piece in pieces(call.arguments, reply.chunk_chars):
            await _pause(reply)
            yield event("response.function_call_arguments.delta", item_id=call.item_id, output_index=index, delta=piece)
        yield event(
            "response.function_call_arguments.done",
            item_id=call.item_id,
            output_index=index,
            name=call.name,
            arguments=call.arguments,
        )
        yield event("response.output_item.done", output_index=index, item=_call_item(call, True))
        index += 1
    yield event("response.completed", response=response_object(reply, done=True))


# ---------------------------------------------------------------- embeddings and models


def embed(text: str, dims: int = 8) -> list[float]:
    """A deterministic unit vector for `text`: sha256 blocks mapped to [-1, 1], L2-normalised, float32 values."""
    raw = b"".join(hashlib.sha256(f"{block}:{text}".encode()).digest() for block in range(math.ceil(dims / 32)))
    vec = [b / 127.5 - 1.0 for b in raw[:dims]]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    packed = struct.pack(f"<{dims}f", *(v / norm for v in vec))
    return list(struct.unpack(f"<{dims}f", packed))  # rounded through float32 so "float" and "base64" agree


def embedding_inputs(value: Any) -> list[str] | None:
    """Embedding `input` as texts: a string, a list of strings, a token list, or a list of token lists (tokens
    are rendered as their space-joined numbers, which keeps the vectors deterministic); None if malformed."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [" ".join(map(str, value))]
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [" ".join(map(str, v)) for v in value]
    return None


def embedding_list(texts: list[str], dims: int, as_base64: bool, model: str, tokens: int) -> dict[str, Any]:
    """The `list` of `embedding` objects; base64 is little-endian float32, as the SDK (which asks for it) decodes."""
    data = []
    for i, text in enumerate(texts):
        vec = embed(text, dims)
        value: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_base64 else vec
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def model_card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": OWNER}
