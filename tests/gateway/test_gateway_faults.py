"""Bad input and faults: every refusal is an OpenAI-style 4xx/5xx, nothing hangs, every decision is recorded,
a detector that errors fails closed, and killing the gateway under load leaves an audit chain that verifies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from gw_util import KEY, running
from serve_util import serve_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from bartizan.audit import AuditStore
from bartizan.gateway.demo import DemoRule, DemoScript

HEADERS = {"authorization": f"Bearer {KEY}"}
CHAT = {"model": "demo-echo", "messages": [{"role": "user", "content": "hi"}]}


def test_bad_requests_get_openai_style_errors(tmp_path: Path) -> None:
    with running(tmp_path, max_body_bytes=2000) as (_client, _gw, demo, base):
        http = httpx.Client(base_url=base, timeout=10)
        cases = [
            (
                http.post(
                    "/v1/chat/completions", headers=HEADERS | {"content-type": "application/json"}, content=b"{nope"
                ),
                400,
                "invalid_json",
            ),
            (
                http.post("/v1/chat/completions", headers=HEADERS | {"content-type": "text/plain"}, content=b"{}"),
                415,
                "unsupported_media_type",
            ),
            (
                http.post(
                    "/v1/chat/completions",
                    headers=HEADERS,
                    json={"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]},
                ),
                413,
                "body_too_large",
            ),
            (
                http.post("/v1/chat/completions", headers=HEADERS, json={"model": "m", "messages": []}),
                400,
                "invalid_messages",
            ),
            (http.post("/v1/chat/completions", headers=HEADERS, json=[1, 2]), 400, "invalid_json"),
            (http.get("/v1/nowhere", headers=HEADERS), 404, "unknown_route"),
            (http.get("/v1/chat/completions", headers=HEADERS), 405, "method_not_allowed"),
            (http.post("/v1/chat/completions", json=CHAT), 401, "invalid_api_key"),
            (
                http.post("/v1/chat/completions", headers={"authorization": "Bearer bzk_wrong"}, json=CHAT),
                401,
                "invalid_api_key",
            ),
        ]
        for resp, status, code in cases:
            assert resp.status_code == status, (status, resp.text)
            assert resp.json()["error"]["code"] == code
    assert demo.received == []


def test_upstream_5xx_and_timeouts_are_clean_errors_and_recorded(tmp_path: Path) -> None:
    script = DemoScript(rules=[DemoRule(when_contains="fail", error_status=503)])
    with running(tmp_path, script) as (client, gw, _demo, _):
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": "fail please"}])
        assert info.value.status_code == 503
    assert "error" in {r["verdict"] for r in gw.store.rows(limit=5)}
    # an upstream that accepts the connection and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    upstream = {"url": f"http://127.0.0.1:{silent.getsockname()[1]}/v1", "timeout_s": 0.5}
    try:
        (tmp_path / "t").mkdir()
        with running(tmp_path / "t", tenant={"upstream": upstream}) as (client, _gw, _demo, _):
            t0 = time.monotonic()
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert info.value.status_code == 504 and time.monotonic() - t0 < 5
            with pytest.raises(openai.APIError):
                list(
                    client.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "hi"}])
                )
    finally:
        silent.close()


def _cut_stream_app() -> Starlette:
    async def chat(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            first = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Here is the start of an answer"}}],
            }
            yield f"data: {json.dumps(first)}\n\n".encode()
            # and then the upstream goes away: no finish_reason, no [DONE]

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_a_stream_cut_mid_way_ends_with_an_error_event_and_is_recorded(tmp_path: Path) -> None:
    with serve_app(_cut_stream_app()) as upstream:
        with running(tmp_path, tenant={"upstream": {"url": f"{upstream}/v1"}}) as (client, gw, _demo, _):
            with pytest.raises(openai.APIError) as info:
                list(
                    client.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "hi"}])
                )
            assert "ended early" in str(info.value)
    gw_rows = gw.store.rows(limit=5)
    assert any(r["verdict"] == "error" for r in gw_rows)


def test_a_detector_that_errors_fails_closed(tmp_path: Path) -> None:
    policy = tmp_path / "broken.yaml"
    policy.write_text(
        "version: 1\nname: broken\ndetectors:\n  injection:\n    roles: [user]\n    action: flag\n"
        f"    config: {{head_dir: '{tmp_path / 'missing'}'}}\n"
    )
    with running(tmp_path, tenant={"policy": str(policy)}) as (client, _gw, demo, _):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": "hello"}])
    body = info.value.body
    err = body.get("error", body) if isinstance(body, dict) else {}
    assert err["bartizan"]["failed_detectors"] == ["injection"]
    assert demo.received == []


def test_killing_the_gateway_under_load_leaves_a_chain_that_verifies(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "BARTIZAN_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bartizan.cli.main", "serve", "--upstream", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        done = threading.Event()
        ok = [0]

        def load() -> None:
            with httpx.Client(base_url=base, headers={"authorization": "Bearer demo"}, timeout=5) as c:
                while not done.is_set():
                    try:
                        if c.post("/v1/chat/completions", json=CHAT).status_code == 200:
                            ok[0] += 1
                    except httpx.HTTPError:
                        return

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        done.set()
        for w in workers:
            w.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert ok[0] > 10
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}", create=False)
    report = store.verify()
    store.close()
    assert report.ok, report.problems
    assert report.rows > 0
