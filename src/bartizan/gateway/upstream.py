"""The pooled HTTP client to a tenant's model server (aiohttp).

One `aiohttp.ClientSession` per tenant, opened on first use inside the server's event loop and closed at
shutdown, so connections are reused. aiohttp rather than httpx: under 64 concurrent requests httpx's
connection pool spent 37% of the gateway's CPU scanning its connections (py-spy, bench_gateway_load), and an
LLM gateway holds many long streams open at once. The built-in demo upstream is served on a loopback port by
the gateway itself (`bartizan.gateway.app`), so it is reached exactly like a real server, streaming included.

The upstream key is read from its environment variable when the client is built and sent only in the
``Authorization`` header; `scrub` removes it from anything the gateway repeats back (an upstream error body
may quote it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bartizan.gateway.config import UpstreamConfig


class UpstreamError(Exception):
    """The upstream could not be reached or answered nonsense; the message is safe to return."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class Upstream:
    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._key = config.api_key()
        self.base: str | None = None if config.url == "demo" else config.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "[UPSTREAM_KEY]") if self._key else text

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            c = self.config
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=c.connect_timeout_s, sock_read=c.timeout_s)
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            connector = aiohttp.TCPConnector(limit=c.max_connections, limit_per_host=c.max_connections)
            self._session = aiohttp.ClientSession(timeout=timeout, headers=headers, connector=connector)
        return self._session

    def _url(self, path: str) -> str:
        if self.base is None:
            raise UpstreamError("the demo upstream is not running (the gateway's lifespan starts it)", status=503)
        return self.base + path

    async def request_json(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            async with self.session().request(method, self._url(path), json=body) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError as exc:
            raise UpstreamError(f"upstream timed out ({type(exc).__name__})", status=504) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream unreachable ({type(exc).__name__})") from None
        try:
            return status, json.loads(raw)
        except ValueError:
            raise UpstreamError(f"upstream answered {status} with a body that is not JSON") from None

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[tuple[str, str]]:
        """POST and yield SSE ``(event, data)`` pairs as they arrive; raises UpstreamError before the first
        pair when the upstream refuses (the status and a scrubbed message), or later when it fails."""
        try:
            async with self.session().post(self._url(path), json=body) as resp:
                if resp.status >= 400:
                    raw = (await resp.read()).decode("utf-8", "replace")
                    raise UpstreamError(self.scrub(_error_message(raw)), status=resp.status)
                event = ""
                data: list[str] = []
                async for raw_line in resp.content:
                    line = raw_line.decode("utf-8", "replace").rstrip("\r\n")
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
        except TimeoutError as exc:
            raise UpstreamError(f"upstream stream timed out ({type(exc).__name__})", status=504) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream stream failed ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _error_message(raw: str) -> str:
    try:
        err = json.loads(raw).get("error", {})
        return str(err.get("message", "upstream error"))[:500]
    except (ValueError, AttributeError):
        return "upstream error"
