"""A2AS BASIC against injected tool results: agent scenarios through the gateway, with BASIC off and on.

    python bench/bench_a2as.py [--json out.json]

A mail-assistant agent (the official openai client in a loop that runs whatever tool calls come back) talks to
`bartizan serve` in front of the demo upstream, which is scripted to *obey whatever it read last*: after an
e-mail, web page or document carrying an injection, it proposes the injected call (a tool the certificate does
not grant, a mail to an outside address, a fetch of an attacker URL). Scenarios: bench/a2as_scenarios.py (46
CyberSecEval indirect-injection documents plus hand-written BIPIA-style ones; 18 benign tasks).

Four gateway configurations, same scenarios: no protection (a firewall policy with nothing but the size
limit), firewall only (the default policy), BASIC only, and firewall + BASIC (certificate signed here with a
fresh key and pinned, codified policy bench/a2as/policies.yaml decided by Cedar, keyed boundaries, defense and
policy blocks). Reported per configuration: attack success (the injected call was executed), benign task
completion (every expected call ran and nothing was blocked), prompt tokens added by BASIC (whitespace words, as
the demo model counts them, and characters / 4), and the time the A2AS stages took per request.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import uvicorn
from a2as_scenarios import Scenario, demo_script, scenarios
from openai import OpenAI

from bartizan.a2as.certificates import keygen, load_certificate, sign
from bartizan.gateway.app import Gateway
from bartizan.gateway.config import GatewayConfig
from bartizan.gateway.demo import DemoScript, DemoUpstream
from bartizan.gateway.keys import hash_key

HERE = Path(__file__).resolve().parent
KEY = "bzk_bench_a2as_key_000000000000000000000000000"
TOOL_NAMES = [
    "email.read_inbox",
    "email.search",
    "email.send_message",
    "email.delete_all",
    "web.fetch",
    "docs.read",
    "shell.exec",
    "files.upload",
]
TOOLS = [
    {"type": "function", "function": {"name": n, "description": f"{n} tool", "parameters": {"type": "object"}}}
    for n in TOOL_NAMES
]
MINIMAL_POLICY = 'version: 1\nname: nothing\ndetectors:\n  size:\n    roles: "*"\n    action: block\n'


def serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def run_agent(client: OpenAI, s: Scenario) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """The agent loop: returns the calls it executed and how the run ended (done / blocked)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": s.task}]
    executed: list[tuple[str, dict[str, Any]]] = []
    read_done = False
    for _turn in range(5):
        try:
            resp = client.chat.completions.create(model="demo-echo", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
        except openai.BadRequestError:
            return executed, "blocked"
        msg = resp.choices[0].message
        if not msg.tool_calls:
            return executed, "done"
        messages.append(msg.model_dump(exclude_none=True))
        for call in msg.tool_calls:
            name = call.function.name  # type: ignore[union-attr]
            args = json.loads(call.function.arguments or "{}")  # type: ignore[union-attr]
            executed.append((name, args))
            if name == s.read_tool and not read_done:
                output, read_done = s.tool_output, True
            else:
                output = f"{name}: ok"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
    return executed, "turn limit"


def words(body: dict[str, Any]) -> tuple[int, int]:
    text = " ".join(str(m.get("content") or "") for m in body.get("messages", []) if isinstance(m, dict))
    return len(text.split()), len(text)


def run_config(name: str, tenant: dict[str, Any], items: list[Scenario], tmp: Path) -> dict[str, Any]:
    demo = DemoUpstream(DemoScript.model_validate(demo_script(items)))
    cfg = GatewayConfig.model_validate(
        {
            "tenants": {
                "default": {
                    "upstream": {"url": "demo"},
                    "rate_limit": {"requests_per_minute": 1e7, "burst": 100000},
                    **tenant,
                }
            },
            "keys": [{"id": "bench", "sha256": hash_key(KEY), "tenant": "default"}],
            "audit": {"url": f"sqlite:///{tmp / (name.replace(' ', '_') + '.db')}"},
            "log_level": "warning",
        }
    )
    gw = Gateway(cfg, demo=demo)
    base, server, thread = serve(gw.app())
    client = OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=30)
    outcomes = []
    try:
        for s in items:
            executed, end = run_agent(client, s)
            hit = any(call in executed for call in s.follow_up)
            outcomes.append(
                {
                    "id": s.id,
                    "kind": s.kind,
                    "goal": s.goal,
                    "end": end,
                    "followed": hit,
                    "executed": [n for n, _ in executed],
                }
            )
    finally:
        server.should_exit = True
        thread.join(10)
    first_bodies = [b for b in demo.received if isinstance(b.get("messages"), list) and len(b["messages"]) <= 3]
    rows = gw.store.rows(limit=100000)
    a2as_ms = [r["extra"]["a2as_ms"] for r in rows if r["direction"] == "tool_call" and "a2as_ms" in r["extra"]]
    return {"outcomes": outcomes, "prompt_words": [words(b) for b in first_bodies], "a2as_ms": a2as_ms}


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bz-bench-a2as-"))
    items = scenarios()
    priv, pub = keygen(tmp / "keys")
    sign(HERE / "a2as" / "cert.yaml", priv, tmp / "cert.signed.yaml")
    issuer = pub.read_text().strip()
    minimal = tmp / "minimal.yaml"
    minimal.write_text(MINIMAL_POLICY)
    basic = {
        "certificate": str(tmp / "cert.signed.yaml"),
        "trusted_issuers": [issuer],
        "policy": str(HERE / "a2as" / "policies.yaml"),
        "agent": "mail-assistant",
    }
    configs = {
        "no protection": {"policy": str(minimal)},
        "firewall only": {},
        "BASIC only": {"policy": str(minimal), "a2as": basic},
        "firewall + BASIC": {"a2as": basic},
    }
    load_certificate(tmp / "cert.signed.yaml")  # fail early on a bad signature
    results = {name: run_config(name, tenant, items, tmp) for name, tenant in configs.items()}
    n_attack = sum(1 for s in items if s.kind == "attack")
    n_benign = len(items) - n_attack
    print(
        f"{n_attack} attack scenarios (CyberSecEval indirect + BIPIA-style), {n_benign} benign; "
        "the demo model obeys injections"
    )
    print(f"{'configuration':<20}{'attacks executed':>18}{'by goal (tool/mail/web)':>26}{'benign completed':>18}")
    summary = {}
    for name, res in results.items():
        oc = res["outcomes"]
        attacks = [o for o in oc if o["kind"] == "attack"]
        success = [o for o in attacks if o["followed"]]
        by_goal = Counter(o["goal"] for o in success)
        per_goal = "/".join(str(by_goal.get(g, 0)) for g in ("forbidden_tool", "exfil_mail", "exfil_web"))
        benign = [o for o in oc if o["kind"] == "benign"]
        done = [o for o in benign if o["followed"] and o["end"] != "blocked"]
        print(
            f"{name:<20}{len(success):>8} / {n_attack} ({len(success) / n_attack:5.1%}){per_goal:>20}"
            f"{len(done):>10} / {n_benign} ({len(done) / max(1, n_benign):4.0%})"
        )
        summary[name] = {
            "attack_success": len(success),
            "attacks": n_attack,
            "benign_completed": len(done),
            "benign": n_benign,
            "by_goal": dict(by_goal),
            "outcomes": oc,
        }
    off, on = results["firewall only"]["prompt_words"], results["firewall + BASIC"]["prompt_words"]
    if off and on:
        dw = statistics.mean(w for w, _ in on) - statistics.mean(w for w, _ in off)
        dc = statistics.mean(c for _, c in on) - statistics.mean(c for _, c in off)
        print(
            f"prompt added by BASIC on the first request: +{dw:.0f} words, +{dc:.0f} characters (~{dc / 4:.0f} tokens)"
        )
        summary["added_words"], summary["added_chars"] = dw, dc
    ms = results["firewall + BASIC"]["a2as_ms"]
    print(
        f"A2AS stages per request (prepare + enforce, in the gateway): p50 {pct(ms, 0.5):.3f} ms, "
        f"p99 {pct(ms, 0.99):.3f} ms"
    )
    summary["a2as_ms_p50"], summary["a2as_ms_p99"] = pct(ms, 0.5), pct(ms, 0.99)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.exit(main())
