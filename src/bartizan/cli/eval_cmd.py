"""`bartizan eval`: how well one detector, or a whole policy, separates a labelled data set.

Every row goes through the one pipeline (`Firewall.scan`). The score of a row is the detector's score
(for a policy: the highest score among the detectors that ran); the decision is the verdict (not allow).
Prints AUC, recall at 0.1% / 1% / 5% FPR, precision / recall / F1 / FPR at the shipped threshold and the
per-row latency p50 / p99, each with a 95% stratified percentile-bootstrap interval (and a Wilson interval
for plain proportions).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bartizan import __version__
from bartizan.cli.exitcodes import INPUT_ERROR, OK, POLICY_ERROR, USAGE_ERROR
from bartizan.cli.progress import Progress
from bartizan.detectors.registry import ConfigError, default_registry
from bartizan.eval.report import summarise
from bartizan.eval.runner import DEFAULT_FPRS, InputError, Scanner, build_policy, collect, read_rows
from bartizan.types import Role


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a detector or policy on a labelled JSONL/CSV file",
        description=(
            "Scan every row of a labelled file through the pipeline and report AUC, recall at fixed FPR, "
            "precision/recall/F1/FPR at the shipped threshold and latency, with bootstrap 95% intervals."
        ),
        epilog=(
            "Malformed rows are skipped and listed by line number on stderr; the report is still printed and "
            "the exit code is then 3 (as for `bartizan scan --input`). Exit 2: usage; 3: unreadable input."
        ),
    )
    p.add_argument("--data", required=True, help="labelled data: JSONL (one object per line) or CSV with a header")
    p.add_argument(
        "--format", choices=("auto", "jsonl", "csv"), default="auto", help="file format (default: by suffix)"
    )
    p.add_argument("--text-field", default="text", help="field/column holding the text (default: text)")
    p.add_argument("--label-field", default="label", help="field/column holding the label (default: label)")
    p.add_argument(
        "--positive",
        required=True,
        action="append",
        help="label value of the positive (attack) class, compared as text (repeatable: any of them is positive)",
    )
    p.add_argument(
        "--negative",
        action="append",
        default=[],
        help="label value of the negative class (repeatable); default: every label that is not --positive",
    )
    p.add_argument(
        "--group-field",
        help="field/column to break rates down by (e.g. source): share flagged per value, per class",
    )
    who = p.add_mutually_exclusive_group()
    who.add_argument("--detector", help="evaluate this detector alone (its shipped threshold, action block)")
    who.add_argument("--policy", help="evaluate this policy file (score: highest detector score; decision: verdict)")
    p.add_argument("--role", default="user", choices=[r.value for r in Role], help="role the texts are read as")
    p.add_argument(
        "--calibration",
        help="choose the recall@FPR thresholds on the negatives of this file (same fields) instead of --data's",
    )
    p.add_argument("--bootstrap", type=int, default=2000, metavar="B", help="bootstrap replicates; 0 = none")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --detector: set a key of its configuration (value read as YAML; repeatable), "
        "e.g. --set contextual=true",
    )
    p.add_argument(
        "--fpr",
        type=float,
        action="append",
        metavar="X",
        help="false-positive rate to report recall at, as a fraction (repeatable; default 0.001, 0.01, 0.05)",
    )
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="scan only the first N usable rows of --data and of --calibration (a file sorted by label: one class)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as one JSON object")
    out.add_argument("--markdown", action="store_true", help="print a results-table row (Markdown) for a README")
    p.add_argument("--no-progress", action="store_true", help="no progress line on a terminal")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.bootstrap < 0 or (args.limit is not None and args.limit < 1):
        print("bartizan eval: --bootstrap must be >= 0 and --limit >= 1", file=sys.stderr)
        return USAGE_ERROR
    if args.fpr and any(not 0.0 < x < 1.0 for x in args.fpr):
        print("bartizan eval: --fpr takes fractions between 0 and 1 (e.g. 0.02 for 2%)", file=sys.stderr)
        return USAGE_ERROR
    role = Role(args.role)
    try:
        settings = _settings(args.set, args.detector)
    except ValueError as exc:
        print(f"bartizan eval: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        policy, shipped_threshold = build_policy(args.detector, args.policy, role, settings)
        if settings:  # the detector's schema checks the keys now, not after the first row
            default_registry.get(args.detector).build(policy.detectors[args.detector].config)
    except ConfigError as exc:
        print(f"bartizan eval: {exc}", file=sys.stderr)
        return POLICY_ERROR
    except KeyError as exc:
        print(f"bartizan eval: {exc.args[0]}", file=sys.stderr)
        return USAGE_ERROR
    progress = Progress(None, enabled=not args.no_progress)
    try:
        scanner = Scanner(policy, role, args.detector)
        calibration = None
        digests: set[bytes] | None = None
        if args.calibration:
            digests = set()
            rows = read_rows(Path(args.calibration), args.text_field, args.label_field, args.format)
            calibration = collect(
                scanner,
                rows,
                args.positive,
                args.negative,
                limit=args.limit,
                negatives_only=True,
                remember=digests,
                progress=progress.update,
            )
            if not len(calibration.scores):
                raise InputError(f"{args.calibration}: no usable negative rows")
        rows = read_rows(Path(args.data), args.text_field, args.label_field, args.format, args.group_field)
        data = collect(
            scanner, rows, args.positive, args.negative, limit=args.limit, seen=digests, progress=progress.update
        )
    except InputError as exc:
        progress.close(0)
        print(f"bartizan eval: {exc}", file=sys.stderr)
        return INPUT_ERROR
    progress.close(len(data.scores))
    if not len(data.scores):
        print(f"bartizan eval: {args.data}: no usable rows ({data.malformed} malformed)", file=sys.stderr)
        _print_errors(data.errors, args.data, sys.stderr)
        return INPUT_ERROR
    fprs = tuple(sorted(set(args.fpr))) if args.fpr else DEFAULT_FPRS
    report = summarise(data, calibration, fprs=fprs, n_boot=args.bootstrap, seed=args.seed)
    report = {
        "bartizan": __version__,
        "data": args.data,
        "detector": args.detector,
        "policy": args.policy or ("default" if args.detector is None else None),
        "policy_hash": scanner.firewall.policy_hash,
        "role": role.value,
        "positive_labels": args.positive,
        "shipped_threshold": shipped_threshold,
        "calibration_file": args.calibration,
        **report,
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    elif args.markdown:
        _print_markdown(report, sys.stdout)
    else:
        _print_human(report, sys.stdout)
    skipped = False
    for name, part in ((args.calibration, calibration), (args.data, data)):
        if part is not None and part.malformed:
            print(f"bartizan eval: {name}: skipped {part.malformed} malformed row(s)", file=sys.stderr)
            _print_errors(part.errors, name, sys.stderr)
            skipped = True
    return INPUT_ERROR if skipped else OK


def _settings(pairs: list[str], detector: str | None) -> dict[str, Any]:
    """--set KEY=VALUE pairs as a config dict (values read as YAML scalars or lists)."""
    import yaml

    if pairs and detector is None:
        raise ValueError("--set needs --detector (a policy file carries its own configuration)")
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _print_errors(errors: list[tuple[int, str]], name: str, out: TextIO) -> None:
    for line, err in errors:
        out.write(f"  {name}:{line}: {err}\n")


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:.2f}%" if pct else f"{x:.3f}"


def _est(e: dict[str, Any] | None, pct: bool = False, ms: bool = False) -> str:
    if e is None or e.get("value") is None:
        return "n/a"

    def f(v: float) -> str:
        return f"{v:.3f} ms" if ms else _fmt(v, pct)

    out = f(e["value"])
    ci = e.get("ci")
    if ci:
        out += f"  [{f(ci['low'])}, {f(ci['high'])}] boot"
    w = e.get("wilson")
    if w:
        out += f"  [{f(w['low'])}, {f(w['high'])}] {'wilson' if w['method'] == 'wilson' else 'exact'}"
    return out


def _print_human(r: dict[str, Any], out: TextIO) -> None:
    c = r["counts"]
    what = f"detector {r['detector']}" if r["detector"] else f"policy {r['policy']}"
    out.write(f"bartizan eval: {r['data']}  ({what}, role {r['role']}, policy {r['policy_hash'][:12]})\n")
    labels = "/".join(r["positive_labels"])
    out.write(
        f"rows: {c['scanned']} scanned ({c['positives']} positive {labels}, {c['negatives']} negative)"
        f"; {c['malformed']} malformed skipped; {c['other_label']} other labels skipped"
        f"; {c['detector_failures']} detector failures{'; stopped at --limit' if c['limit_reached'] else ''}\n"
    )
    out.write("intervals: 95%, percentile bootstrap stratified by class (boot); Wilson/exact for proportions\n\n")
    out.write(f"AUC                 {_est(r['auc'])}\n")
    on = r["thresholds_chosen_on"]
    for x in r["recall_at_fpr"]:
        tau = "flag every row" if x["flag_above"] is None else f"flag if score > {x['flag_above']:.6g}"
        out.write(
            f"{'recall @ ' + format(x['max_fpr'], '.1%') + ' FPR':<20}{_est(x['recall'], pct=True)}\n"
            f"    {tau} (chosen on {on}, <= {x['allowed_false_positives']} false positives)\n"
            f"    achieved FPR {_est(x['fpr'], pct=True)}\n"
        )
    s = r["shipped"]
    thr = r["shipped_threshold"]
    out.write(
        f"\nat the shipped threshold{f' ({thr:g})' if thr is not None else ''}, decision = verdict is not allow:\n"
    )
    out.write(f"  precision         {_est(s['precision'], pct=True)}\n")
    out.write(f"  recall            {_est(s['recall'], pct=True)}\n")
    out.write(f"  F1                {_est(s['f1'])}\n")
    out.write(f"  FPR               {_est(s['fpr'], pct=True)}\n")
    k = s["counts"]
    out.write(f"  counts            TP {k['tp']}  FP {k['fp']}  FN {k['fn']}  TN {k['tn']}\n")
    if r["latency_ms"]:
        lat, ch = r["latency_ms"], r["chars"]
        out.write(f"\nlatency per row     p50 {_est(lat['p50'], ms=True)}\n")
        out.write(f"                    p99 {_est(lat['p99'], ms=True)}\n")
        out.write(
            f"                    (mean {lat['mean']:.3f} ms; texts: mean {ch['mean']:.0f} chars, max {ch['max']})\n"
        )
    if r["groups"]:
        _print_groups(r, out)
    if r.get("calibration"):
        cal = r["calibration"]
        out.write(f"\ncalibration: {r['calibration_file']}: {cal['negatives']} negatives\n")
    for w in r["warnings"]:
        out.write(f"note: {w}\n")


def _print_groups(r: dict[str, Any], out: TextIO) -> None:
    fprs = [x["max_fpr"] for x in r["recall_at_fpr"]]
    at = "".join(f"  {'@' + format(x, '.1%') + 'FPR':>10}" for x in fprs)
    width = max(12, *(len(g["group"]) for g in r["groups"]))
    note = "; @x: at the recall@FPR threshold" if at else ""
    out.write(f"\nshare flagged per group (positives: recall; negatives: FPR){note}\n")
    out.write(f"  {'group':<{width}}  {'class':<9} {'n':>6}  {'shipped':>8}  {'95% (Wilson)':<17}{at}\n")
    for g in r["groups"]:
        for cls in ("positives", "negatives"):
            e = g[cls]
            if not e["n"]:
                continue
            w = e["wilson"]
            ci = f"[{w['low'] * 100:.2f}, {w['high'] * 100:.2f}]" if w else ""
            cells = "".join(f"  {a['flagged'] * 100:>9.2f}%" for a in e["flagged_at_fpr_thresholds"])
            out.write(f"  {g['group']:<{width}}  {cls:<9} {e['n']:>6}  {e['flagged'] * 100:>7.2f}%  {ci:<17}{cells}\n")


MARKDOWN_HEADER = (
    "| data | scored by | pos / neg | AUC | recall @0.1% FPR | recall @1% FPR | recall @5% FPR "
    "| precision | recall | F1 | FPR | p50 / p99 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def _print_markdown(r: dict[str, Any], out: TextIO) -> None:
    """One table row; each cell is the estimate with its bootstrap 95% interval. Header included."""

    def cell(e: dict[str, Any] | None, pct: bool = True) -> str:
        if e is None or e.get("value") is None:
            return "n/a"
        ci = e.get("ci")
        return _fmt(e["value"], pct) + (f" [{_fmt(ci['low'], pct)}, {_fmt(ci['high'], pct)}]" if ci else "")

    c, s, lat = r["counts"], r["shipped"], r["latency_ms"]
    who = f"`{r['detector']}`" if r["detector"] else f"policy {r['policy']}"
    at = {x["max_fpr"]: cell(x["recall"]) for x in r["recall_at_fpr"]}
    cells = [
        f"`{Path(r['data']).name}`",
        who,
        f"{c['positives']} / {c['negatives']}",
        cell(r["auc"], pct=False),
        *(at.get(x, "n/a") for x in DEFAULT_FPRS),
        cell(s["precision"]),
        cell(s["recall"]),
        cell(s["f1"], pct=False),
        cell(s["fpr"]),
        f"{lat['p50']['value']:.3f} / {lat['p99']['value']:.3f}" if lat else "n/a",
    ]
    out.write(MARKDOWN_HEADER + "| " + " | ".join(cells) + " |\n")
