"""Start a real gateway (uvicorn, loopback) in front of the demo upstream, for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openai import OpenAI
from serve_util import serve_app

from bartizan.gateway.app import Gateway
from bartizan.gateway.config import GatewayConfig
from bartizan.gateway.demo import DemoScript, DemoUpstream
from bartizan.gateway.keys import hash_key

KEY = "bzk_test_key_for_the_end_to_end_suite_000000000"


def config(tmp_path: Path, **overrides: Any) -> GatewayConfig:
    tenant = overrides.pop("tenant", {})
    data: dict[str, Any] = {
        "tenants": {"default": {"upstream": {"url": "demo"}, **tenant}},
        "keys": [{"id": "k1", "sha256": hash_key(KEY), "tenant": "default"}],
        "audit": {"url": f"sqlite:///{tmp_path / 'audit.db'}"},
        "stream": {"holdback_chars": 48, "scan_every_chars": 16, "context_chars": 256},
    }
    data.update(overrides)
    return GatewayConfig.model_validate(data)


@contextmanager
def running(
    tmp_path: Path, script: DemoScript | None = None, **overrides: Any
) -> Iterator[tuple[OpenAI, Gateway, DemoUpstream, str]]:
    demo = DemoUpstream(script)
    gw = Gateway(config(tmp_path, **overrides), demo=demo)
    with serve_app(gw.app()) as base:
        client = OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=20)
        yield client, gw, demo, base
