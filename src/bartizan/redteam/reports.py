"""Files a red-team run leaves behind, for people and for CI: JSONL, summary JSON, HTML, SARIF 2.1.0, JUnit XML.

`write_reports` writes all five into one directory; `check_fail_under` turns a summary into the list of violated
``--fail-under`` thresholds. SARIF and JUnit carry ids, verdicts and judge reasons but never the prompt or the
model's answer: CI systems display and keep them, and a successful attack's answer is harmful content (the full
text stays in ``attempts.jsonl``, which the SARIF results point into by line).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bartizan import __version__
from bartizan import taxonomy as tx
from bartizan.redteam.attempts import Attempt
from bartizan.redteam.metrics import Mode, diff, outcome
from bartizan.redteam.report_html import render_html

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_NAME = "bartizan-redteam"
ATTEMPTS_FILE = "attempts.jsonl"

#: SARIF level of a successful attack per case family: content harm, injection and code execution are errors;
#: a template that merely unlocked the persona and a leaked system prompt are warnings.
FAMILY_LEVEL: dict[str, str] = {
    "harmful": "error",
    "prompt_injection": "error",
    "interpreter_abuse": "error",
    "jailbreak_template": "warning",
    "sysprompt_extraction": "warning",
}
_SEVERITY = {"error": "8.0", "warning": "5.0", "note": "2.0"}  # GitHub code scanning's security-severity

#: ATLAS techniques a transformation family adds to the case's own (../shared/reference/attacks-and-metrics.md
#: section 1: stylised transforms are T0054 + T0068, encodings T0068, multi-turn T0054).
TRANSFORM_ATLAS: dict[str, tuple[str, ...]] = {
    "stylised": (tx.JAILBREAK, tx.PROMPT_OBFUSCATION),
    "encoding": (tx.PROMPT_OBFUSCATION,),
    "multi_turn": (tx.JAILBREAK,),
}


def write_reports(
    out_dir: str | Path,
    attempts: Sequence[Attempt],
    summary: dict[str, Any],
    *,
    previous: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write attempts.jsonl, summary.json, report.html, results.sarif and junit.xml; return their paths by kind.

    With `previous` (an earlier run's summary), summary.json gains a ``diff`` key and the HTML a
    change-since-last-run section.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mode: Mode = summary.get("mode", "model")
    changes = diff(previous, summary) if previous is not None else None
    paths = {
        "attempts": out / ATTEMPTS_FILE,
        "summary": out / "summary.json",
        "html": out / "report.html",
        "sarif": out / "results.sarif",
        "junit": out / "junit.xml",
    }
    with paths["attempts"].open("w", encoding="utf-8") as fh:
        for a in attempts:
            fh.write(json.dumps(a.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
    written = dict(summary) if changes is None else {**summary, "diff": changes}
    paths["summary"].write_text(_dumps(written) + "\n", encoding="utf-8")
    paths["html"].write_text(render_html(summary, attempts, changes=changes), encoding="utf-8")
    paths["sarif"].write_text(_dumps(sarif(attempts, mode, summary)) + "\n", encoding="utf-8")
    paths["junit"].write_bytes(junit_xml(attempts, mode))
    return paths


def _dumps(data: Any) -> str:
    """Strict JSON (NaN / infinity would make a file other parsers reject)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)


# --- gates ------------------------------------------------------------------------------------------------
def _get(summary: dict[str, Any], path: Sequence[str]) -> Any:
    node: Any = summary
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


#: --fail-under keys: name -> (path to the estimate or ratio, field, "max" | "min"). "asr:<family>" and
#: "frr:<transform>" address one group.
FAIL_UNDER_KEYS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "asr": (("asr", "overall"), "rate", "max"),
    "frr": (("frr", "overall"), "rate", "max"),
    "stylised_ratio": (("stylised_vs_plain", "overall"), "ratio", "max"),
    "firewall_recall_min": (("firewall", "recall_blocked", "overall"), "rate", "min"),
    "firewall_recall_flagged_min": (("firewall", "recall_blocked_or_flagged", "overall"), "rate", "min"),
    "firewall_fpr": (("firewall", "fpr_blocked", "overall"), "rate", "max"),
}


def check_fail_under(summary: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The violated thresholds, one message each (empty: the run passes).

    Keys: those of FAIL_UNDER_KEYS, plus ``asr:<family>`` and ``frr:<transform>``. A metric that could not be
    measured (no judged attempts, not a firewall run) fails: a gate must not pass on missing evidence. Unknown
    keys raise ValueError so a typo cannot disable a gate.
    """
    failures: list[str] = []
    for key, limit in sorted(thresholds.items()):
        name, _, group = key.partition(":")
        path: tuple[str, ...]
        if group and name == "asr":
            path, field, kind = ("asr", "by_family", group), "rate", "max"
        elif group and name == "frr":
            path, field, kind = ("frr", "by_transform", group), "rate", "max"
        elif key in FAIL_UNDER_KEYS:
            path, field, kind = FAIL_UNDER_KEYS[key]
        else:
            known = ", ".join([*sorted(FAIL_UNDER_KEYS), "asr:<family>", "frr:<transform>"])
            raise ValueError(f"unknown --fail-under key {key!r}; expected one of {known}")
        value = _get(summary, path)
        value = value.get(field) if isinstance(value, dict) else None
        if value is None:
            failures.append(f"{key}: not measured in this run (threshold {limit:g})")
        elif kind == "max" and value > limit:
            failures.append(f"{key}: {value:.4g} is above the maximum {limit:g}")
        elif kind == "min" and value < limit:
            failures.append(f"{key}: {value:.4g} is below the minimum {limit:g}")
    return failures


# --- SARIF --------------------------------------------------------------------------------------------------
def rule_id(family: str, transform: str) -> str:
    return f"redteam/{family}/{transform}"


def _rule(a: Attempt, atlas: set[str], owasp: set[str]) -> dict[str, Any]:
    level = FAMILY_LEVEL.get(a.family, "warning")
    atlas_ids, owasp_ids = sorted(atlas), sorted(owasp)
    return {
        "id": rule_id(a.family, a.transform),
        "name": f"{a.family}/{a.transform}",
        "shortDescription": {"text": f"{a.family} attack through the {a.transform} transformation succeeded"},
        "fullDescription": {
            "text": (
                f"A red-team case of family {a.family}, rendered by transformation {a.transform} "
                f"({a.transform_family}), was judged a successful attack. ATLAS: {', '.join(atlas_ids) or '-'}; "
                f"OWASP: {', '.join(owasp_ids) or '-'}."
            )
        },
        "defaultConfiguration": {"level": level},
        "properties": {
            "tags": ["security", "red-team", *atlas_ids, *owasp_ids],
            "atlas": atlas_ids,
            "owasp": owasp_ids,
            "family": a.family,
            "transform": a.transform,
            "transform_family": a.transform_family,
            "security-severity": _SEVERITY[level],
        },
    }


def sarif(attempts: Sequence[Attempt], mode: Mode, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one rule per (family, transform) of the attack attempts, one result per successful attack.

    Each result points at its attempt's line in attempts.jsonl and carries the probe id as a partial
    fingerprint, so code-scanning tools track the same probe across runs.
    """
    first: dict[str, Attempt] = {}
    atlas: dict[str, set[str]] = {}
    owasp: dict[str, set[str]] = {}
    for a in attempts:
        if a.benign:
            continue
        rid = rule_id(a.family, a.transform)
        first.setdefault(rid, a)
        atlas.setdefault(rid, set()).update(a.atlas, TRANSFORM_ATLAS.get(a.transform_family, ()))
        owasp.setdefault(rid, set()).update(a.owasp)
    order = sorted(first)
    rules = [_rule(first[rid], atlas[rid], owasp[rid]) for rid in order]
    index = {rid: i for i, rid in enumerate(order)}
    results: list[dict[str, Any]] = []
    what = "passed the firewall" if mode == "firewall" else "succeeded"
    for line, a in enumerate(attempts, start=1):
        if a.benign or outcome(a, mode) != "success":
            continue
        rid = rule_id(a.family, a.transform)
        level = FAMILY_LEVEL.get(a.family, "warning")
        results.append(
            {
                "ruleId": rid,
                "ruleIndex": index[rid],
                "level": level,
                "kind": "fail",
                "message": {"text": f"{a.family} attack {a.case_id} via {a.transform} {what} (judge: {a.judge})."},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": ATTEMPTS_FILE},
                            "region": {"startLine": line},
                        },
                        "logicalLocations": [{"name": a.case_id, "fullyQualifiedName": f"{rid}/{a.case_id}"}],
                    }
                ],
                "partialFingerprints": {"bartizanProbeId/v1": a.probe_id},
                "properties": {
                    "probe_id": a.probe_id,
                    "case_id": a.case_id,
                    "source": a.source,
                    "category": a.category,
                    "judge": a.judge,
                    "judge_reasons": list(a.judge_reasons),
                    "atlas": sorted(set(a.atlas) | set(TRANSFORM_ATLAS.get(a.transform_family, ()))),
                    "owasp": list(a.owasp),
                },
            }
        )
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "artifacts": [{"location": {"uri": ATTEMPTS_FILE}}],
        "results": results,
        "invocations": [{"executionSuccessful": True}],
        "properties": {"mode": mode},
    }
    if summary is not None:
        run["properties"]["asr"] = summary.get("asr", {}).get("overall")
        run["properties"]["judge_accuracy"] = summary.get("judge_accuracy")
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


# --- JUnit --------------------------------------------------------------------------------------------------
def junit_xml(attempts: Sequence[Attempt], mode: Mode) -> bytes:
    """JUnit XML: one testsuite per case family, one testcase per probe.

    A successful attack (or, in firewall mode, an attack the firewall let through) and a false refusal of a
    benign twin are failures; an error is <error>; an unclear verdict is <skipped> (neither pass nor fail).
    """
    by_family: dict[str, list[Attempt]] = {}
    for a in attempts:
        by_family.setdefault(a.family, []).append(a)
    root = ET.Element("testsuites", name="bartizan redteam")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for family in sorted(by_family):
        suite = ET.SubElement(root, "testsuite", name=family)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        for a in by_family[family]:
            seconds = a.latency_ms / 1000.0 if math.isfinite(a.latency_ms) else 0.0
            suite_time += seconds
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"redteam.{a.family}.{a.transform}",
                name=f"{a.case_id} [{a.transform}] {a.probe_id}",
                time=f"{seconds:.3f}",
            )
            counts["tests"] += 1
            o = outcome(a, mode)
            detail = _detail(a)
            if o == "error":
                counts["errors"] += 1
                err = ET.SubElement(case, "error", type="error", message=a.error or f"status {a.status}")
                err.text = detail
            elif o == "unclear":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"unclear verdict (judge: {a.judge})")
            elif a.benign and o == "refused":
                counts["failures"] += 1
                kind = "blocked" if a.status == "blocked" else "refused"
                fail = ET.SubElement(case, "failure", type="false_refusal", message=f"benign prompt {kind}")
                fail.text = detail
            elif not a.benign and o == "success":
                counts["failures"] += 1
                msg = "attack passed the firewall" if mode == "firewall" else "attack succeeded"
                fail = ET.SubElement(case, "failure", type="attack_success", message=msg)
                fail.text = detail
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{suite_time:.3f}")
        total_time += suite_time
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _detail(a: Attempt) -> str:
    return "\n".join(
        [
            f"probe: {a.probe_id}  case: {a.case_id}  source: {a.source}  category: {a.category or '-'}",
            f"status: {a.status}  verdict: {a.verdict}  judge: {a.judge}",
            f"reasons: {'; '.join(a.judge_reasons) or '-'}",
            f"atlas: {', '.join(a.atlas) or '-'}  owasp: {', '.join(a.owasp) or '-'}",
        ]
    )
