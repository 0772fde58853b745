"""Answers in the OpenAI API's own shapes: errors, blocks, refusals and SSE framing.

A block is HTTP 400 with ``error.code == "content_blocked"`` and the finding ids (never the text that
triggered them), or, when the tenant's policy says ``on_block: refusal``, an ordinary answer whose text is
the refusal, so that clients that cannot handle errors still behave.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.responses import JSONResponse

from bartizan.gateway.inspection import Inspection


def error_body(message: str, type_: str, code: str | None, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "type": type_, "param": None, "code": code}
    err.update(extra)
    return {"error": err}


def error(
    status: int, message: str, type_: str = "invalid_request_error", code: str | None = None, **extra: Any
) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse(error_body(message, type_, code, **extra), status_code=status, headers=headers)


def block_details(inspection: Inspection, request_id: str, direction: str) -> dict[str, Any]:
    findings = [f for f in inspection.findings()]
    blocking = sorted({f["id"] for f in findings})
    return {
        "bartizan": {
            "request_id": request_id,
            "direction": direction,
            "findings": blocking,
            "surfaces": sorted({f["surface"] for f in findings}),
            "failed_detectors": inspection.failed_detectors(),
        }
    }


def blocked(inspection: Inspection, request_id: str, direction: str) -> JSONResponse:
    what = "request" if direction == "input" else "model's answer"
    return error(
        400,
        f"The {what} was blocked by the bartizan policy (request {request_id}).",
        code="content_blocked",
        **block_details(inspection, request_id, direction),
    )


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def refusal_chat(model: str, text: str) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl-bz"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def refusal_response(model: str, text: str) -> dict[str, Any]:
    return {
        "id": new_id("resp_bz"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [
            {
                "id": new_id("msg_bz"),
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
    }


def sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
