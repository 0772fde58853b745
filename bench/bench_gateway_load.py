"""The gateway under concurrent load: added latency and throughput vs the same upstream called directly, and
resident memory over a long run.

    python bench/bench_gateway_load.py [--concurrency 1,16,64] [--seconds 10] [--rate 200] [--soak 100000]

Both servers run as separate processes on loopback (the demo upstream, and `bartizan serve` with the default
policy and the SQLite audit trail in front of it); one asyncio client process drives them with small
non-streaming chat requests (a 40-character question, echoed back) from C concurrent connections for the given
time, first straight to the upstream, then through the gateway: back to back (closed loop: throughput, and
latency at saturation), then paced at `--rate` requests/s in all (open loop: the latency the gateway adds when
it is not the bottleneck). On a two-core machine the client, the gateway
and the upstream share the cores, as they would on a small host. `--soak N` then sends N more requests through
the gateway (concurrency 16) and samples its resident memory every 10% of the way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from benchutil import free_port, wait_ready

DEMO = """
import sys, uvicorn
from bartizan.gateway.demo import DemoUpstream
uvicorn.run(DemoUpstream().app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""
QUESTION = "What is the capital city of France?"
BODY = {"model": "demo-echo", "messages": [{"role": "user", "content": QUESTION}]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(
    base: str, concurrency: int, seconds: float | None, total: int | None, rate: float = 0.0
) -> tuple[list[float], float]:
    """Send requests from `concurrency` workers until `seconds` pass or `total` requests are done; with `rate`
    (requests/s, all workers together) each worker paces itself (open loop), else it sends back to back."""
    lat: list[float] = []
    sent = 0
    stop_at = time.perf_counter() + seconds if seconds else None
    # aiohttp, not httpx: httpx's pool costs O(connections) per request and made the client the bottleneck at 64
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"authorization": "Bearer bench"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as c:

        async def worker(i: int) -> None:
            nonlocal sent
            gap = concurrency / rate if rate else 0.0
            next_at = time.perf_counter() + gap * i / concurrency
            while (stop_at is None or time.perf_counter() < stop_at) and (total is None or sent < total):
                if gap:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += gap
                sent += 1
                t = time.perf_counter()
                # a different question each time: the gateway caches scans of repeated texts (chat clients
                # resend the conversation), and the benchmark must not measure that cache
                body = {**BODY, "messages": [{"role": "user", "content": f"{QUESTION} (case {sent})"}]}
                async with c.post(f"{base}/chat/completions", json=body) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"{base}: HTTP {r.status}")
                lat.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return lat, time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--soak", type=int, default=0, help="requests for the memory run (0: skip)")
    ap.add_argument("--rate", type=float, default=200.0, help="offered load (req/s) of the paced latency rows")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bz-bench-load-"))
    up_port, gw_port = free_port(), free_port()
    config = tmp / "gateway.yaml"
    config.write_text(
        "allow_anonymous: true\ntenants:\n  default:\n"
        f"    upstream: {{url: 'http://127.0.0.1:{up_port}/v1'}}\n"
        "    rate_limit: {requests_per_minute: 100000000, burst: 1000000}\n"
        "log_level: warning\n"
    )
    env = {**os.environ, "BARTIZAN_HOME": str(tmp)}
    upstream = subprocess.Popen([sys.executable, "-c", DEMO, str(up_port)], env=env)
    gateway = subprocess.Popen(
        [sys.executable, "-m", "bartizan.cli.main", "serve", "--config", str(config), "--port", str(gw_port)],
        env=env,
        stderr=open(tmp / "gateway.err", "w"),
    )
    direct, through = f"http://127.0.0.1:{up_port}/v1", f"http://127.0.0.1:{gw_port}/v1"
    print(f"servers: upstream {direct}, gateway {through}; gateway log {tmp / 'gateway.err'}", file=sys.stderr)
    results = []
    try:
        wait_ready(f"{direct}/models")
        wait_ready(f"http://127.0.0.1:{gw_port}/readyz")
        asyncio.run(drive(direct, 4, 2, None))  # warm up both paths
        asyncio.run(drive(through, 4, 2, None))
        for c in (int(x) for x in args.concurrency.split(",")):
            d, d_s = asyncio.run(drive(direct, c, args.seconds, None))
            g, g_s = asyncio.run(drive(through, c, args.seconds, None))
            results.append((c, d, d_s, g, g_s))
        paced = []
        for c in (int(x) for x in args.concurrency.split(",")):
            d, _ = asyncio.run(drive(direct, c, args.seconds, None, args.rate))
            g, _ = asyncio.run(drive(through, c, args.seconds, None, args.rate))
            paced.append((c, d, g))
        soak = []
        if args.soak:
            step = max(1, args.soak // 10)
            soak.append((0, rss_mb(gateway.pid)))
            for done in range(step, args.soak + 1, step):
                asyncio.run(drive(through, 16, None, step))
                soak.append((done, rss_mb(gateway.pid)))
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(30)
    print(
        f"small chat requests (40-char question, echoed), default policy, SQLite audit, {args.seconds:g} s per row; "
        f"loopback, {os.cpu_count()} cores shared by client, gateway and upstream; Python {sys.version.split()[0]}"
    )
    print(
        f"{'clients':>8}{'direct p50':>12}{'p99':>9}{'req/s':>8}{'bartizan p50':>14}{'p99':>9}{'req/s':>8}"
        f"{'added p50':>11}{'added p99':>11}"
    )
    for c, d, d_s, g, g_s in results:
        print(
            f"{c:>8}{pct(d, 0.5):10.2f}ms{pct(d, 0.99):7.2f}ms{len(d) / d_s:8.0f}{pct(g, 0.5):12.2f}ms"
            f"{pct(g, 0.99):7.2f}ms{len(g) / g_s:8.0f}{pct(g, 0.5) - pct(d, 0.5):9.2f}ms"
            f"{pct(g, 0.99) - pct(d, 0.99):9.2f}ms"
        )
    print(f"paced at {args.rate:g} req/s in all (open loop): added latency = through bartizan - direct")
    print(f"{'clients':>8}{'direct p50':>12}{'p99':>9}{'bartizan p50':>14}{'p99':>9}{'added p50':>11}{'added p99':>11}")
    for c, d, g in paced:
        print(
            f"{c:>8}{pct(d, 0.5):10.2f}ms{pct(d, 0.99):7.2f}ms{pct(g, 0.5):12.2f}ms{pct(g, 0.99):7.2f}ms"
            f"{pct(g, 0.5) - pct(d, 0.5):9.2f}ms{pct(g, 0.99) - pct(d, 0.99):9.2f}ms"
        )
    if soak:
        print("gateway resident memory (MB) after N requests: " + ", ".join(f"{n}: {m:.0f}" for n, m in soak))
    print(
        json.dumps(
            {
                "rows": [
                    {"clients": c, "direct_rps": len(d) / d_s, "gateway_rps": len(g) / g_s}
                    for c, d, d_s, g, g_s in results
                ]
            }
        )
    )


if __name__ == "__main__":
    main()
