"""What the gateway adds: latency of a request and time to first token, through bartizan vs straight to the model.

Both servers run as separate processes on loopback: the demo upstream (an OpenAI-compatible echo model, with a
scripted streamed answer paced like a real model) and `bartizan serve` in front of it with the default policy
and the SQLite audit trail. The client sends the same requests to each, one at a time, with keep-alive.

    python bench/bench_gateway.py [--n 200] [--streams 30] [--holdback 64]

Rows: plain chat completion with a 1,000-character prompt (p50/p99 ms), and a streamed 600-character answer sent
in 4-character chunks every 5 ms (time to first token and to the last chunk). The difference is the gateway's
cost: the input scan, the proxy hop, the output scan and, for streams, the hold-back window (by default 64
characters must be scanned before the first one is released, so at 4 characters per 5 ms the window alone
costs about 80 ms of time to first token).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchutil import free_port, wait_ready

DEMO = """
import sys, uvicorn
from bartizan.gateway.demo import DemoScript, DemoUpstream
script = DemoScript.load(sys.argv[2])
uvicorn.run(DemoUpstream(script).app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
ANSWER = ("The quarterly report shows steady growth in every region, with costs held flat. " * 8)[:600]
PROMPT = ("Please summarise the following meeting notes for the team and list the action items. " * 13)[:1000]


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def plain(client: httpx.Client, base: str, n: int) -> list[float]:
    body = {"model": "demo-echo", "messages": [{"role": "user", "content": PROMPT}]}
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.post(f"{base}/chat/completions", json=body)
        r.raise_for_status()
        out.append((time.perf_counter() - t) * 1000)
    return out


def streamed(client: httpx.Client, base: str, n: int) -> tuple[list[float], list[float], str]:
    body = {"model": "demo-echo", "stream": True, "messages": [{"role": "user", "content": "report please"}]}
    ttft, total, text = [], [], ""
    for _ in range(n):
        t = time.perf_counter()
        first, pieces = None, []
        with client.stream("POST", f"{base}/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                delta = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")
                if delta:
                    first = first or time.perf_counter()
                    pieces.append(delta)
        ttft.append(((first or time.perf_counter()) - t) * 1000)
        total.append((time.perf_counter() - t) * 1000)
        text = "".join(pieces)
    return ttft, total, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--streams", type=int, default=30)
    ap.add_argument("--holdback", type=int, default=64, help="the gateway's stream hold-back window (characters)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bz-bench-gw-"))
    script = tmp / "demo.yaml"
    script.write_text(
        "rules:\n  - when_contains: report\n"
        f"    reply_text: {json.dumps(ANSWER)}\n    stream_chunk_chars: 4\n    chunk_delay_s: 0.005\n"
    )
    up_port, gw_port = free_port(), free_port()
    config = tmp / "gateway.yaml"
    config.write_text(
        "allow_anonymous: true\ntenants:\n  default:\n"
        f"    upstream: {{url: 'http://127.0.0.1:{up_port}/v1'}}\n"
        "    rate_limit: {requests_per_minute: 1000000, burst: 100000}\n"
        f"stream: {{holdback_chars: {args.holdback}}}\n"
    )
    env = {**os.environ, "BARTIZAN_AUDIT_URL": f"sqlite:///{tmp / 'audit.db'}"}
    procs = [
        subprocess.Popen([sys.executable, "-c", DEMO, str(up_port), str(script)], env=env),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bartizan.cli.main",
                "serve",
                "--config",
                str(config),
                "--port",
                str(gw_port),
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        direct, gateway = f"http://127.0.0.1:{up_port}/v1", f"http://127.0.0.1:{gw_port}/v1"
        wait_ready(f"{direct}/models")
        wait_ready(f"http://127.0.0.1:{gw_port}/readyz")
        with httpx.Client(timeout=30, headers={"authorization": "Bearer bench"}) as client:
            for base in (direct, gateway):  # warm both paths
                plain(client, base, 5)
                streamed(client, base, 2)
            rows = {}
            for name, base in (("direct to the model", direct), ("through bartizan", gateway)):
                p = plain(client, base, args.n)
                ttft, total, text = streamed(client, base, args.streams)
                assert text == ANSWER, "the streamed answer changed on the way"
                rows[name] = (p, ttft, total)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(20)
    print(
        f"gateway overhead, {args.n} plain requests (1,000-char prompt) and {args.streams} streams (600 chars, "
        f"4 chars / 5 ms), hold-back {args.holdback} chars; loopback, one client, Python {sys.version.split()[0]}"
    )
    print(f"{'':24}{'plain p50':>11}{'plain p99':>11}{'TTFT p50':>10}{'TTFT p99':>10}{'stream p50':>12}")
    for name, (p, ttft, total) in rows.items():
        print(
            f"{name:24}{pct(p, 0.5):9.2f}ms{pct(p, 0.99):9.2f}ms{pct(ttft, 0.5):8.1f}ms{pct(ttft, 0.99):8.1f}ms"
            f"{statistics.median(total):10.1f}ms"
        )
    (dp, dt, dtot), (gp, gt, gtot) = rows["direct to the model"], rows["through bartizan"]
    print(
        f"added by bartizan: plain p50 +{pct(gp, 0.5) - pct(dp, 0.5):.2f} ms (x{pct(gp, 0.5) / pct(dp, 0.5):.2f}), "
        f"TTFT p50 +{pct(gt, 0.5) - pct(dt, 0.5):.1f} ms, "
        f"whole stream p50 +{statistics.median(gtot) - statistics.median(dtot):.1f} ms"
    )


if __name__ == "__main__":
    main()
