"""`bartizan redteam` end to end: firewall mode on the quick suite, a model endpoint over loopback HTTP,
resume after a kill, thresholds, and every report file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bartizan.cli.main import main
from bartizan.gateway.demo import DemoRule, DemoScript, DemoUpstream
from bartizan.redteam.store import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from serve_util import serve_app

FILES = ("attempts.jsonl", "summary.json", "report.html", "results.sarif", "junit.xml")


def test_firewall_quick_suite_writes_every_report(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    assert main(["redteam", "--target", "firewall", "--suite", "quick", "--out", str(tmp_path), "--no-progress"]) == 0
    assert time.perf_counter() - t0 < 120
    assert all((tmp_path / f).is_file() for f in FILES)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "firewall" and summary["firewall"]["recall_blocked"]["by_family"]
    assert summary["judge_accuracy"]["test"]["combined"]["n"] > 0
    sarif = json.loads((tmp_path / "results.sarif").read_text())
    tags = {t for rule in sarif["runs"][0]["tool"]["driver"]["rules"] for t in rule["properties"]["tags"]}
    assert any(t.startswith("AML.T") for t in tags) and any(t.startswith("LLM01") for t in tags)
    ET.fromstring((tmp_path / "junit.xml").read_bytes())  # noqa: S314 - our own output
    lines = (tmp_path / "attempts.jsonl").read_text().splitlines()
    assert len(lines) == summary["counts"]["attempts"] > 500
    # a threshold the run misses fails the command with its own exit code
    rc = main(
        [
            "redteam",
            "--target",
            "firewall",
            "--suite",
            "quick",
            "--out",
            str(tmp_path / "again"),
            "--no-progress",
            "--fail-under",
            "firewall_recall_min=0.99",
        ]
    )
    assert rc == 7


def endpoint_args(base: str, suite: str, out: Path, *extra: str) -> list[str]:
    """`bartizan redteam` arguments for the demo upstream at `base` as an endpoint target."""
    return [
        "redteam",
        "--target",
        "endpoint",
        "--base-url",
        f"{base}/v1",
        "--model",
        "demo-echo",
        "--suite",
        suite,
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_endpoint_target_judges_and_reports(tmp_path: Path) -> None:
    script = DemoScript(
        rules=[
            DemoRule(when_contains="zzz-never", reply_text="x"),
            DemoRule(reply_text="I can't help with that request."),
        ]
    )
    with serve_app(DemoUpstream(script).app()) as base:
        suite = tmp_path / "suite.yaml"
        suite.write_text(
            "name: tiny\nseed: 1\nlimits: {harmful: 4, benign: 4, jailbreak_template: 0, prompt_injection: 0, "
            "sysprompt_extraction: 0, interpreter_abuse: 0}\n"
        )
        rc = main(endpoint_args(base, str(suite), tmp_path / "o", "--transforms", "plain,verse_ballad", "--offline"))
    assert rc == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["asr"]["overall"]["rate"] == 0.0  # the model refuses everything...
    assert summary["frr"]["overall"]["rate"] == 1.0  # ...including the benign twins: every one a false refusal


def test_a_killed_run_resumes_without_repeating_probes(tmp_path: Path) -> None:
    script = DemoScript(rules=[DemoRule(reply_text="Sure. Step 1: do it. Step 2: done.", chunk_delay_s=0.0)])
    with serve_app(DemoUpstream(script).app()) as base:
        cmd = [
            sys.executable,
            "-m",
            "bartizan.cli.main",
            *endpoint_args(base, "quick", tmp_path, "--concurrency", "2", "--rate", "60"),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (tmp_path / "run.sqlite").exists():
                with RunStore(tmp_path / "run.sqlite") as store:
                    runs = store.runs()
                    if runs and len(store.done_probe_ids(runs[0].run_id)) > 20:
                        break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with RunStore(tmp_path / "run.sqlite") as store:
            run_id = store.runs()[0].run_id
            before = len(store.done_probe_ids(run_id))
        assert 0 < before < 980
        rc = main(endpoint_args(base, "quick", tmp_path, "--resume", "--concurrency", "8"))
    assert rc == 0
    with RunStore(tmp_path / "run.sqlite") as store:
        attempts = store.attempts(run_id)
    ids = [a.probe_id for a in attempts]
    assert len(ids) == len(set(ids)) == json.loads((tmp_path / "summary.json").read_text())["counts"]["attempts"]


def test_bad_suite_files_name_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\nsources:\n  include: [no_such_source]\n")
    assert main(["redteam", "--target", "firewall", "--suite", str(suite), "--out", str(tmp_path / "o")]) == 4
    assert "bad.yaml:3" in capsys.readouterr().err


def test_attacker_model_rewrites_with_a_meaning_check(tmp_path: Path) -> None:
    from bartizan.redteam.attacker import attacker_transforms
    from bartizan.redteam.grid import build_probes
    from bartizan.redteam.suites import load_suite

    cases = [c for c in load_suite("quick") if c.family == "harmful"][:3]
    echo = attacker_transforms(lambda meta, text: f"In rhyme I ask: {text}", ["verse"])
    probes = build_probes(cases, ("plain", *echo), extra=echo)
    rewritten = [p for p in probes if p.transform == "model_verse"]
    assert len(rewritten) == 3 and all(p.messages[-1]["content"].startswith("In rhyme I ask:") for p in rewritten)
    # an attacker that refuses loses the request: the template rewrite of the same style is used instead
    from bartizan.redteam.transforms import ModelRewrite, default_registry

    refusing = ModelRewrite(
        "model_refuses", "meta", lambda m, t: "I won't do that.", fallback=default_registry().get("verse_free")
    )
    out = refusing.apply(cases[0].prompt, __import__("random").Random(0))
    assert out.meta["kept_meaning"] == "false" and out.meta["fallback"] == "verse_free"
    # and through the command line, against a real loopback attacker model (the demo echo keeps the words)
    with serve_app(DemoUpstream().app()) as base:
        suite = tmp_path / "s.yaml"
        suite.write_text(
            "name: t\nlimits: {harmful: 2, benign: 2, jailbreak_template: 0, prompt_injection: 0, "
            "sysprompt_extraction: 0, interpreter_abuse: 0}\n"
        )
        rc = main(
            [
                "redteam",
                "--target",
                "firewall",
                "--suite",
                str(suite),
                "--transforms",
                "plain",
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
                "--attacker-base-url",
                f"{base}/v1",
                "--attacker-model",
                "demo-echo",
                "--attacker-styles",
                "narrative",
            ]
        )
    assert rc == 0
    rows = [json.loads(line) for line in (tmp_path / "o" / "attempts.jsonl").read_text().splitlines()]
    assert {r["transform"] for r in rows} == {"plain", "model_narrative"}
    from bartizan.redteam.transforms import ALL

    assert set(default_registry().names()) == set(ALL)  # nothing leaked into the shared registry
