"""`bartizan redteam`: attacks, stylised rewrites and benign twins on one grid, against a model endpoint, the
bartizan gateway, or the firewall in process; judged, measured and reported.

    bartizan redteam --target firewall [--policy FILE] --suite quick --out DIR
    bartizan redteam --target endpoint --base-url URL --model M --api-key-env VAR --suite quick --out DIR
    bartizan redteam ... --resume          # continue the run stored in DIR/run.sqlite after a crash or a kill

Writes DIR/attempts.jsonl, DIR/summary.json, DIR/report.html, DIR/results.sarif, DIR/junit.xml.
Exit codes: 0 done (and every --fail-under threshold met), 7 a --fail-under threshold missed, 2 usage,
3 unreadable suite or previous summary, 4 invalid suite or policy, 1 internal error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

from bartizan.cli.exitcodes import INPUT_ERROR, OK, POLICY_ERROR, USAGE_ERROR

FAIL_UNDER = 7


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("redteam", help="run attack suites against a model, the gateway or the firewall")
    p.add_argument("--target", choices=["firewall", "endpoint", "gateway"], required=True)
    p.add_argument("--policy", help="firewall policy for --target firewall (default: built-in)")
    p.add_argument("--base-url", help="OpenAI-compatible base URL (…/v1) for endpoint/gateway targets")
    p.add_argument("--model", help="model name for endpoint/gateway targets")
    p.add_argument("--api-key-env", help="environment variable holding the target's API key")
    p.add_argument("--suite", default="quick", help="quick, full, or a suite YAML file")
    p.add_argument("--transforms", default=None, help="comma-separated transformations (default: the quick set)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--resume", action="store_true", help="continue the newest run stored in OUT")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--rate", type=float, default=None, help="requests per second, all workers together")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge-base-url", help="OpenAI-compatible judge model for per-case judge questions")
    p.add_argument("--judge-model")
    p.add_argument("--judge-api-key-env")
    p.add_argument("--attacker-base-url", help="OpenAI-compatible attacker model that rewrites requests")
    p.add_argument("--attacker-model")
    p.add_argument("--attacker-api-key-env")
    p.add_argument("--attacker-styles", default="verse,narrative", help="styles the attacker model rewrites into")
    p.add_argument("--offline", action="store_true", help="refuse every network destination but target and judge")
    p.add_argument("--previous", help="summary.json of an earlier run, for the diff")
    p.add_argument("--fail-under", default="", help="thresholds, e.g. asr=0.1,frr=0.05,firewall_recall_min=0.8")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def _thresholds(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = item.partition("=")
        out[key.strip()] = float(value)
    return out


def run(args: argparse.Namespace) -> int:
    from bartizan.redteam.grid import QUICK_TRANSFORMS, build_probes
    from bartizan.redteam.suites import load_suite
    from bartizan.schema import SchemaError

    if args.target != "firewall" and not (args.base_url and args.model):
        print("bartizan redteam: --base-url and --model are required for endpoint/gateway targets", file=sys.stderr)
        return USAGE_ERROR
    try:
        thresholds = _thresholds(args.fail_under)
        cases = load_suite(args.suite)
        transforms = tuple(args.transforms.split(",")) if args.transforms else QUICK_TRANSFORMS
        extra: dict[str, Any] = {}
        if args.attacker_base_url and args.attacker_model:
            from bartizan.redteam.attacker import attacker_transforms, openai_rewriter

            key = os.environ.get(args.attacker_api_key_env) if args.attacker_api_key_env else None
            rewrite = openai_rewriter(args.attacker_base_url, args.attacker_model, key)
            extra = attacker_transforms(rewrite, args.attacker_styles.split(","))
            transforms += tuple(extra)
        probes = build_probes(cases, transforms, seed=args.seed, extra=extra)
        previous = json.loads(Path(args.previous).read_text("utf-8")) if args.previous else None
    except SchemaError as exc:
        print(f"bartizan redteam: invalid suite:\n{exc}", file=sys.stderr)
        return POLICY_ERROR
    except (KeyError, ValueError, OSError) as exc:
        print(f"bartizan redteam: {exc}", file=sys.stderr)
        return INPUT_ERROR
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary, failures = asyncio.run(_run(args, probes, out, previous, thresholds))
    asr = summary["asr"]["overall"]
    frr = summary["frr"]["overall"]
    print(
        f"{len(probes)} probes; attack success {asr['rate']:.1%} (n={asr['n']}), false refusal "
        f"{(frr['rate'] or 0):.1%} (n={frr['n']}); reports in {out}"
    )
    for f in failures:
        print(f"FAIL-UNDER: {f}", file=sys.stderr)
    return FAIL_UNDER if failures else OK


async def _run(
    args: argparse.Namespace,
    probes: list[Any],
    out: Path,
    previous: dict[str, Any] | None,
    thresholds: dict[str, float],
) -> tuple[dict[str, Any], list[str]]:
    from bartizan.redteam.judges import judge_accuracy
    from bartizan.redteam.judging import model_judge
    from bartizan.redteam.metrics import summarise
    from bartizan.redteam.offline import OfflineGuard
    from bartizan.redteam.reports import check_fail_under, write_reports
    from bartizan.redteam.runner import firewall_judge, run
    from bartizan.redteam.store import RunStore
    from bartizan.redteam.targets import EndpointTarget, FirewallTarget

    config = {
        "target": args.target,
        "suite": args.suite,
        "transforms": args.transforms,
        "seed": args.seed,
        "model": args.model,
        "base_url": args.base_url,
        "policy": args.policy,
    }
    store = RunStore(out / "run.sqlite")
    runs = store.runs()
    run_id = runs[0].run_id if (args.resume and runs) else store.start_run(config)
    progress = None if args.no_progress or not sys.stderr.isatty() else _progress
    mode: Literal["model", "firewall"] = "firewall" if args.target == "firewall" else "model"
    try:
        if args.target == "firewall":
            from bartizan.pipeline import Firewall

            target: Any = FirewallTarget(Firewall(args.policy))
            result = await run(
                probes, target, store, run_id, firewall_judge, concurrency=args.concurrency, progress=progress
            )
        else:
            hosts = [args.base_url] + [u for u in (args.judge_base_url, args.attacker_base_url) if u]
            guard = OfflineGuard(hosts) if args.offline else None
            key = os.environ.get(args.api_key_env) if args.api_key_env else None
            ask = _judge_client(args)
            async with EndpointTarget(
                args.base_url, args.model, key, timeout_s=args.timeout, retries=args.retries, guard=guard
            ) as target:
                with guard.active() if guard is not None else contextlib.nullcontext():
                    result = await run(
                        probes,
                        target,
                        store,
                        run_id,
                        model_judge(ask),
                        concurrency=args.concurrency,
                        rate_per_s=args.rate,
                        progress=progress,
                    )
        attempts = store.attempts(result.run_id)
    finally:
        store.close()
    summary = summarise(attempts, judge_accuracy=judge_accuracy(), mode=mode, seed=args.seed)
    write_reports(out, attempts, summary, previous=previous)
    return summary, check_fail_under(summary, thresholds) if thresholds else []


def _judge_client(args: argparse.Namespace) -> Any:
    """A blocking `ask(prompt) -> str` on the judge endpoint (the runner calls judges in a worker thread)."""
    if not (args.judge_base_url and args.judge_model):
        return None
    import httpx

    key = os.environ.get(args.judge_api_key_env) if args.judge_api_key_env else None
    headers = {"authorization": f"Bearer {key}"} if key else {}
    client = httpx.Client(base_url=args.judge_base_url.rstrip("/"), headers=headers, timeout=60)

    def ask(prompt: str) -> str:
        body = {"model": args.judge_model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
        r = client.post("/chat/completions", json=body)
        r.raise_for_status()
        return str(r.json()["choices"][0]["message"]["content"])

    return ask


def _progress(done: int, total: int) -> None:
    print(f"\r{done}/{total} probes", end="" if done < total else "\n", file=sys.stderr, flush=True)
