"""The A2AS steps of a route, shared by chat completions and the Responses API.

`authenticate` runs first (stage A, before anything reads the body's content); `prepare` runs after the
firewall scanned and redacted the body (B, I, C, S); `enforce` decides the model's tool calls (B/C) and checks
for leaked tags. Tenants without an ``a2as`` section pass straight through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from bartizan.gateway import replies

if TYPE_CHECKING:
    from bartizan.gateway.a2as_stage import RequestState
    from bartizan.gateway.app import Ctx, Gateway


async def authenticate(gw: Gateway, ctx: Ctx, request: Request) -> Response | bool:
    """A: a Response refusing the request, or whether the sender is to be treated as untrusted."""
    a2as = gw.a2as.get(ctx.tenant.name)
    if a2as is None or a2as.config.auth is None:
        return False
    auth = a2as.authenticate(request.method, request.url.path, dict(request.headers), await request.body())
    if auth is None or auth.ok:
        return False
    on_fail = a2as.config.auth.on_fail
    await gw.record_a2as(ctx, auth.events, "block" if on_fail == "reject" else "flag")
    if on_fail == "reject":
        return replies.error(401, f"Request signature rejected: {auth.reason}.", code="signature_invalid")
    return bool(on_fail == "mark_untrusted")


async def prepare(
    gw: Gateway, ctx: Ctx, request: Request, body: dict[str, Any], untrusted: bool, shape: Literal["chat", "responses"]
) -> Response | tuple[dict[str, Any], RequestState | None]:
    """B, I, C, S on the (already scanned and redacted) body: the body to forward and the request's state."""
    a2as = gw.a2as.get(ctx.tenant.name)
    if a2as is None:
        return body, None
    session = request.headers.get("x-a2as-session") or ctx.request_id
    state = a2as.prepare(body, session, untrusted=untrusted, shape=shape)
    if state.prepared.model_denied:
        await gw.record_a2as(ctx, state.events, "block")
        return replies.error(
            403,
            "The agent's certificate does not allow this model.",
            type_="permission_error",
            code="model_not_allowed",
        )
    return state.prepared.body, state


async def enforce(gw: Gateway, ctx: Ctx, state: RequestState | None, answer: dict[str, Any], shape: str) -> bool:
    """B/C on the answer in place (a chat ``message`` dict or a Responses ``response`` dict); True when the
    answer leaked boundary tags and the tenant blocks that."""
    a2as = gw.a2as.get(ctx.tenant.name)
    if a2as is None or state is None:
        return False
    result = a2as.enforce(state, answer, shape=shape)
    await gw.record_a2as(ctx, state.events, "block" if result.denied else "allow", state)
    return bool(result.tag_leak and a2as.config.tag_leak == "block")
