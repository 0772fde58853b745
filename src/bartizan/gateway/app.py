"""The gateway's ASGI application: admission (key, tenant, rate limit), routes, audit, metrics.

Every route runs the same steps: admit the caller, parse the body, enumerate its surfaces
(`bartizan.gateway.surfaces`), scan them with the tenant's pipeline (`inspection`), block or redact, call
the tenant's upstream, scan the answer the same way, restore the gateway's own placeholders, record the
decision. Chat completions and the Responses API live in `chat` and `responses_api`; this module holds the
shared state and the small routes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bartizan.audit import AsyncAuditWriter, AuditRecord, AuditStore, AuditUnavailable
from bartizan.gateway import replies
from bartizan.gateway.config import GatewayConfig, TenantConfig
from bartizan.gateway.inspection import Inspection, ScanCache, apply_redactions, inspect
from bartizan.gateway.keys import KeyRing
from bartizan.gateway.metrics import GatewayMetrics
from bartizan.gateway.ratelimit import RateLimiter, build_rate_limiter
from bartizan.gateway.surfaces import Surface, embeddings_request
from bartizan.gateway.upstream import Upstream, UpstreamError
from bartizan.home import default_audit_url
from bartizan.pipeline import Firewall
from bartizan.policy.loader import load_policy
from bartizan.types import Verdict

log = logging.getLogger("bartizan.gateway")


@dataclass
class Tenant:
    name: str
    config: TenantConfig
    firewall: Firewall
    cache: ScanCache
    upstream: Upstream


@dataclass
class Ctx:
    """One request: who, where, since when."""

    request_id: str
    tenant: Tenant
    key_id: str
    route: str
    t0: float


class Gateway:
    """Shared state of one gateway process. Built once; `app()` is the ASGI application."""

    def __init__(
        self, config: GatewayConfig, *, demo: Any | None = None, audit_store: AuditStore | None = None
    ) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        self.keys = KeyRing(config)
        self.demo = demo
        if demo is None and any(t.upstream.url == "demo" for t in config.tenants.values()):
            from bartizan.gateway.demo import DemoUpstream

            self.demo = DemoUpstream()
        self.tenants: dict[str, Tenant] = {}
        for name, tc in config.tenants.items():
            fw = Firewall(load_policy(tc.policy))  # builds and warms every detector now, not on the first request
            self.tenants[name] = Tenant(name, tc, fw, ScanCache(), Upstream(tc.upstream))
        self.a2as: dict[str, Any] = {}
        if any(t.config.a2as is not None for t in self.tenants.values()):
            from bartizan.gateway.a2as_stage import build_runtimes  # needs the `agents` extra (cedarpy)

            self.a2as = build_runtimes(self.tenants)  # fails here, at start-up, on a bad certificate/policy/key
        self.store = audit_store or AuditStore(
            config.audit.url or default_audit_url(create=True),
            capture_key=env_key(config.audit.capture_key_env) if config.audit.capture_prompts else None,
            chain_key=env_key(config.audit.chain_key_env),
        )
        self.audit = AsyncAuditWriter(self.store)
        self.metrics.watch_audit(lambda: self.audit.pending, lambda: self.audit.written, lambda: self.audit.dropped)
        self.limiter: RateLimiter = build_rate_limiter(config.redis_url)
        self.draining = False
        self.tracer: Any = None
        if config.otel:
            # OpenTelemetry is optional (the `otel` extra); the exporter is the operator's: whatever tracer
            # provider the process configured (OTEL_* environment, or code that embeds the gateway).
            from opentelemetry import trace

            self.tracer = trace.get_tracer("bartizan.gateway")

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
        """A trace span when tracing is on, else a no-op. Attributes are ids and verdicts, never text."""
        if self.tracer is None:
            return contextlib.nullcontext()
        span: contextlib.AbstractContextManager[Any] = self.tracer.start_as_current_span(name, attributes=attributes)
        return span

    # --- admission ------------------------------------------------------------------------------------
    async def admit(self, request: Request, route: str) -> Ctx | Response:
        request_id = replies.new_id("req_")
        header = request.headers.get("authorization") or request.headers.get("api-key")
        principal = self.keys.authenticate(header)
        if principal is None:
            # anonymous mode (dev/demo): an unknown key is no better than none, and no worse
            if not self.config.allow_anonymous:
                return replies.error(401, "Invalid or missing API key.", code="invalid_api_key")
            tenant_name, key_id, limit = "default", "anonymous", self.config.tenants["default"].rate_limit
        else:
            tenant_name, key_id = principal.tenant, principal.key_id
            limit = principal.rate_limit or self.config.tenants[tenant_name].rate_limit
        tenant = self.tenants[tenant_name]
        decision = await self.limiter.hit(f"key:{key_id}", limit)
        if not decision.allowed:
            self.metrics.rate_limited.labels(tenant_name).inc()
            retry = max(1, int(decision.retry_after_s + 0.999))
            return replies.error(
                429,
                "Rate limit reached for this key.",
                type_="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"retry-after": str(retry)},
            )
        return Ctx(request_id, tenant, key_id, route, time.perf_counter())

    async def read_json(self, request: Request) -> dict[str, Any] | Response:
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return replies.error(415, "Content-Type must be application/json.", code="unsupported_media_type")
        raw = await request.body()
        if len(raw) > self.config.max_body_bytes:
            return replies.error(413, f"Request body over {self.config.max_body_bytes} bytes.", code="body_too_large")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return replies.error(400, "The body is not valid JSON.", code="invalid_json")
        if not isinstance(body, dict):
            return replies.error(400, "The body must be a JSON object.", code="invalid_json")
        return body

    def model_refused(self, ctx: Ctx, body: dict[str, Any]) -> Response | None:
        allowed = ctx.tenant.config.models
        if allowed is not None and body.get("model") not in allowed:
            return replies.error(404, "This model is not available to this key.", code="model_not_found")
        return None

    # --- scanning, audit, metrics ----------------------------------------------------------------------
    async def inspect(self, ctx: Ctx, direction: str, surfaces: list[Surface]) -> Inspection:
        t = ctx.tenant
        with self.span("bartizan.scan", request_id=ctx.request_id, tenant=t.name, direction=direction) as span:
            result = await inspect(t.firewall, t.cache, surfaces)
            if span is not None:
                span.set_attribute("bartizan.verdict", result.verdict.value)
                span.set_attribute("bartizan.surfaces", len(surfaces))
                span.set_attribute("bartizan.findings", sorted({f["id"] for f in result.findings()}))
        self.metrics.record(direction, result)
        await self.record(ctx, direction, result, capture="\n".join(s.text for s in surfaces))
        return result

    async def record(self, ctx: Ctx, direction: str, inspection: Inspection, *, capture: str | None = None) -> None:
        rec = AuditRecord(
            request_id=ctx.request_id,
            tenant=ctx.tenant.name,
            route=ctx.route,
            direction=direction,
            verdict=inspection.verdict.value,
            findings=tuple(inspection.findings()),
            detector_latency_ms=inspection.detector_latency_ms(),
            policy_hash=ctx.tenant.firewall.policy_hash,
            surface=",".join(sorted({s.name for s, _ in inspection.results}))[:1000],
            extra={"key_id": ctx.key_id, "scan_ms": round(inspection.latency_ms, 3)},
            captured_text=capture if self.config.audit.capture_prompts else None,
        )
        await self.audit.write(rec)
        log.info(
            "decision",
            extra={
                "request_id": ctx.request_id,
                "tenant": ctx.tenant.name,
                "route": ctx.route,
                "direction": direction,
                "verdict": inspection.verdict.value,
                "findings": sorted({f["id"] for f in rec.findings}),
                "scan_ms": round(inspection.latency_ms, 3),
            },
        )

    def finish(self, ctx: Ctx, response: Response) -> Response:
        response.headers["x-bartizan-request-id"] = ctx.request_id
        self.metrics.requests.labels(ctx.route, ctx.tenant.name, str(response.status_code)).inc()
        self.metrics.request_seconds.labels(ctx.route).observe(time.perf_counter() - ctx.t0)
        return response

    async def upstream_failed(self, ctx: Ctx, exc: UpstreamError) -> Response:
        message = ctx.tenant.upstream.scrub(str(exc))
        status = exc.status if 400 <= exc.status < 600 else 502
        await self.record_error(ctx, "output", message)
        return replies.error(status, message, type_="upstream_error", code="upstream_error")

    async def record_a2as(self, ctx: Ctx, events: list[Any], verdict: str, state: Any | None = None) -> None:
        """One audit row for the A2AS stages of a request: event names, decisions and rule/policy ids."""
        runtime = self.a2as.get(ctx.tenant.name)
        extra: dict[str, Any] = {"key_id": ctx.key_id}
        if runtime is not None:
            extra["defense_sha256"] = runtime.defense_sha256
            extra["policy_sha256"] = runtime.policy.sha256 if runtime.policy is not None else None
            extra["certificate_digest"] = runtime.certificate.digest if runtime.certificate is not None else None
        if state is not None:
            extra["a2as_ms"] = round(state.elapsed_ms, 4)
            extra["added_chars"] = state.prepared.added_chars
        findings = tuple(
            {"detector": "a2as", "category": e.name, "rule_id": e.rule, "evidence": e.decision, "score": 1.0}
            for e in events
        )
        rec = AuditRecord(
            request_id=ctx.request_id,
            tenant=ctx.tenant.name,
            route=ctx.route,
            direction="tool_call",
            verdict=verdict,
            findings=findings,
            detector_latency_ms={},
            policy_hash=ctx.tenant.firewall.policy_hash,
            extra=extra,
        )
        await self.audit.write(rec)

    async def record_error(self, ctx: Ctx, direction: str, reason: str) -> None:
        """Record a request that ended without a verdict on the answer (upstream down, stream cut)."""
        rec = AuditRecord(
            request_id=ctx.request_id,
            tenant=ctx.tenant.name,
            route=ctx.route,
            direction=direction,
            verdict="error",
            findings=(),
            detector_latency_ms={},
            policy_hash=ctx.tenant.firewall.policy_hash,
            extra={"key_id": ctx.key_id, "error": reason[:200]},
        )
        await self.audit.write(rec)
        log.warning(
            "upstream error", extra={"request_id": ctx.request_id, "tenant": ctx.tenant.name, "error": reason[:200]}
        )

    # --- small routes ----------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        ctx = await self.admit(request, "/v1/models")
        if isinstance(ctx, Response):
            return ctx
        try:
            status, data = await ctx.tenant.upstream.request_json("GET", "/models")
        except UpstreamError as exc:
            return self.finish(ctx, await self.upstream_failed(ctx, exc))
        allowed = ctx.tenant.config.models
        if status < 400 and allowed is not None and isinstance(data, dict) and isinstance(data.get("data"), list):
            data["data"] = [m for m in data["data"] if isinstance(m, dict) and m.get("id") in allowed]
        return self.finish(ctx, JSONResponse(data, status_code=status))

    async def embeddings(self, request: Request) -> Response:
        ctx = await self.admit(request, "/v1/embeddings")
        if isinstance(ctx, Response):
            return ctx
        body = await self.read_json(request)
        if isinstance(body, Response):
            return self.finish(ctx, body)
        if (refused := self.model_refused(ctx, body)) is not None:
            return self.finish(ctx, refused)
        inspection = await self.inspect(ctx, "input", embeddings_request(body))
        if inspection.verdict is Verdict.BLOCK:
            return self.finish(ctx, replies.blocked(inspection, ctx.request_id, "input"))
        apply_redactions(body, inspection)
        try:
            status, data = await ctx.tenant.upstream.request_json("POST", "/embeddings", body)
        except UpstreamError as exc:
            return self.finish(ctx, await self.upstream_failed(ctx, exc))
        return self.finish(ctx, JSONResponse(data, status_code=status))

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks = {
            "audit": bool(self.audit.healthy),
            "rate_limiter": bool(getattr(self.limiter, "healthy", True)),
            "draining": not self.draining,
        }
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
        )

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    # --- lifecycle -------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        demo_server = None
        if self.demo is not None and any(t.config.upstream.url == "demo" for t in self.tenants.values()):
            from bartizan.gateway.demo_server import DemoServer

            demo_server = DemoServer(self.demo.app())
            url = await demo_server.start()
            for t in self.tenants.values():
                if t.config.upstream.url == "demo":
                    t.upstream.base = url
        try:
            yield
        finally:
            self.draining = True
            await self.audit.drain()
            for t in self.tenants.values():
                await t.upstream.aclose()
            await self.limiter.close()
            if demo_server is not None:
                await demo_server.stop()

    def app(self) -> Starlette:
        from bartizan.gateway.chat import chat_completions
        from bartizan.gateway.responses_api import responses

        async def chat(request: Request) -> Response:
            return await chat_completions(self, request)

        async def resp(request: Request) -> Response:
            return await responses(self, request)

        routes = [
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/responses", resp, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
        ]
        return Starlette(
            routes=routes,
            lifespan=self.lifespan,
            exception_handlers={HTTPException: http_error, AuditUnavailable: audit_down, Exception: internal_error},
        )


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes, wrong methods and other HTTP errors, in the OpenAI error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "unknown_route", 405: "method_not_allowed"}.get(status, "http_error")
    detail = exc.detail if isinstance(exc, HTTPException) else "error"
    return replies.error(status, f"{request.method} {request.url.path}: {detail}", code=code)


async def audit_down(request: Request, exc: Exception) -> Response:
    """No decision goes unrecorded: when the audit trail cannot take more, the request fails closed (503)."""
    log.error("audit unavailable", extra={"route": request.url.path})
    return replies.error(
        503,
        "The audit trail is unavailable; request refused.",
        type_="server_error",
        code="audit_unavailable",
        headers={"retry-after": "1"},
    )


async def internal_error(request: Request, exc: Exception) -> Response:
    """A bug in the gateway answers 500 in the API's shape and says nothing about the request's content."""
    log.error("internal error", extra={"route": request.url.path, "exc_type": type(exc).__name__})
    return replies.error(500, "Internal error in the bartizan gateway.", type_="server_error", code="internal_error")


def env_key(name: str | None) -> bytes | None:
    """A 32-byte key from the environment variable `name` (base64), or None when no variable is named."""
    if not name:
        return None
    raw = os.environ.get(name)
    if not raw:
        raise ValueError(f"environment variable {name} is not set")
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        raise ValueError(f"environment variable {name} is not base64") from None
    if len(key) != 32:
        raise ValueError(f"environment variable {name} must hold 32 bytes (base64), not {len(key)}")
    return key
