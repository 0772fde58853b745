"""``POST /v1/responses`` (text input and output, function calls), plain and streamed.

Streaming: ``response.output_text.delta`` events pass through one `StreamGuard` per (output item, content
part); events that repeat the text (``output_text.done``, ``content_part.done``, ``output_item.done``,
``response.completed``) and function-call events are held until the end, rewritten with the guarded text,
scanned as whole calls, and then sent in their original order. Events are renumbered so that
``sequence_number`` stays strictly increasing. A block ends the stream with an ``error`` event.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from bartizan.gateway import a2as_route, replies
from bartizan.gateway.chat import finish_guard, render_answer_into, restore
from bartizan.gateway.inspection import Inspection, apply_redactions
from bartizan.gateway.stream_guard import StreamGuard
from bartizan.gateway.surfaces import Surface, responses_output, responses_request
from bartizan.gateway.upstream import UpstreamError
from bartizan.types import Role, Verdict

if TYPE_CHECKING:
    from bartizan.gateway.a2as_stage import RequestState
    from bartizan.gateway.app import Ctx, Gateway

ROUTE = "/v1/responses"
_HELD = frozenset(
    {
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.completed",
        "response.incomplete",
    }
)


async def responses(gw: Gateway, request: Request) -> Response:
    ctx = await gw.admit(request, ROUTE)
    if isinstance(ctx, Response):
        return ctx
    untrusted_sender = await a2as_route.authenticate(gw, ctx, request)  # A, before the content is read
    if isinstance(untrusted_sender, Response):
        return gw.finish(ctx, untrusted_sender)
    body = await gw.read_json(request)
    if isinstance(body, Response):
        return gw.finish(ctx, body)
    if not isinstance(body.get("input"), (str, list)):
        return gw.finish(ctx, replies.error(400, "'input' must be a string or a list of items.", code="invalid_input"))
    if (refused := gw.model_refused(ctx, body)) is not None:
        return gw.finish(ctx, refused)
    stream = bool(body.get("stream"))
    inspection = await gw.inspect(ctx, "input", responses_request(body))
    if inspection.verdict is Verdict.BLOCK:
        return gw.finish(ctx, _blocked_reply(ctx, inspection, body, stream))
    apply_redactions(body, inspection)
    prepared = await a2as_route.prepare(gw, ctx, request, body, untrusted_sender, "responses")  # B, I, C, S
    if isinstance(prepared, Response):
        return gw.finish(ctx, prepared)
    body, state = prepared
    if stream:
        headers = {"x-bartizan-request-id": ctx.request_id, "cache-control": "no-cache"}
        events = stream_responses(gw, ctx, body, inspection.restore, state)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    try:
        status, data = await ctx.tenant.upstream.request_json("POST", "/responses", body)
    except UpstreamError as exc:
        return gw.finish(ctx, await gw.upstream_failed(ctx, exc))
    if status >= 400 or not isinstance(data, dict):
        await gw.record_error(ctx, "output", f"upstream answered {status}")
        body_text = ctx.tenant.upstream.scrub(json.dumps(data))
        return gw.finish(ctx, Response(body_text, status if status >= 400 else 502, media_type="application/json"))
    if await a2as_route.enforce(gw, ctx, state, data, "responses"):  # B/C on every function call
        return gw.finish(ctx, replies.error(400, "The model's answer leaked boundary tags.", code="content_blocked"))
    answer = await gw.inspect(ctx, "output", responses_output(data))
    if answer.verdict is Verdict.BLOCK:
        return gw.finish(ctx, _blocked_reply(ctx, answer, body, False, "output"))
    render_answer_into(data, answer, inspection.restore)
    if "output_text" in data:
        data["output_text"] = "".join(s.text for s in responses_output(data) if s.path[-1] == "text")
    return gw.finish(ctx, JSONResponse(data))


def _blocked_reply(
    ctx: Ctx, inspection: Inspection, body: dict[str, Any], stream: bool, direction: str = "input"
) -> Response:
    cfg = ctx.tenant.config
    if cfg.on_block == "error":
        return replies.blocked(inspection, ctx.request_id, direction)
    data = replies.refusal_response(str(body.get("model", "")), cfg.refusal_text)
    if not stream:
        return JSONResponse(data)

    async def events() -> AsyncIterator[bytes]:
        yield replies.sse({"type": "response.completed", "sequence_number": 0, "response": data}, "response.completed")

    return StreamingResponse(events(), media_type="text/event-stream")


class _Renumber:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, event: dict[str, Any]) -> bytes:
        event["sequence_number"] = self.n
        self.n += 1
        return replies.sse(event, str(event.get("type", "")))


async def stream_responses(
    gw: Gateway, ctx: Ctx, body: dict[str, Any], mapping: dict[str, str], state: RequestState | None = None
) -> AsyncIterator[bytes]:
    t = ctx.tenant
    sc = gw.config.stream
    guards: dict[tuple[int, int], StreamGuard] = {}
    released: dict[tuple[int, int], str] = {}
    held: list[dict[str, Any]] = []
    emit = _Renumber()
    first = True
    status = "200"

    def guard_for(key: tuple[int, int]) -> StreamGuard:
        if key not in guards:
            guards[key] = StreamGuard(
                lambda text: t.cache.get_or_scan(t.firewall, Role.ASSISTANT, text),
                holdback_chars=sc.holdback_chars,
                scan_every_chars=sc.scan_every_chars,
                context_chars=sc.context_chars,
                restore=mapping,
            )
            released[key] = ""
        return guards[key]

    async def block(result_text: str, inspection: Inspection) -> bytes:
        await gw.record(ctx, "output", inspection)
        gw.metrics.record("output", inspection)
        details = replies.block_details(inspection, ctx.request_id, "output")
        err = {
            "type": "error",
            "code": "content_blocked",
            "message": "The model's answer was blocked by the bartizan policy.",
            "param": None,
            **details,
        }
        return emit(err)

    try:
        async for _name, data in t.upstream.stream("/responses", body):
            if data.strip() == "[DONE]":
                break
            try:
                event = json.loads(data)
            except ValueError:
                status = "502"
                yield emit(
                    {
                        "type": "error",
                        "code": "upstream_error",
                        "message": "The upstream sent a malformed event.",
                        "param": None,
                    }
                )
                return
            kind = event.get("type", "")
            if kind in ("error", "response.failed"):
                status = "502"
                await gw.record_error(ctx, "output", "upstream error event")
                yield emit(
                    {
                        "type": "error",
                        "code": "upstream_error",
                        "message": t.upstream.scrub(str(event.get("message", ""))),
                        "param": None,
                    }
                )
                return
            if kind == "response.output_text.delta":
                key = (int(event.get("output_index", 0)), int(event.get("content_index", 0)))
                step = guard_for(key).feed(str(event.get("delta", "")))  # a window scan: ~0.2 ms
                if step.blocked is not None:
                    status = "400"
                    s = Surface(("output", key[0], "content", key[1], "text"), Role.ASSISTANT, guards[key].text)
                    yield await block(
                        guards[key].text, Inspection(Verdict.BLOCK, [(s, step.blocked)], step.blocked.latency_ms)
                    )
                    return
                if step.released:
                    released[key] += step.released
                    if first:
                        gw.metrics.ttft_seconds.labels(ROUTE).observe(time.perf_counter() - ctx.t0)
                        first = False
                    yield emit(event | {"delta": step.released})
            elif kind in _HELD or _is_call_added(event):
                held.append(event)
            else:
                yield emit(event)
        # the end: release what the guards hold, then scan function calls and rewrite the held events
        final_kinds = ("response.completed", "response.incomplete")
        if not any(e.get("type") in final_kinds for e in held):  # the upstream hung up mid-answer
            status = "502"
            await gw.record_error(ctx, "output", "upstream stream ended before the answer was complete")
            yield emit(
                {
                    "type": "error",
                    "code": "upstream_error",
                    "message": "The upstream stream ended early.",
                    "param": None,
                }
            )
            return
        for key, guard in guards.items():
            step = await finish_guard(guard)
            if step.blocked is not None:
                status = "400"
                s = Surface(("output", key[0], "content", key[1], "text"), Role.ASSISTANT, guard.text)
                yield await block(guard.text, Inspection(Verdict.BLOCK, [(s, step.blocked)], step.blocked.latency_ms))
                return
            if step.released:
                released[key] += step.released
                yield emit(
                    {
                        "type": "response.output_text.delta",
                        "item_id": "",
                        "output_index": key[0],
                        "content_index": key[1],
                        "delta": step.released,
                    }
                )
        final = next(
            (e.get("response") for e in held if e.get("type") in ("response.completed", "response.incomplete")), None
        )
        surfaces = [
            Surface(("output", k[0], "content", k[1], "text"), Role.ASSISTANT, g.text)
            for k, g in guards.items()
            if g.text
        ]
        if isinstance(final, dict):
            surfaces += [s for s in responses_output(final) if s.path[-1] in ("name", "arguments")]
        answer = await gw.inspect(ctx, "output", surfaces)
        if answer.verdict is Verdict.BLOCK:
            status = "400"
            details = replies.block_details(answer, ctx.request_id, "output")
            yield emit(
                {
                    "type": "error",
                    "code": "content_blocked",
                    "message": "The model's answer was blocked by the bartizan policy.",
                    "param": None,
                    **details,
                }
            )
            return
        denied: set[int] = set()
        if state is not None and isinstance(final, dict):  # B/C: the whole calls, before any byte of them leaves
            before = [i for i, item in enumerate(final.get("output") or []) if _is_call(item)]
            names = {i: (final["output"][i].get("id"), final["output"][i].get("call_id")) for i in before}
            if await a2as_route.enforce(gw, ctx, state, final, "responses"):
                status = "400"
                yield emit(
                    {"type": "error", "code": "content_blocked", "message": "Boundary tags leaked.", "param": None}
                )
                return
            kept = {(item.get("id"), item.get("call_id")) for item in final.get("output") or [] if _is_call(item)}
            denied = {i for i in before if names[i] not in kept}
        for event in held:
            if event.get("type") == "response.function_call_arguments.delta":
                continue  # re-sent whole below, so that a placeholder split across deltas is restored
            if int(event.get("output_index", -1)) in denied:
                continue  # a refused call: none of its events leave
            event = _rewrite(event, released, mapping)
            if event.get("type") == "response.function_call_arguments.done":
                whole = {k: event.get(k) for k in ("item_id", "output_index")} | {"delta": event.get("arguments", "")}
                yield emit({"type": "response.function_call_arguments.delta", **whole})
            yield emit(event)
    except UpstreamError as exc:
        status = str(exc.status)
        await gw.record_error(ctx, "output", t.upstream.scrub(str(exc)))
        yield emit({"type": "error", "code": "upstream_error", "message": t.upstream.scrub(str(exc)), "param": None})
    finally:
        gw.metrics.requests.labels(ROUTE, t.name, status).inc()
        gw.metrics.request_seconds.labels(ROUTE).observe(time.perf_counter() - ctx.t0)


def _is_call(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "function_call"


def _is_call_added(event: dict[str, Any]) -> bool:
    return event.get("type") == "response.output_item.added" and _is_call(event.get("item"))


def _rewrite(event: dict[str, Any], released: dict[tuple[int, int], str], mapping: dict[str, str]) -> dict[str, Any]:
    """Put the guarded (redacted, restored) text into an event that repeats the answer's text."""
    kind = event.get("type")
    oi, ci = int(event.get("output_index", 0)), int(event.get("content_index", 0))
    if kind == "response.output_text.done" and (oi, ci) in released:
        event["text"] = released[(oi, ci)]
    elif kind == "response.content_part.done" and isinstance(event.get("part"), dict) and (oi, ci) in released:
        event["part"]["text"] = released[(oi, ci)]
    elif kind == "response.output_item.done" and isinstance(event.get("item"), dict):
        _rewrite_item(event["item"], oi, released, mapping)
    elif kind == "response.function_call_arguments.done" and isinstance(event.get("arguments"), str):
        event["arguments"] = restore(event["arguments"], mapping)
    elif kind in ("response.completed", "response.incomplete") and isinstance(event.get("response"), dict):
        resp = event["response"]
        for i, item in enumerate(resp.get("output") or []):
            if isinstance(item, dict):
                _rewrite_item(item, i, released, mapping)
        if "output_text" in resp:
            resp["output_text"] = "".join(v for _, v in sorted(released.items()))
    return event


def _rewrite_item(item: dict[str, Any], oi: int, released: dict[tuple[int, int], str], mapping: dict[str, str]) -> None:
    if item.get("type") == "message":
        for ci, part in enumerate(item.get("content") or []):
            if isinstance(part, dict) and part.get("type") == "output_text" and (oi, ci) in released:
                part["text"] = released[(oi, ci)]
    elif item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
        item["arguments"] = restore(item["arguments"], mapping)
