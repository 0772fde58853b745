"""Run a labelled data set through the one pipeline and collect, per row, a score, a decision and a latency.

Rows are streamed (JSONL or CSV): memory grows only with the per-row score, decision and latency arrays.
A malformed row is skipped and reported by line number and reason, never by content. Labels are compared
as strings (JSON ``true`` reads as ``true``; numbers also compare numerically, so ``--positive 1`` matches
``1.0``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bartizan.cli.batch import DEFAULT_MAX_LINE_BYTES, parse_object, read_lines
from bartizan.detectors.registry import default_registry
from bartizan.pipeline import Firewall
from bartizan.policy.loader import default_policy, load_policy
from bartizan.policy.schema import FailMode, Policy
from bartizan.types import Role, Status, Verdict

DEFAULT_FPRS = (0.001, 0.01, 0.05)
MAX_REPORTED_ERRORS = 50
MAX_GROUPS = 100
_CSV_FIELD_LIMIT = 16 * 1024 * 1024


class InputError(Exception):
    """The data file cannot be read at all (missing, unreadable, no such column)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its text and label text, or why it could not be used."""

    line: int
    text: str | None = None
    label: str | None = None
    error: str | None = None
    group: str | None = None


# --- reading ------------------------------------------------------------------------------------------
def label_text(value: Any) -> str | None:
    """A label as text: strings stripped, JSON scalars in JSON spelling; None for null or empty."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def label_matches(label: str, wanted: str) -> bool:
    """String equality, plus numeric equality (1 == 1.0) and case-free true/false."""
    if label == wanted:
        return True
    if label.lower() in ("true", "false") and wanted.lower() in ("true", "false"):
        return label.lower() == wanted.lower()
    try:
        a, b = float(label), float(wanted)
    except ValueError:
        return False
    return math.isfinite(a) and a == b


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


def read_rows(
    path: Path, text_field: str, label_field: str, fmt: str = "auto", group_field: str | None = None
) -> Iterator[Row]:
    """Stream the rows of a JSONL or CSV file (``fmt``: auto, jsonl or csv); `group_field` names an optional
    column (source, kind, ...) whose value each row carries for per-group rates."""
    try:
        fmt = detect_format(path) if fmt == "auto" else fmt
        stream = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    with stream:
        if fmt == "jsonl":
            if stream.peek(64).lstrip().startswith(b"["):
                raise InputError(f"{path}: a JSON array, not JSON Lines (convert with: jq -c '.[]')")
            yield from _jsonl_rows(stream, text_field, label_field, group_field)
        else:
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            yield from _csv_rows(stream, text_field, label_field, group_field, delimiter)


def _jsonl_rows(stream: io.BufferedReader, text_field: str, label_field: str, group_field: str | None) -> Iterator[Row]:
    for number, raw in read_lines(stream, DEFAULT_MAX_LINE_BYTES):
        if raw is None:
            yield Row(number, error=f"line longer than {DEFAULT_MAX_LINE_BYTES} bytes")
            continue
        if not raw.strip():
            continue  # blank lines are not rows
        obj, err = parse_object(raw)
        if obj is None:
            yield Row(number, error=err)
            continue
        row = _make_row(number, obj.get(text_field), obj.get(label_field), text_field, label_field)
        yield _with_group(row, group_field, obj.get(group_field) if group_field else None)


def _csv_rows(
    stream: io.BufferedReader, text_field: str, label_field: str, group_field: str | None, delimiter: str
) -> Iterator[Row]:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    # surrogateescape keeps reading past invalid UTF-8; such rows are reported instead of ending the run.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"unreadable CSV header: {exc}") from None
    missing = [f for f in (text_field, label_field, group_field) if f is not None and f not in header]
    if missing:
        raise InputError(f"column(s) {', '.join(map(repr, missing))} not in the header (columns: {', '.join(header)})")
    ti, li = header.index(text_field), header.index(label_field)
    gi = header.index(group_field) if group_field else None
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(start, error=f"malformed CSV: {exc}")
            continue
        if not record or record == [""]:
            continue
        if len(record) <= max(ti, li, gi or 0):
            yield Row(start, error=f"{len(record)} columns, header has {len(header)}")
            continue
        value = record[ti]
        if _has_surrogates(value) or _has_surrogates(record[li]):
            yield Row(start, error="invalid UTF-8")
            continue
        group = record[gi] if gi is not None else None
        yield _with_group(_make_row(start, value, record[li], text_field, label_field), group_field, group)


def _has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _with_group(row: Row, group_field: str | None, value: Any) -> Row:
    if group_field is None or row.text is None:
        return row
    text = label_text(value)
    return Row(row.line, row.text, row.label, row.error, "(missing)" if text is None or _has_surrogates(text) else text)


def _make_row(number: int, text: Any, label: Any, text_field: str, label_field: str) -> Row:
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        return Row(number, error=f"field {text_field!r} is {what}")
    lab = label_text(label)
    if lab is None:
        return Row(number, error=f"field {label_field!r} is missing, empty or not a scalar")
    return Row(number, text=text, label=lab)


# --- scanning -----------------------------------------------------------------------------------------
def build_policy(
    detector: str | None, policy_path: str | Path | None, role: Role, settings: dict[str, Any] | None = None
) -> tuple[Policy, float | None]:
    """The policy to evaluate and its shipped threshold (one-detector policies only).

    With a detector name: that detector alone, on `role`, action block, keeping the default policy's
    threshold, categories and configuration for it (its shipped settings) when it has an entry there, except
    a ``min_score`` reporting floor, set to 0 (when below the threshold) so that every score is seen.
    `settings` are merged into that detector's configuration (``bartizan eval --set contextual=true``).
    """
    if detector is None:
        return load_policy(policy_path), None
    spec = default_registry.get(detector)  # KeyError names the known detectors
    base = default_policy()
    entry = base.detectors[detector].model_dump(mode="json") if detector in base.detectors else {}
    entry.update(enabled=True, roles=[role.value], action="block")
    if settings:
        entry["config"] = {**(entry.get("config") or {}), **settings}
    doc = base.model_dump(mode="json")
    doc.update(name=f"eval-{detector}", detectors={detector: entry})
    policy = Policy.model_validate(doc)
    floor_field = spec.config_schema.model_fields.get("min_score")
    if floor_field is not None:
        # Learned detectors drop findings below a floor. While the threshold is above the floor, removing it
        # changes no verdict, and it stops every low score reading as 0 (which would blunt AUC and recall).
        config = dict(entry.get("config") or {})
        floor = config.get("min_score", floor_field.default)
        if isinstance(floor, (int, float)) and policy.detectors[detector].threshold >= floor:
            entry["config"] = {**config, "min_score": 0.0}
            policy = Policy.model_validate(doc)
    return policy, policy.detectors[detector].threshold


@dataclass
class Collected:
    """What a pass over one file produced: per-row arrays plus counts (no text is kept)."""

    scores: array[float] = field(default_factory=lambda: array("d"))
    positive: bytearray = field(default_factory=bytearray)
    flagged: bytearray = field(default_factory=bytearray)
    latency_ms: array[float] = field(default_factory=lambda: array("d"))
    chars: array[int] = field(default_factory=lambda: array("q"))
    group_ids: array[int] = field(default_factory=lambda: array("i"))
    group_names: dict[str, int] = field(default_factory=dict)
    read: int = 0
    malformed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    other_label: int = 0
    detector_failures: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)  # detector status/error (no content) -> rows
    overlap: int = 0
    limit_reached: bool = False

    def group_id(self, name: str) -> int:
        """A small integer per group value; past MAX_GROUPS distinct values, all further ones share "(other)"."""
        if name not in self.group_names:
            if len(self.group_names) >= MAX_GROUPS:
                name = "(other)"
            self.group_names.setdefault(name, len(self.group_names))
        return self.group_names[name]

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        s = np.frombuffer(self.scores, dtype=np.float64) if len(self.scores) else np.empty(0)
        pos = np.frombuffer(bytes(self.positive), dtype=np.uint8).astype(bool) if self.positive else np.empty(0, bool)
        return s[pos], s[~pos]


class Scanner:
    """One firewall for the run and the rule that turns a ScanResult into (score, flagged, failed)."""

    def __init__(self, policy: Policy, role: Role, detector: str | None) -> None:
        self.firewall = Firewall(policy)
        self.role = role
        self.names = [detector] if detector else self.firewall.detectors_for(role)
        if not self.names:
            raise InputError(f"the policy runs no detector for role {role.value!r}")
        self.fail_closed = {
            n: (policy.detectors[n].fail_mode or policy.fail_mode) is FailMode.CLOSED for n in self.names
        }

    def score(self, text: str) -> tuple[float, bool, str | None, float]:
        """(score, flagged, why a detector failed or None, latency ms) for one text."""
        result = self.firewall.scan(text, self.role)
        top, failed = 0.0, None
        for name in self.names:
            if name in result.scores:
                top = max(top, result.scores[name])
                continue
            rep = result.detectors.get(name)
            if rep is not None and rep.status in (Status.ERROR, Status.TIMEOUT):
                # A timeout's message carries the elapsed time; only an error's (an exception type) is stable.
                failed = f"{name}: error ({rep.error})" if rep.status is Status.ERROR else f"{name}: timeout"
                if self.fail_closed[name]:
                    top = 1.0  # fail closed: an unscored message counts as maximally suspicious
        return top, result.verdict is not Verdict.ALLOW, failed, result.latency_ms


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def collect(
    scanner: Scanner,
    rows: Iterator[Row],
    positives: str | Sequence[str],
    negatives: Sequence[str] = (),
    *,
    limit: int | None = None,
    negatives_only: bool = False,
    seen: set[bytes] | None = None,
    remember: set[bytes] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Collected:
    """Scan rows (at most `limit`) and collect their scores. `negatives_only` drops positive rows (calibration);
    `seen` counts rows whose text is in it (eval/calibration overlap); `remember` receives text digests;
    `progress` is called with the number of rows scanned so far."""
    wanted = (positives,) if isinstance(positives, str) else tuple(positives)
    out = Collected()
    for row in rows:
        if limit is not None and len(out.scores) >= limit:
            out.limit_reached = True
            break
        out.read += 1
        if row.text is None or row.label is None:
            out.malformed += 1
            if len(out.errors) < MAX_REPORTED_ERRORS:
                out.errors.append((row.line, row.error or "unreadable row"))
            continue
        is_pos = any(label_matches(row.label, v) for v in wanted)
        if not is_pos and negatives and not any(label_matches(row.label, v) for v in negatives):
            out.other_label += 1
            continue
        if negatives_only and is_pos:
            out.other_label += 1
            continue
        if seen is not None or remember is not None:
            digest = _digest(row.text)
            if seen is not None and digest in seen:
                out.overlap += 1
            if remember is not None:
                remember.add(digest)
        score, flagged, failed, latency = scanner.score(row.text)
        out.scores.append(score)
        out.positive.append(1 if is_pos else 0)
        out.flagged.append(1 if flagged else 0)
        out.latency_ms.append(latency)
        out.chars.append(len(row.text))
        if row.group is not None:
            out.group_ids.append(out.group_id(row.group))
        if failed is not None:
            out.detector_failures += 1
            if failed in out.failure_reasons or len(out.failure_reasons) < MAX_REPORTED_ERRORS:
                out.failure_reasons[failed] = out.failure_reasons.get(failed, 0) + 1
        if progress is not None:
            progress(len(out.scores))
    return out
