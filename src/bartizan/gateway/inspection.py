"""Scan a body's surfaces with the pipeline, decide once, and apply redactions in place.

The gateway grows no detection logic of its own: every string goes through `Firewall.scan` for its role,
the verdicts combine with `Verdict.worst`, and redactions use the pipeline's own spans. Scans run in a
worker thread under the policy's total time budget; past it the request fails closed (BLOCK, every
detector reported as a timeout). Results are cached per (role, text) for the life of the process, bounded,
because chat clients resend the whole conversation on every turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bartizan.gateway.surfaces import Surface, set_text
from bartizan.pipeline import Firewall
from bartizan.redaction import Numbering, redact_with_map
from bartizan.types import DetectorReport, Role, ScanResult, Status, Verdict

#: finding fields that are safe to record (no raw text: `evidence` is masked by the detectors)
SAFE_FINDING_KEYS = ("detector", "category", "rule_id", "score", "evidence", "view", "atlas", "owasp")


@dataclass
class Inspection:
    """The combined decision over a body's surfaces."""

    verdict: Verdict
    results: list[tuple[Surface, ScanResult]]
    latency_ms: float
    restore: dict[str, str] = field(default_factory=dict)  # placeholder -> original value (request side only)

    def findings(self) -> list[dict[str, Any]]:
        """Safe finding records, each with the surface it came from and a stable finding id."""
        out = []
        for surface, result in self.results:
            for f in result.findings:
                d = {k: v for k, v in f.to_dict().items() if k in SAFE_FINDING_KEYS}
                d["surface"] = surface.name
                d["role"] = surface.role.value
                d["id"] = f"{f.detector}:{f.rule_id or f.category}"
                out.append(d)
        return out

    def detector_latency_ms(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for _, result in self.results:
            for name, rep in result.detectors.items():
                total[name] = round(total.get(name, 0.0) + rep.latency_ms, 4)
        return total

    def failed_detectors(self) -> list[str]:
        return sorted(
            {
                n
                for _, r in self.results
                for n, rep in r.detectors.items()
                if rep.status in (Status.ERROR, Status.TIMEOUT)
            }
        )


class ScanCache:
    """A bounded LRU of scan results keyed by (role, sha256 of the text). Thread-safe."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._data: OrderedDict[tuple[Role, bytes], ScanResult] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_scan(self, fw: Firewall, role: Role, text: str) -> ScanResult:
        key = (role, hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        result = fw.scan(text, role)
        failed = any(r.status in (Status.ERROR, Status.TIMEOUT) for r in result.detectors.values())
        if not failed and self._max > 0:  # a timeout is not a property of the text: do not remember it
            with self._lock:
                self._data[key] = result
                while len(self._data) > self._max:
                    self._data.popitem(last=False)
        return result


def _scan_all(fw: Firewall, cache: ScanCache, surfaces: list[Surface]) -> list[tuple[Surface, ScanResult]]:
    return [(s, cache.get_or_scan(fw, s.role, s.text)) for s in surfaces if s.text]


#: bodies up to this many characters are scanned on the event loop: a scan of that much text takes about a
#: millisecond, less than handing it to a worker thread and back costs under load
INLINE_MAX_CHARS = 2000


async def inspect(fw: Firewall, cache: ScanCache, surfaces: list[Surface]) -> Inspection:
    """Scan every surface (small bodies inline, larger ones off the event loop within the policy's total
    budget) and combine."""
    t0 = time.perf_counter()
    budget = fw.policy.total_budget_ms / 1000.0
    try:
        if sum(len(s.text) for s in surfaces) <= INLINE_MAX_CHARS:
            results = _scan_all(fw, cache, surfaces)  # each detector still answers to its own time budget
        else:
            results = await asyncio.wait_for(asyncio.to_thread(_scan_all, fw, cache, surfaces), budget)
    except TimeoutError:
        err = f"scan exceeded the total budget of {fw.policy.total_budget_ms:.0f} ms"
        results = []
        for s in surfaces:
            reports = {n: DetectorReport(Status.TIMEOUT, budget * 1000, err, True) for n in fw.detectors_for(s.role)}
            results.append(
                (s, ScanResult(Verdict.BLOCK, (), s.text, reports, {}, budget * 1000, fw.policy_hash, (err,)))
            )
    verdict = Verdict.worst([r.verdict for _, r in results])
    return Inspection(verdict, results, (time.perf_counter() - t0) * 1000.0)


def apply_redactions(body: dict[str, Any], inspection: Inspection, numbering: Numbering | None = None) -> None:
    """Write each redacted surface's placeholder text into `body`; keep placeholder -> value for restoring
    the answer. One `Numbering` per request, so placeholders are unique across its messages."""
    state = numbering or Numbering()
    for surface, result in inspection.results:
        if result.redactions:
            text, mapping = redact_with_map(surface.text, result.redactions, state)
            set_text(body, surface.path, text)
            inspection.restore.update(mapping)
