"""A deterministic OpenAI-compatible model served in-process: the upstream of `bartizan serve --upstream demo`.

By default it echoes: the answer is a rendering of what it received, one line per message (see `render_chat`),
so a test can assert exactly what reached the model after the gateway redacted or blocked parts of it. A
`DemoScript` makes it answer with fixed text or tool calls instead, to exercise output scanning and tool-call
checks. It never logs request contents; it keeps the bodies in `DemoUpstream.received` for tests only.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bartizan.gateway.demo_stream import (
    DemoReply,
    DemoToolCallOut,
    chat_completion,
    chat_stream,
    embed,
    embedding_inputs,
    embedding_list,
    model_card,
    response_object,
    responses_stream,
)
from bartizan.schema import SchemaError, SchemaIssue, key_path, load_yaml_model

ECHO_MODEL = "demo-echo"
EMBED_DIMS = 8
MAX_EMBED_DIMS = 4096

# ---------------------------------------------------------------- script


class DemoToolCall(BaseModel):
    """A tool call the scripted model makes; `arguments` may be given as an object or as a JSON text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    arguments: str | dict[str, Any] = "{}"

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"), sort_keys=True)


class DemoRule(BaseModel):
    """One scripted answer. It matches when `when_contains` (if set) is a substring of the last user message (or,
    with ``scope: last_message``, of the last message of any role: the model "obeys" whatever it read last, such
    as an instruction injected into a tool result) and `model` (if set) equals the requested model. No
    `reply_text` and no `tool_calls` means "echo"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when_contains: str | None = None
    reply_text: str | None = None
    tool_calls: list[DemoToolCall] | None = None
    stream_chunk_chars: int = Field(default=8, ge=1)
    model: str | None = None
    chunk_delay_s: float = Field(default=0.0, ge=0.0, le=10.0)  # between streamed pieces (timeout tests)
    error_status: int | None = Field(default=None, ge=400, le=599)  # answer with an OpenAI-style error instead
    scope: Literal["last_user", "last_message"] = "last_user"

    def matches(self, last_user: str, model: str, last_message: str = "") -> bool:
        if self.model is not None and self.model != model:
            return False
        where = last_message if self.scope == "last_message" else last_user
        return self.when_contains is None or self.when_contains in where


class DemoScript(BaseModel):
    """Ordered rules (first match wins) plus extra model ids for /v1/models. Loadable from YAML or JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[DemoRule] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> DemoScript:
        """Read a script file: YAML, or JSON when the name ends in .json; errors raise located `SchemaError`s."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise SchemaError([SchemaIssue(str(p), None, "", f"cannot read: {exc.strerror or exc}")]) from None
        if p.suffix.lower() == ".json":
            return cls._load_json(text, str(p))
        return load_yaml_model(cls, text, str(p))

    @classmethod
    def _load_json(cls, text: str, source: str) -> DemoScript:
        # JSON is read as JSON: YAML rejects the surrogate-pair escapes JSON uses for characters beyond U+FFFF.
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError([SchemaIssue(source, exc.lineno, "", f"invalid JSON: {exc.msg}")]) from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            issues = [
                SchemaIssue(
                    source,
                    None,
                    key_path(tuple(e["loc"])),
                    "unknown key" if e["type"] == "extra_forbidden" else e["msg"],
                )
                for e in exc.errors()
            ]
            raise SchemaError(issues) from None

    def pick(self, last_user: str, model: str, last_message: str = "") -> DemoRule | None:
        return next((r for r in self.rules if r.matches(last_user, model, last_message)), None)

    def model_ids(self) -> list[str]:
        ids = [ECHO_MODEL, *self.models, *(r.model for r in self.rules if r.model)]
        return list(dict.fromkeys(ids))


# ---------------------------------------------------------------- rendering what the model received


def render_content(content: Any) -> str:
    """A message's content as one text: strings as they are, parts joined with a space, non-text parts as
    ``[<type>]`` (e.g. ``[image_url]``), None as the empty string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                kind = str(part.get("type", ""))
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif isinstance(part.get("refusal"), str):
                    out.append(part["refusal"])
                else:
                    out.append(f"[{kind}]")
        return " ".join(out)
    return json.dumps(content, sort_keys=True)


def _tool_call_line(name: Any, arguments: Any) -> str:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, sort_keys=True)
    return f"assistant.tool_call {name}({args})"


def render_chat(messages: list[dict[str, Any]]) -> str:
    """Chat messages as lines: ``<role>: <content>``; tool results as ``tool[<tool_call_id>]: <content>``;
    each assistant tool call as ``assistant.tool_call <name>(<arguments>)`` (after its text line, which is left
    out when the assistant message has tool calls and no content)."""
    lines: list[str] = []
    for msg in messages:
        role = str(msg.get("role", ""))
        content = render_content(msg.get("content"))
        if role == "tool":
            lines.append(f"tool[{msg.get('tool_call_id', '')}]: {content}")
            continue
        calls = msg.get("tool_calls") if role == "assistant" else None
        legacy = msg.get("function_call") if role == "assistant" else None
        if not (calls or legacy) or msg.get("content"):
            lines.append(f"{role}: {content}")
        for call in calls if isinstance(calls, list) else []:
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            lines.append(_tool_call_line(fn.get("name", ""), fn.get("arguments", "")))
        if isinstance(legacy, dict):
            lines.append(_tool_call_line(legacy.get("name", ""), legacy.get("arguments", "")))
    return "\n".join(lines)


def render_responses(input_: Any, instructions: Any) -> str:
    """Responses API input as lines: ``instructions: <text>`` first when given; a string input is one
    ``user: <text>`` line; message items as ``<role>: <content>``; ``function_call`` items as
    ``assistant.tool_call <name>(<arguments>)``; ``function_call_output`` as ``tool[<call_id>]: <output>``;
    any other item as ``[<type>]``."""
    lines: list[str] = []
    if isinstance(instructions, str):
        lines.append(f"instructions: {instructions}")
    if isinstance(input_, str):
        lines.append(f"user: {input_}")
        return "\n".join(lines)
    for item in input_ if isinstance(input_, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type") or ("message" if "role" in item else "")
        if kind == "message":
            lines.append(f"{item.get('role', '')}: {render_content(item.get('content'))}")
        elif kind == "function_call":
            lines.append(_tool_call_line(item.get("name", ""), item.get("arguments", "")))
        elif kind == "function_call_output":
            lines.append(f"tool[{item.get('call_id', '')}]: {render_content(item.get('output'))}")
        else:
            lines.append(f"[{kind}]")
    return "\n".join(lines)


def last_user_text(items: Any) -> str:
    """The content of the last user message (chat messages or Responses items); a string input is itself."""
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            return render_content(item.get("content"))
    return ""


def last_message_text(items: Any) -> str:
    """The content of the last message or item of any role (a tool result, a function_call_output...)."""
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            if "content" in item:
                return render_content(item.get("content"))
            if isinstance(item.get("output"), str):
                return str(item["output"])
    return ""


def words(text: str) -> int:
    """Token usage of the demo model: whitespace-separated words."""
    return len(text.split())


# ---------------------------------------------------------------- the app


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class DemoUpstream:
    """Answers like an OpenAI server. Default: echo. Scripted: see `DemoScript`.

    `received` holds every POST body in arrival order and `received_headers` the matching request headers
    (lower-case names), so tests can prove what the gateway forwarded, including which credentials."""

    def __init__(self, script: DemoScript | None = None) -> None:
        self.script = script or DemoScript()
        self.received: list[dict[str, Any]] = []
        self.received_headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self._app: Starlette | None = None

    def app(self) -> Starlette:
        """The Starlette app (built once): /v1/chat/completions, /v1/responses, /v1/embeddings, /v1/models."""
        if self._app is None:
            self._app = Starlette(
                routes=[
                    Route("/v1/chat/completions", self._chat, methods=["POST"]),
                    Route("/v1/responses", self._responses, methods=["POST"]),
                    Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                    Route("/v1/models", self._models, methods=["GET"]),
                    Route("/v1/models/{model_id:path}", self._model, methods=["GET"]),
                ],
                exception_handlers={HTTPException: self._http_error},  # type: ignore[dict-item]
            )
        return self._app

    # -- plumbing

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        return _error(
            exc.status_code, exc.detail, "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        )

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise _BadRequest("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _BadRequest("request body must be a JSON object")
        self.received.append(body)
        self.received_headers.append({k.lower(): v for k, v in request.headers.items()})
        return body

    def _reply(
        self, body: dict[str, Any], transcript: str, last_user: str, last_message: str = ""
    ) -> DemoReply | JSONResponse:
        model = body.get("model")
        model = model if isinstance(model, str) and model else ECHO_MODEL
        rule = self.script.pick(last_user, model, last_message) or DemoRule()
        if rule.error_status is not None:
            return _error(rule.error_status, "demo upstream scripted error", "server_error")
        n = next(self._ids)
        scripted = rule.reply_text is not None or rule.tool_calls is not None
        text = rule.reply_text if scripted else transcript
        calls = tuple(
            DemoToolCallOut(f"call_demo_{n}_{i}", c.name, c.arguments_json(), f"fc_demo_{n}_{i}")
            for i, c in enumerate(rule.tool_calls or [])
        )
        out_words = words(text or "") + sum(words(f"{c.name} {c.arguments}") for c in calls)
        return DemoReply(
            ident=str(n),
            model=model,
            created=int(time.time()),
            text=text,
            tool_calls=calls,
            chunk_chars=rule.stream_chunk_chars,
            chunk_delay_s=rule.chunk_delay_s,
            prompt_tokens=words(transcript),
            completion_tokens=out_words,
            request=body,
        )

    # -- endpoints

    async def _chat(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            messages = body.get("messages")
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise _BadRequest("'messages' must be a list of message objects", "messages")
        except _BadRequest as exc:
            return _error(400, exc.message, param=exc.param)
        reply = self._reply(body, render_chat(messages), last_user_text(messages), last_message_text(messages))
        if isinstance(reply, JSONResponse):
            return reply
        if body.get("stream"):
            opts = body.get("stream_options")
            usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
            return _event_stream(chat_stream(reply, usage))
        return JSONResponse(chat_completion(reply))

    async def _responses(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            input_ = body.get("input")
            if not isinstance(input_, str | list):
                raise _BadRequest("'input' must be a string or a list of items", "input")
        except _BadRequest as exc:
            return _error(400, exc.message, param=exc.param)
        transcript = render_responses(input_, body.get("instructions"))
        reply = self._reply(body, transcript, last_user_text(input_), last_message_text(input_))
        if isinstance(reply, JSONResponse):
            return reply
        if body.get("stream"):
            return _event_stream(responses_stream(reply))
        return JSONResponse(response_object(reply))

    async def _embeddings(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            texts = embedding_inputs(body.get("input"))
            if texts is None:
                raise _BadRequest("'input' must be a string, a list of strings, or token lists", "input")
            dims = body.get("dimensions", EMBED_DIMS)
            if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= MAX_EMBED_DIMS:
                raise _BadRequest(f"'dimensions' must be an integer in 1..{MAX_EMBED_DIMS}", "dimensions")
            fmt = body.get("encoding_format", "float")
            if fmt not in ("float", "base64"):
                raise _BadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
        except _BadRequest as exc:
            return _error(400, exc.message, param=exc.param)
        model = body.get("model")
        model = model if isinstance(model, str) and model else ECHO_MODEL
        tokens = sum(words(t) for t in texts)
        return JSONResponse(embedding_list(texts, dims, fmt == "base64", model, tokens))

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [model_card(m) for m in self.script.model_ids()]})

    async def _model(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        if model_id not in self.script.model_ids():
            return _error(404, f"The model '{model_id}' does not exist", "not_found_error", "model")
        return JSONResponse(model_card(model_id))


def _event_stream(chunks: Any) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)


__all__ = [
    "ECHO_MODEL",
    "DemoRule",
    "DemoScript",
    "DemoToolCall",
    "DemoUpstream",
    "embed",
    "render_chat",
    "render_content",
    "render_responses",
]
