"""``POST /v1/chat/completions``, plain and streamed.

Streaming: content deltas pass through a `StreamGuard` (nothing leaves before it has been scanned; the
gateway's own placeholders are restored even when split across chunks); tool-call deltas are held until
the model has finished them, scanned as whole calls, then sent as one delta per call; a block at any point
ends the stream with an OpenAI-style error event, which the official SDK raises as an ``APIError``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from bartizan.gateway import a2as_route, replies
from bartizan.gateway.inspection import INLINE_MAX_CHARS, Inspection, apply_redactions
from bartizan.gateway.placeholders import PlaceholderRestorer
from bartizan.gateway.stream_guard import GuardStep, StreamGuard, render_answer
from bartizan.gateway.surfaces import Surface, chat_request, chat_response, set_text
from bartizan.gateway.upstream import UpstreamError
from bartizan.types import Role, Verdict

if TYPE_CHECKING:
    from bartizan.gateway.a2as_stage import RequestState
    from bartizan.gateway.app import Ctx, Gateway

ROUTE = "/v1/chat/completions"


def restore(text: str, mapping: dict[str, str]) -> str:
    if not mapping:
        return text
    r = PlaceholderRestorer(mapping)
    return r.feed(text) + r.flush()


def render_answer_into(data: dict[str, Any], answer: Inspection, mapping: dict[str, str]) -> None:
    """Write each scanned answer surface back as the stream would release it: the model's own redacted
    values as placeholders numbered past the request's, then the request's placeholders restored (so a
    value the model wrote can never come back as the user's)."""
    for surface, result in answer.results:
        set_text(data, surface.path, render_answer(surface.text, result, mapping))


async def chat_completions(gw: Gateway, request: Request) -> Response:
    ctx = await gw.admit(request, ROUTE)
    if isinstance(ctx, Response):
        return ctx
    body = await gw.read_json(request)
    if isinstance(body, Response):
        return gw.finish(ctx, body)
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return gw.finish(ctx, replies.error(400, "'messages' must be a non-empty list.", code="invalid_messages"))
    untrusted_sender = await a2as_route.authenticate(gw, ctx, request)  # A, before the content is read
    if isinstance(untrusted_sender, Response):
        return gw.finish(ctx, untrusted_sender)
    if (refused := gw.model_refused(ctx, body)) is not None:
        return gw.finish(ctx, refused)
    stream = bool(body.get("stream"))
    if stream and int(body.get("n") or 1) != 1:
        return gw.finish(
            ctx, replies.error(400, "Streaming with n > 1 is not supported by the gateway.", code="unsupported")
        )
    inspection = await gw.inspect(ctx, "input", chat_request(body))
    if inspection.verdict is Verdict.BLOCK:
        return gw.finish(ctx, blocked_reply(gw, ctx, inspection, "input", body, stream))
    apply_redactions(body, inspection)
    prepared = await a2as_route.prepare(gw, ctx, request, body, untrusted_sender, "chat")  # B, I, C, S
    if isinstance(prepared, Response):
        return gw.finish(ctx, prepared)
    body, state = prepared
    if stream:
        headers = {"x-bartizan-request-id": ctx.request_id, "cache-control": "no-cache"}
        return StreamingResponse(
            stream_chat(gw, ctx, body, inspection.restore, state), media_type="text/event-stream", headers=headers
        )
    try:
        status, data = await ctx.tenant.upstream.request_json("POST", "/chat/completions", body)
    except UpstreamError as exc:
        return gw.finish(ctx, await gw.upstream_failed(ctx, exc))
    if status >= 400 or not isinstance(data, dict):
        text = ctx.tenant.upstream.scrub(json.dumps(data))
        await gw.record_error(ctx, "output", f"upstream answered {status}")
        return gw.finish(
            ctx, Response(text, status_code=status if status >= 400 else 502, media_type="application/json")
        )
    leaked = False
    for choice in data.get("choices") or []:  # B/C on every tool call the model proposes
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            leaked |= await a2as_route.enforce(gw, ctx, state, choice["message"], "chat")
            if (
                state is not None
                and not choice["message"].get("tool_calls")
                and choice.get("finish_reason") == "tool_calls"
            ):
                choice["finish_reason"] = "stop"
    if leaked:
        return gw.finish(ctx, replies.error(400, "The model's answer leaked boundary tags.", code="content_blocked"))
    answer = await gw.inspect(ctx, "output", chat_response(data))
    if answer.verdict is Verdict.BLOCK:
        return gw.finish(ctx, blocked_reply(gw, ctx, answer, "output", body, False))
    render_answer_into(data, answer, inspection.restore)
    return gw.finish(ctx, JSONResponse(data))


def blocked_reply(
    gw: Gateway, ctx: Ctx, inspection: Inspection, direction: str, body: dict[str, Any], stream: bool
) -> Response:
    cfg = ctx.tenant.config
    if cfg.on_block == "error":
        return replies.blocked(inspection, ctx.request_id, direction)
    data = replies.refusal_chat(str(body.get("model", "")), cfg.refusal_text)
    if not stream:
        return JSONResponse(data)

    async def one() -> AsyncIterator[bytes]:
        base = {k: data[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
        yield replies.sse(
            base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": cfg.refusal_text}}]}
        )
        yield replies.sse(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        yield replies.sse("[DONE]")

    return StreamingResponse(one(), media_type="text/event-stream")


async def stream_chat(
    gw: Gateway, ctx: Ctx, body: dict[str, Any], mapping: dict[str, str], state: RequestState | None = None
) -> AsyncIterator[bytes]:
    t = ctx.tenant
    sc = gw.config.stream
    guard = StreamGuard(
        lambda text: t.cache.get_or_scan(t.firewall, Role.ASSISTANT, text),
        holdback_chars=sc.holdback_chars,
        scan_every_chars=sc.scan_every_chars,
        context_chars=sc.context_chars,
        restore=mapping,
    )
    meta: dict[str, Any] = {"object": "chat.completion.chunk"}
    calls: dict[int, dict[str, Any]] = {}
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    first = True
    status = "200"
    try:
        done = False
        async for _event, data in t.upstream.stream("/chat/completions", body):
            if data.strip() == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                yield replies.sse(
                    replies.error_body(
                        "The upstream sent a malformed stream chunk.", "upstream_error", "upstream_error"
                    )
                )
                status = "502"
                return
            if isinstance(chunk.get("error"), dict):
                msg = t.upstream.scrub(str(chunk["error"].get("message", "upstream error")))
                status = "502"
                await gw.record_error(ctx, "output", msg)
                yield replies.sse(replies.error_body(msg, "upstream_error", "upstream_error"))
                return
            meta.update({k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk})
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("role"):
                    yield replies.sse(
                        meta | {"choices": [{"index": 0, "delta": {"role": delta["role"], "content": ""}}]}
                    )
                if delta.get("content"):
                    step = guard.feed(delta["content"])  # a window scan: ~0.2 ms, cheaper than a thread hop
                    if step.blocked is not None:
                        status = "400"
                        yield await _block_event(gw, ctx, guard, step.blocked)
                        return
                    if step.released:
                        if first:
                            gw.metrics.ttft_seconds.labels(ROUTE).observe(time.perf_counter() - ctx.t0)
                            first = False
                        yield replies.sse(meta | {"choices": [{"index": 0, "delta": {"content": step.released}}]})
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(
                        int(tc.get("index", 0)),
                        {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                    )
                    if tc.get("id"):
                        slot["id"] = tc["id"]
                    fn = tc.get("function") or {}
                    slot["function"]["name"] += fn.get("name") or ""
                    slot["function"]["arguments"] += fn.get("arguments") or ""
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
        if not done and finish_reason is None:  # the upstream hung up mid-answer: the held text stays held
            status = "502"
            await gw.record_error(ctx, "output", "upstream stream ended before the answer was complete")
            yield replies.sse(
                replies.error_body("The upstream stream ended early.", "upstream_error", "upstream_error")
            )
            return
        step = await finish_guard(guard)
        if step.blocked is not None:
            status = "400"
            yield await _block_event(gw, ctx, guard, step.blocked)
            return
        if step.released:
            yield replies.sse(meta | {"choices": [{"index": 0, "delta": {"content": step.released}}]})
        surfaces = [
            Surface(("tool_calls", i, "function", k), Role.ASSISTANT, c["function"][k])
            for i, c in sorted(calls.items())
            for k in ("name", "arguments")
        ]
        answer = await gw.inspect(ctx, "output", _guard_surfaces(guard) + surfaces)
        if answer.verdict is Verdict.BLOCK:
            status = "400"
            yield replies.sse(
                replies.error_body(
                    "The model's answer was blocked by the bartizan policy.",
                    "invalid_request_error",
                    "content_blocked",
                    **replies.block_details(answer, ctx.request_id, "output"),
                )
            )
            return
        if state is not None and calls:  # B/C on the whole calls, before any byte of them leaves
            message: dict[str, Any] = {"content": "", "tool_calls": [c for _, c in sorted(calls.items())]}
            await a2as_route.enforce(gw, ctx, state, message, "chat")
            calls = dict(enumerate(message.get("tool_calls") or []))
            if message.get("content"):
                yield replies.sse(meta | {"choices": [{"index": 0, "delta": {"content": message["content"]}}]})
            if not calls:
                finish_reason = "stop"
        for i, call in sorted(calls.items()):
            call["function"]["arguments"] = restore(call["function"]["arguments"], mapping)
            yield replies.sse(meta | {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, **call}]}}]})
        yield replies.sse(meta | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason or "stop"}]})
        if usage is not None:
            yield replies.sse(meta | {"choices": [], "usage": usage})
        yield replies.sse("[DONE]")
    except UpstreamError as exc:
        status = str(exc.status)
        await gw.record_error(ctx, "output", t.upstream.scrub(str(exc)))
        yield replies.sse(replies.error_body(t.upstream.scrub(str(exc)), "upstream_error", "upstream_error"))
    finally:
        gw.metrics.requests.labels(ROUTE, t.name, status).inc()
        gw.metrics.request_seconds.labels(ROUTE).observe(time.perf_counter() - ctx.t0)


async def finish_guard(guard: StreamGuard) -> GuardStep:
    """The guard's final whole-answer scan: inline for short answers, in a worker thread for long ones."""
    if len(guard.text) <= INLINE_MAX_CHARS:
        return guard.finish()
    return await asyncio.to_thread(guard.finish)


def _guard_surfaces(guard: StreamGuard) -> list[Surface]:
    return [Surface(("choices", 0, "message", "content"), Role.ASSISTANT, guard.text)] if guard.text else []


async def _block_event(gw: Gateway, ctx: Ctx, guard: StreamGuard, result: Any) -> bytes:
    inspection = Inspection(Verdict.BLOCK, [(_guard_surfaces(guard)[0], result)], result.latency_ms)
    gw.metrics.record("output", inspection)
    await gw.record(ctx, "output", inspection)
    details = replies.block_details(inspection, ctx.request_id, "output")
    return replies.sse(
        replies.error_body(
            "The model's answer was blocked by the bartizan policy.",
            "invalid_request_error",
            "content_blocked",
            **details,
        )
    )
