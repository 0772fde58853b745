"""The pooled HTTP client to a tenant's model server (or to the in-process demo upstream).

One `httpx.AsyncClient` per tenant, created at start-up and closed at shutdown, so connections are reused.
The demo upstream is reached through `httpx.ASGITransport`: the same client code path as a real server.
The upstream key is read from its environment variable when the client is built and sent only in the
``Authorization`` header; `scrub` removes it from anything the gateway repeats back (an upstream error body
may quote it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bartizan.gateway.config import UpstreamConfig


class UpstreamError(Exception):
    """The upstream could not be reached or answered nonsense; the message is safe to return."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class Upstream:
    def __init__(self, config: UpstreamConfig, demo_app: Any | None = None) -> None:
        self.config = config
        self._key = config.api_key()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        if config.url == "demo":
            if demo_app is None:
                raise ValueError("the demo upstream needs its app")
            transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=demo_app)
            base = "http://demo.invalid/v1"
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits, retries=1)
            base = config.url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout, transport=transport)

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "[UPSTREAM_KEY]") if self._key else text

    async def request_json(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            resp = await self.client.request(method, path, json=body)
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"upstream timed out ({type(exc).__name__})", status=504) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream unreachable ({type(exc).__name__})") from None
        try:
            return resp.status_code, resp.json()
        except ValueError:
            raise UpstreamError(f"upstream answered {resp.status_code} with a body that is not JSON") from None

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[tuple[str, str]]:
        """POST and yield SSE ``(event, data)`` pairs as they arrive; raises UpstreamError before the first
        pair when the upstream refuses (the status and a scrubbed message)."""
        try:
            async with self.client.stream("POST", path, json=body) as resp:
                if resp.status_code >= 400:
                    raw = (await resp.aread()).decode("utf-8", "replace")
                    raise UpstreamError(self.scrub(_error_message(raw)), status=resp.status_code)
                event = ""
                data: list[str] = []
                async for line in resp.aiter_lines():
                    if line == "":
                        if data:
                            yield event, "\n".join(data)
                        event, data = "", []
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                if data:
                    yield event, "\n".join(data)
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"upstream stream timed out ({type(exc).__name__})", status=504) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream stream failed ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _error_message(raw: str) -> str:
    try:
        err = json.loads(raw).get("error", {})
        return str(err.get("message", "upstream error"))[:500]
    except (ValueError, AttributeError):
        return "upstream error"
