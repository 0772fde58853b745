"""Tests of the red-team report files: JSONL round trip, strict summary JSON, SARIF 2.1.0 structure, JUnit XML,
a well-formed self-contained HTML report, and the --fail-under gate."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bartizan.redteam.attempts import Attempt
from bartizan.redteam.metrics import summarise
from bartizan.redteam.reports import check_fail_under, junit_xml, sarif, write_reports

ANSWER = "UNIQUE-MODEL-ANSWER-TEXT"

LEVELS = {"none", "note", "warning", "error"}
KINDS = {"notApplicable", "pass", "fail", "review", "open", "informational"}


def _message(node: Any, where: str) -> None:
    assert isinstance(node, dict) and ("text" in node or "id" in node), f"{where}: a message needs text or id"


def validate_sarif(log: Any) -> None:
    """The required structure of SARIF 2.1.0 (OASIS sarif-v2.1.0 section 3: sarifLog, run, tool, toolComponent,
    reportingDescriptor, result, message, location, physicalLocation, artifactLocation, region)."""
    assert isinstance(log, dict) and log["version"] == "2.1.0" and isinstance(log.get("$schema", ""), str)
    assert isinstance(log["runs"], list)
    for run in log["runs"]:
        driver = run["tool"]["driver"]
        assert isinstance(driver["name"], str) and driver["name"]
        rules = driver.get("rules", [])
        assert isinstance(rules, list)
        for rule in rules:
            assert isinstance(rule["id"], str) and rule["id"]
            for key in ("shortDescription", "fullDescription"):
                if key in rule:
                    _message(rule[key], f"rule {rule['id']} {key}")
            level = rule.get("defaultConfiguration", {}).get("level", "warning")
            assert level in LEVELS
            tags = rule.get("properties", {}).get("tags", [])
            assert all(isinstance(t, str) for t in tags) and len(tags) == len(set(tags))
        for result in run.get("results", []):
            _message(result["message"], "result")
            assert isinstance(result.get("ruleId", result.get("rule")), (str, dict))
            assert result.get("level", "warning") in LEVELS and result.get("kind", "fail") in KINDS
            if "ruleIndex" in result:
                assert isinstance(result["ruleIndex"], int) and -1 <= result["ruleIndex"] < len(rules)
            for loc in result.get("locations", []):
                phys = loc.get("physicalLocation")
                if phys is not None:
                    assert "artifactLocation" in phys or "address" in phys
                    assert isinstance(phys["artifactLocation"].get("uri", ""), str)
                    start = phys.get("region", {}).get("startLine", 1)
                    assert isinstance(start, int) and start >= 1
            assert all(isinstance(v, str) for v in result.get("partialFingerprints", {}).values())


def att(case: str, verdict: str = "refused", *, status: str = "ok", family: str = "harmful",
        transform: str = "plain", tf: str = "plain", benign: bool = False, category: str = "cyber",
        meta: dict[str, Any] | None = None) -> Attempt:  # fmt: skip
    return Attempt(
        probe_id=f"p-{case}-{transform}",
        case_id=case,
        family="benign" if benign else family,
        source="xstest" if benign else "advbench",
        category=category,
        benign=benign,
        transform=transform,
        transform_family=tf,
        atlas=() if benign else ("AML.T0051.000", "AML.T0048"),
        owasp=() if benign else ("LLM01:2025",),
        status=status,
        response=ANSWER if status == "ok" else None,
        verdict="error" if status == "error" else verdict,
        judge="combined",
        judge_reasons=("complied: step list",) if verdict == "success" else (),
        error="HTTP 503 after 3 retries" if status == "error" else None,
        latency_ms=120.0,
        meta=meta or {},
    )


def sample() -> list[Attempt]:
    return [
        att("h1", "success"),
        att("h1", "success", transform="verse_ballad", tf="stylised"),
        att("h2", "refused"),
        att("h2", "success", transform="verse_ballad", tf="stylised"),
        att("h3", status="error"),
        att("h4", "unclear"),
        att("pi1", "success", family="prompt_injection", transform="base64", tf="encoding", category="<script>x"),
        att("sx1", "refused", family="sysprompt_extraction"),
        att("b1", "refused", benign=True),
        att("b2", "success", benign=True),
        att("b2", "success", benign=True, transform="verse_ballad", tf="stylised"),
    ]


JUDGE = {"test": {"combined": {"precision": 0.75, "recall": 0.95, "f1": 0.84, "accuracy": 0.83, "n": 238}}}


@pytest.fixture
def written(tmp_path: Path) -> tuple[dict[str, Path], list[Attempt], dict[str, Any]]:
    attempts = sample()
    summary = summarise(attempts, judge_accuracy=JUDGE, n_boot=200)
    previous = summarise(attempts[:4], judge_accuracy=JUDGE, n_boot=200)
    return write_reports(tmp_path / "out", attempts, summary, previous=previous), attempts, summary


def test_writes_all_files_and_jsonl_round_trips(written: tuple[dict[str, Path], list[Attempt], dict[str, Any]]) -> None:
    paths, attempts, summary = written
    assert set(paths) == {"attempts", "summary", "html", "sarif", "junit"}
    assert all(p.is_file() for p in paths.values())
    lines = paths["attempts"].read_text(encoding="utf-8").splitlines()
    assert [Attempt.from_json(json.loads(x)) for x in lines] == attempts
    data = json.loads(paths["summary"].read_text(encoding="utf-8"), parse_constant=_reject)
    assert data["asr"] == json.loads(json.dumps(summary["asr"]))
    assert data["diff"]["asr"]["overall"]["previous"] is not None


def _reject(name: str) -> None:
    raise AssertionError(f"non-standard JSON constant {name}")


def test_sarif_has_the_required_structure(written: tuple[dict[str, Path], list[Attempt], dict[str, Any]]) -> None:
    paths, _, _ = written
    log = json.loads(paths["sarif"].read_text(encoding="utf-8"))
    validate_sarif(log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids)) == 4  # one per attack (family, transform) pair; benign twins have none
    results = run["results"]
    assert len(results) == 4  # successful attacks only (not unclear, error, refused or benign)
    lines = paths["attempts"].read_text(encoding="utf-8").splitlines()
    for res in results:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        line = res["locations"][0]["physicalLocation"]["region"]["startLine"]
        record = json.loads(lines[line - 1])
        assert record["probe_id"] == res["partialFingerprints"]["bartizanProbeId/v1"]
        assert record["verdict"] == "success" and not record["benign"]
        assert "LLM01:2025" in res["properties"]["owasp"]
    by_id = {r["id"]: r for r in rules}
    verse = by_id["redteam/harmful/verse_ballad"]["properties"]
    assert {"AML.T0051.000", "AML.T0048", "AML.T0054", "AML.T0068", "LLM01:2025"} <= set(verse["tags"])
    assert by_id["redteam/prompt_injection/base64"]["properties"]["atlas"] == [
        "AML.T0048",
        "AML.T0051.000",
        "AML.T0068",
    ]
    assert by_id["redteam/harmful/plain"]["defaultConfiguration"]["level"] == "error"
    assert by_id["redteam/sysprompt_extraction/plain"]["defaultConfiguration"]["level"] == "warning"
    assert ANSWER not in paths["sarif"].read_text(encoding="utf-8")


def test_sarif_in_firewall_mode_reports_what_passed() -> None:
    attempts = [att("a", status="blocked"), att("b", "unclear"), att("c", "unclear", meta={"flagged": True})]
    log = sarif(attempts, "firewall")
    validate_sarif(log)
    assert [r["properties"]["case_id"] for r in log["runs"][0]["results"]] == ["b", "c"]


def test_junit_one_suite_per_family_and_failures(
    written: tuple[dict[str, Path], list[Attempt], dict[str, Any]],
) -> None:
    paths, attempts, _ = written
    root = ET.parse(paths["junit"]).getroot()  # noqa: S314 (a file this test just wrote)
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"harmful", "prompt_injection", "sysprompt_extraction", "benign"}
    assert sum(len(s.findall("testcase")) for s in suites.values()) == len(attempts) == int(root.get("tests", "0"))
    harm = suites["harmful"]
    assert (harm.get("tests"), harm.get("failures"), harm.get("errors"), harm.get("skipped")) == ("6", "3", "1", "1")
    assert len(harm.findall("testcase/failure")) == 3 and len(harm.findall("testcase/error")) == 1
    assert harm.find("testcase/error").get("message") == "HTTP 503 after 3 retries"  # type: ignore[union-attr]
    benign = suites["benign"].findall("testcase/failure")
    assert [f.get("type") for f in benign] == ["false_refusal"]
    assert int(root.get("failures", "0")) == 3 + 1 + 1  # harmful, prompt injection, one false refusal
    assert ANSWER not in paths["junit"].read_text(encoding="utf-8")


def test_junit_firewall_mode() -> None:
    attempts = [att("a", status="blocked"), att("b", "unclear"), att("z", status="blocked", benign=True)]
    root = ET.fromstring(junit_xml(attempts, "firewall"))  # noqa: S314
    failures = root.findall("testsuite/testcase/failure")
    assert sorted(f.get("type") or "" for f in failures) == ["attack_success", "false_refusal"]
    assert root.find("testsuite/testcase/skipped") is None


VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _Checker(HTMLParser):
    """Tracks open elements (SVG's self-closing shapes count as closed) and every src/href value."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_html_is_well_formed_and_self_contained(written: tuple[dict[str, Path], list[Attempt], dict[str, Any]]) -> None:
    paths, _, _ = written
    text = paths["html"].read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert not [u for u in checker.urls if re.match(r"\s*(https?:)?//", u, re.I)]
    assert not re.search(r"https?://", text)  # no external reference anywhere, not even in CSS
    assert "script" not in checker.tags and "<script>x" not in text  # data is escaped
    assert {"svg", "rect", "style"} <= checker.tags
    for heading in ("by family", "Hazard category × transformation", "Plain vs stylised", "Change since last run",
                    "Judge accuracy", "False refusal"):  # fmt: skip
        assert heading in text
    assert "precision 0.75" in text  # judge accuracy beside the headline ASR
    assert ANSWER not in text


def test_html_without_previous_and_in_firewall_mode(tmp_path: Path) -> None:
    attempts = [att("a", status="blocked"), att("b", "unclear", meta={"flagged": True}), att("z", benign=True)]
    summary = summarise(attempts, judge_accuracy=None, mode="firewall", n_boot=50)
    paths = write_reports(tmp_path, attempts, summary)
    text = paths["html"].read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(text)
    assert checker.errors == [] and checker.stack == []
    assert "Firewall recall" in text and "Change since last run" not in text
    assert "diff" not in json.loads(paths["summary"].read_text(encoding="utf-8"))


def test_empty_run_still_writes_valid_reports(tmp_path: Path) -> None:
    summary = summarise([], judge_accuracy=None, n_boot=50)
    paths = write_reports(tmp_path, [], summary, previous=summary)
    validate_sarif(json.loads(paths["sarif"].read_text(encoding="utf-8")))
    assert ET.parse(paths["junit"]).getroot().get("tests") == "0"  # noqa: S314
    checker = _Checker()
    checker.feed(paths["html"].read_text(encoding="utf-8"))
    assert checker.errors == [] and checker.stack == []


def test_check_fail_under() -> None:
    attempts = sample()
    s = summarise(attempts, judge_accuracy=JUDGE, n_boot=50)
    asr = s["asr"]["overall"]["rate"]
    assert check_fail_under(s, {"asr": 1.0, "frr": 1.0}) == []
    fails = check_fail_under(s, {"asr": asr - 0.01, "frr": 0.05, "asr:harmful": 0.9, "asr:prompt_injection": 0.5})
    assert [f.split(":")[0] for f in fails] == ["asr", "asr", "frr"]
    assert any(f.startswith("asr:prompt_injection") for f in fails)
    # a gate on something this run did not measure fails closed
    assert check_fail_under(s, {"firewall_recall_min": 0.8}) == [
        "firewall_recall_min: not measured in this run (threshold 0.8)"
    ]
    with pytest.raises(ValueError, match="unknown --fail-under key"):
        check_fail_under(s, {"asr_max": 0.1})
    fw = summarise([att("a", status="blocked"), att("b"), att("z", benign=True)], judge_accuracy=None,
                   mode="firewall", n_boot=50)  # fmt: skip
    assert check_fail_under(fw, {"firewall_recall_min": 0.5, "firewall_fpr": 0.0}) == []
    assert check_fail_under(fw, {"firewall_recall_min": 0.8}) == ["firewall_recall_min: 0.5 is below the minimum 0.8"]


def test_sarif_validator_rejects_broken_logs() -> None:
    good = sarif([att("a", "success")], "model")
    validate_sarif(good)
    breakages: list[Callable[[dict[str, Any]], object]] = [
        lambda log: log.update(version="2.0.0"),
        lambda log: log["runs"][0]["tool"]["driver"].pop("name"),
        lambda log: log["runs"][0]["results"][0].pop("message"),
        lambda log: log["runs"][0]["results"][0].update(level="fatal"),
        lambda log: log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"].update(startLine=0),
    ]
    for breakage in breakages:
        broken = json.loads(json.dumps(good))
        breakage(broken)
        with pytest.raises((AssertionError, KeyError)):
            validate_sarif(broken)
