"""`bartizan serve` as a real process: start, answer, log JSON without content, drain a stream on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from bartizan.audit import AuditStore
from bartizan.cli.main import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"bartizan serve exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("bartizan serve did not become ready")


def test_serve_demo_answers_logs_json_and_drains_streams_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "demo.yaml"
    script.write_text(
        "rules:\n  - when_contains: slow\n    reply_text: 'one two three four five six'\n"
        "    stream_chunk_chars: 4\n    chunk_delay_s: 0.15\n"
    )
    port = _free_port()
    env = {**os.environ, "BARTIZAN_HOME": str(tmp_path / "home")}
    cmd = [
        sys.executable,
        "-m",
        "bartizan.cli.main",
        "serve",
        "--upstream",
        "demo",
        "--port",
        str(port),
        "--demo-script",
        str(script),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/readyz", proc)
        client = OpenAI(base_url=f"{base}/v1", api_key="demo", max_retries=0)
        out = client.chat.completions.create(
            model="demo-echo", messages=[{"role": "user", "content": "mail jo@example.com"}]
        )
        assert out.choices[0].message.content == "user: mail jo@example.com"
        # a slow stream is in flight when SIGTERM arrives: it must complete, not be cut
        pieces: list[str] = []

        def consume() -> None:
            stream = client.chat.completions.create(
                model="demo-echo", stream=True, messages=[{"role": "user", "content": "slow"}]
            )
            pieces.extend(c.choices[0].delta.content or "" for c in stream if c.choices)

        reader = threading.Thread(target=consume)
        reader.start()
        time.sleep(0.4)
        proc.send_signal(signal.SIGTERM)
        reader.join(20)
        assert "".join(pieces) == "one two three four five six"
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught
        assert proc.wait(20) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs = proc.stderr.read().decode() if proc.stderr else ""
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(r.get("msg") == "decision" and r.get("verdict") == "redact" for r in records)
    assert "jo@example.com" not in logs
    home = tmp_path / "home"
    store = AuditStore(f"sqlite:///{home / 'audit.db'}")
    report = store.verify()
    assert report.ok and report.rows >= 4  # both requests, input and output: the queue was drained at shutdown
    store.close()
    assert "decision" in (home / "logs" / "gateway.log").read_text()
    verify = subprocess.run(
        [sys.executable, "-m", "bartizan.cli.main", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_serve_demo_mode_keys_and_minting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BARTIZAN_HOME", str(tmp_path))
    # a real upstream and no key: refused
    assert main(["serve", "--upstream", "http://127.0.0.1:9/v1", "--check"]) == 4
    assert "no API keys" in capsys.readouterr().err
    # the demo upstream and no key: demo mode, loopback only, key "demo"
    everywhere = "0.0.0.0"  # noqa: S104 - demo mode must refuse to bind it
    assert main(["serve", "--upstream", "demo", "--host", everywhere, "--check"]) == 0
    out = capsys.readouterr().out
    assert "binding 127.0.0.1" in out and "'demo'" in out
    # a minted key is stored hashed in the home directory and then required
    assert main(["serve", "--new-key", "acme"]) == 0
    out = capsys.readouterr().out
    key = out.split("store it now): ")[1].split()[0]
    stored = (tmp_path / "keys.yaml").read_text()
    assert key.startswith("bzk_") and key not in stored and "tenant: acme" in stored
    assert main(["serve", "--new-key", "acme"]) == 2  # the same key id twice
    capsys.readouterr()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("tenants:\n  default: {}\n  acme: {}\n")
    assert main(["serve", "--config", str(cfg), "--check"]) == 0
    assert "1 key(s)" in capsys.readouterr().out
