"""`bartizan scan`: scan a text, a file, stdin, or a JSONL batch through the one pipeline."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, BinaryIO, TextIO

from bartizan.cli.batch import DEFAULT_MAX_LINE_BYTES, Item, parse_jsonl, parse_text_lines
from bartizan.cli.exitcodes import INPUT_ERROR, OK, USAGE_ERROR, for_verdict
from bartizan.cli.progress import Progress
from bartizan.pipeline import Firewall
from bartizan.types import Role, ScanResult, Verdict

MAX_SINGLE_INPUT_BYTES = 64 * 1024 * 1024


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scan",
        help="scan text, a file, stdin or a JSONL batch",
        description="Scan one text (argument, --file, or stdin with '-') or a batch (--input).",
    )
    p.add_argument("text", nargs="?", help="text to scan; '-' reads stdin")
    p.add_argument("--file", help="scan the whole content of this file as one text")
    p.add_argument("--input", help="batch input: JSONL (one object per line) or text lines, see --format")
    p.add_argument("--output", help="batch output JSONL (default: stdout)")
    p.add_argument("--format", choices=("jsonl", "text"), default="jsonl", help="batch input format")
    p.add_argument("--text-field", default="text", help="JSONL field holding the text (default: text)")
    p.add_argument("--id-field", default="id", help="JSONL field copied to the output as id (default: id)")
    p.add_argument("--role", default="user", choices=[r.value for r in Role], help="role the text is read as")
    p.add_argument("--policy", help="policy YAML file (default: the built-in policy)")
    p.add_argument("--canary", action="append", default=[], help="canary token to look for (repeatable)")
    p.add_argument("--json", action="store_true", help="print the single-text result as JSON")
    p.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES, help="batch line size cap")
    p.add_argument("--no-progress", action="store_true", help="no progress line on a terminal")
    p.set_defaults(run=run)


def result_record(result: ScanResult) -> dict[str, Any]:
    """The per-input JSON object: verdict, scores, findings, latency (and the redacted text when redacted)."""
    out = result.to_dict()
    if result.verdict is Verdict.REDACT:
        out["sanitized"] = result.sanitized
    return out


def run(args: argparse.Namespace) -> int:
    sources = [s for s in (args.text is not None, args.file is not None, args.input is not None) if s]
    if len(sources) > 1:
        print("bartizan scan: give one of TEXT, --file or --input", file=sys.stderr)
        return USAGE_ERROR
    if not sources and sys.stdin.isatty():
        print("bartizan scan: nothing to scan (give TEXT, '-', --file or --input)", file=sys.stderr)
        return USAGE_ERROR
    firewall = Firewall(args.policy)
    if args.input is not None:
        return _run_batch(firewall, args)
    if args.file is not None:
        text, err = _read_file(args.file)
    elif args.text is not None and args.text != "-":
        text, err = args.text, None
    else:
        text, err = _read_stream(sys.stdin.buffer, "stdin")
    if text is None:
        print(f"bartizan scan: {err}", file=sys.stderr)
        return INPUT_ERROR
    result = firewall.scan(text, Role(args.role), canaries=args.canary)
    if args.json:
        print(json.dumps(result_record(result), ensure_ascii=False))
    else:
        _print_human(result, sys.stdout)
    return for_verdict(result.verdict)


def _read_file(path: str) -> tuple[str | None, str | None]:
    try:
        with open(path, "rb") as f:
            return _read_stream(f, path)
    except IsADirectoryError:
        return None, f"{path}: is a directory"
    except OSError as exc:
        return None, f"{path}: {exc.strerror}"


def _read_stream(stream: BinaryIO, name: str) -> tuple[str | None, str | None]:
    raw = stream.read(MAX_SINGLE_INPUT_BYTES + 1)
    if len(raw) > MAX_SINGLE_INPUT_BYTES:
        return None, f"{name}: larger than {MAX_SINGLE_INPUT_BYTES} bytes; use --input for line-by-line scans"
    if b"\x00" in raw[:8192]:
        return None, f"{name}: looks like a binary file (NUL bytes); not scanned"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, f"{name}: invalid UTF-8 at byte {exc.start} (line {line})"


def _print_human(result: ScanResult, out: TextIO) -> None:
    out.write(f"{result.verdict.value.upper()}  ({result.latency_ms:.2f} ms, policy {result.policy_hash[:12]})\n")
    for f in result.findings:
        spans = ", ".join(f"{s.start}-{s.end}" for s in f.spans)
        view = f" via {f.view}" if f.view != "original" else ""
        out.write(f"  {f.detector:<13} {f.category:<24} {f.score:.2f}  chars {spans}{view}  {f.evidence}\n")
    for name, rep in result.detectors.items():
        if rep.status.value != "ok":
            out.write(f"  {name:<13} {rep.status.value}: {rep.error}\n")
    if result.verdict is Verdict.REDACT:
        out.write(f"sanitized: {result.sanitized}\n")


def _run_batch(firewall: Firewall, args: argparse.Namespace) -> int:
    role = Role(args.role)
    try:
        infile = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    except OSError as exc:
        print(f"bartizan scan: {args.input}: {exc.strerror}", file=sys.stderr)
        return INPUT_ERROR
    out: TextIO
    try:
        out = sys.stdout if not args.output or args.output == "-" else open(args.output, "w", encoding="utf-8")
    except OSError as exc:
        print(f"bartizan scan: {args.output}: {exc.strerror}", file=sys.stderr)
        return INPUT_ERROR
    total = os.fstat(infile.fileno()).st_size if args.input != "-" else None
    progress = Progress(total or None, enabled=not args.no_progress)
    worst = Verdict.ALLOW
    errors = 0
    count = 0
    items = (
        parse_jsonl(infile, args.text_field, args.id_field, args.max_line_bytes)
        if args.format == "jsonl"
        else parse_text_lines(infile, args.max_line_bytes)
    )
    try:
        for item in items:
            record = _scan_item(firewall, item, role, args.canary)
            if "error" in record:
                errors += 1
            else:
                worst = Verdict.worst([worst, Verdict(record["verdict"])])
            out.write(json.dumps(record, ensure_ascii=False))
            out.write("\n")
            count += 1
            progress.update(count, infile.tell() if total else None)
    finally:
        progress.close(count, infile.tell() if total else None)
        if out is not sys.stdout:
            out.close()
        if infile is not sys.stdin.buffer:
            infile.close()
    if worst is not Verdict.ALLOW:
        return for_verdict(worst)
    return INPUT_ERROR if errors else OK


def _scan_item(firewall: Firewall, item: Item, role: Role, canaries: list[str]) -> dict[str, Any]:
    head: dict[str, Any] = {"line": item.line}
    if item.id is not None:
        head["id"] = item.id
    if item.text is None:
        head["error"] = item.error or "unreadable line"
        return head
    head.update(result_record(firewall.scan(item.text, role, canaries=canaries)))
    return head
