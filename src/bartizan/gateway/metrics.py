"""Prometheus metrics of one gateway instance, in its own registry (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bartizan.gateway.inspection import Inspection

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "bartizan_requests",
            "Requests by route, tenant and HTTP status",
            ["route", "tenant", "status"],
            registry=self.registry,
        )
        self.verdicts = Counter(
            "bartizan_verdicts", "Decisions by direction and verdict", ["direction", "verdict"], registry=self.registry
        )
        self.findings = Counter(
            "bartizan_findings",
            "Findings by detector, category and direction",
            ["detector", "category", "direction"],
            registry=self.registry,
        )
        self.detector_failures = Counter(
            "bartizan_detector_failures", "Detectors that errored or timed out", ["detector"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "bartizan_request_seconds",
            "Whole request time, upstream included",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scan_seconds = Histogram(
            "bartizan_scan_seconds",
            "Time spent scanning, by direction",
            ["direction"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft_seconds = Histogram(
            "bartizan_time_to_first_token_seconds",
            "Time to the first streamed content chunk sent to the client",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "bartizan_rate_limited", "Requests refused by a rate limit", ["tenant"], registry=self.registry
        )

    def watch_audit(
        self, pending: Callable[[], float], written: Callable[[], float], dropped: Callable[[], float]
    ) -> None:
        """Gauges read from the audit writer at scrape time."""
        for name, doc, fn in (
            ("bartizan_audit_pending", "Audit records queued, not yet committed", pending),
            ("bartizan_audit_written", "Audit records committed by this process", written),
            ("bartizan_audit_dropped", "Audit records the database refused", dropped),
        ):
            Gauge(name, doc, registry=self.registry).set_function(fn)

    def record(self, direction: str, inspection: Inspection) -> None:
        self.verdicts.labels(direction, inspection.verdict.value).inc()
        self.scan_seconds.labels(direction).observe(inspection.latency_ms / 1000.0)
        for f in inspection.findings():
            self.findings.labels(f["detector"], f["category"], direction).inc()
        for name in inspection.failed_detectors():
            self.detector_failures.labels(name).inc()

    def render(self) -> bytes:
        out: bytes = generate_latest(self.registry)
        return out
