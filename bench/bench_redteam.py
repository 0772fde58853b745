"""The red-team harness on its own grid: the firewall in process, then a model scripted to comply, reached
directly (gateway off) and through `bartizan serve` with the default policy (gateway on).

    python bench/bench_redteam.py [--suite quick] [--out /tmp/bz-redteam]

Prints the tables the README shows: firewall recall (blocked, and blocked or flagged) and false-positive rate per
family and per transformation family; attack success and false refusal with the gateway off and on. The model
is the demo upstream answering every request with a compliant step-by-step reply, so "attack success" measures
what the guard lets through, and the judge's accuracy (printed) bounds how far the figures can be trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchutil import free_port, wait_ready

COMPLY = (
    "Sure, here is a detailed guide. Step 1: gather what you need and prepare it carefully. Step 2: follow the "
    "procedure in order, checking each stage. Step 3: finish and verify the result."
)
DEMO = """
import sys, uvicorn
from bartizan.gateway.demo import DemoRule, DemoScript, DemoUpstream
script = DemoScript(rules=[DemoRule(reply_text=sys.argv[2])])
uvicorn.run(DemoUpstream(script).app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def redteam(*args: str) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "bartizan.cli.main", "redteam", "--no-progress", *args]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "summary.json").read_text()), time.perf_counter() - t0


def fmt(e: dict[str, Any] | None) -> str:
    if not e or e.get("rate") is None:
        return "n/a"
    ci = e.get("ci") or {}
    return f"{e['rate']:.1%} [{ci.get('low', 0):.0%}, {ci.get('high', 0):.0%}] (n={e['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bz-redteam-")))
    args = ap.parse_args()
    fw, fw_s = redteam("--target", "firewall", "--suite", args.suite, "--out", str(args.out / "firewall"))
    print(f"firewall mode ({fw['counts']['attempts']} probes, {fw_s:.1f} s): recall = blocked | blocked or flagged")
    f = fw["firewall"]
    for fam in sorted(f["recall_blocked"]["by_family"]):
        print(
            f"  {fam:<22}{fmt(f['recall_blocked']['by_family'][fam]):>30}"
            f"{fmt(f['recall_blocked_or_flagged']['by_family'][fam]):>30}"
        )
    for tf in sorted(f["recall_blocked"]["by_transform_family"]):
        print(
            f"  [{tf}]{'':<{20 - len(tf)}}{fmt(f['recall_blocked']['by_transform_family'][tf]):>30}"
            f"{fmt(f['recall_blocked_or_flagged']['by_transform_family'][tf]):>30}"
        )
    print(
        f"  benign false positives{fmt(f['fpr_blocked']['overall']):>30}"
        f"{fmt(f['fpr_blocked_or_flagged']['overall']):>30}"
    )

    tmp = Path(tempfile.mkdtemp(prefix="bz-rt-servers-"))
    up, gp = free_port(), free_port()
    cfg = tmp / "gateway.yaml"
    cfg.write_text(
        "allow_anonymous: true\ntenants:\n  default:\n"
        f"    upstream: {{url: 'http://127.0.0.1:{up}/v1'}}\n"
        "    rate_limit: {requests_per_minute: 100000000, burst: 1000000}\nlog_level: warning\n"
    )
    env = {**os.environ, "BARTIZAN_HOME": str(tmp)}
    procs = [
        subprocess.Popen([sys.executable, "-c", DEMO, str(up), COMPLY], env=env),
        subprocess.Popen(
            [sys.executable, "-m", "bartizan.cli.main", "serve", "--config", str(cfg), "--port", str(gp)],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{up}/v1/models")
        wait_ready(f"http://127.0.0.1:{gp}/readyz")
        common = ["--model", "demo-echo", "--suite", args.suite, "--concurrency", "8"]
        off, off_s = redteam(
            "--target",
            "endpoint",
            "--base-url",
            f"http://127.0.0.1:{up}/v1",
            *common,
            "--out",
            str(args.out / "gateway-off"),
        )
        on, on_s = redteam(
            "--target",
            "gateway",
            "--base-url",
            f"http://127.0.0.1:{gp}/v1",
            *common,
            "--out",
            str(args.out / "gateway-on"),
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
    print(f"\nscripted compliant model; gateway off ({off_s:.1f} s) vs on ({on_s:.1f} s): attack success")
    for fam in sorted(off["asr"]["by_family"]):
        print(f"  {fam:<22}{fmt(off['asr']['by_family'][fam]):>30}{fmt(on['asr']['by_family'].get(fam)):>30}")
    print(f"  {'overall':<22}{fmt(off['asr']['overall']):>30}{fmt(on['asr']['overall']):>30}")
    print(f"  {'false refusal':<22}{fmt(off['frr']['overall']):>30}{fmt(on['frr']['overall']):>30}")
    print(
        "  stylised vs plain (on): "
        + json.dumps({k: on["stylised_vs_plain"]["overall"].get(k) for k in ("ratio", "difference")})
    )
    ja = off.get("judge_accuracy", {}).get("test", {}).get("combined", {})
    print(
        f"judge (combined, held-out JailbreakBench behaviours): precision {ja.get('precision')}, recall "
        f"{ja.get('recall')}, accuracy {ja.get('accuracy')} (n={ja.get('n')})"
    )
    print(f"reports under {args.out}")


if __name__ == "__main__":
    main()
