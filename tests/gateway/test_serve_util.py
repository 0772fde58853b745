"""`serve_app`: real loopback serving of any ASGI app from a thread, with lifespan and a clean stop."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from serve_util import ServerStartError, serve_app
from starlette.types import Receive, Scope, Send

from bartizan.gateway.demo import DemoRule, DemoScript, DemoUpstream


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def test_serve_app_runs_lifespan_and_stops() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                seen.append(msg["type"])
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve_app(app) as url:
        assert httpx.get(url, timeout=5).text == "ok"
        assert seen == ["lifespan.startup"]
    assert seen == ["lifespan.startup", "lifespan.shutdown"]
    assert not _port_open(url)


def test_serve_app_reports_failed_start() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no"})

    with pytest.raises(ServerStartError), serve_app(app, lifespan="on"):
        pass


def test_serve_app_stops_with_a_stream_open() -> None:
    up = DemoUpstream(DemoScript(rules=[DemoRule(reply_text="x" * 40, stream_chunk_chars=1, chunk_delay_s=0.5)]))
    body = {"model": "m", "messages": [{"role": "user", "content": "slow"}], "stream": True}
    with serve_app(up.app(), grace_s=1.0) as url:
        client = httpx.Client(timeout=10)
        resp = client.send(client.build_request("POST", f"{url}/v1/chat/completions", json=body), stream=True)
        assert next(resp.iter_lines()).startswith("data: ")
        start = time.monotonic()
    try:
        assert time.monotonic() - start < 6
        assert not _port_open(url)
    finally:
        resp.close()
        client.close()
