"""Prometheus metrics of the model server, served at /metrics beside KServe's own histograms.

  mlpipe_serve_requests_total{model,endpoint,code}        every HTTP request, by status code
  mlpipe_serve_errors_total{model,endpoint,code}          the non-2xx ones
  mlpipe_serve_request_duration_seconds{model,endpoint}   latency histogram (server side)
  mlpipe_serve_rows_total{model,endpoint}                 rows scored
endpoint: v1_predict, v2_infer, health, metadata, metrics, other.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    def __init__(self, model: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.model = model
        self.requests = Counter(
            "mlpipe_serve_requests",
            "HTTP requests by endpoint and status code",
            ["model", "endpoint", "code"],
            registry=registry,
        )
        self.errors = Counter(
            "mlpipe_serve_errors",
            "HTTP requests answered with a non-2xx status",
            ["model", "endpoint", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "mlpipe_serve_request_duration_seconds",
            "Server-side request latency",
            ["model", "endpoint"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            "mlpipe_serve_rows", "Rows scored", ["model", "endpoint"], registry=registry
        )
        self._children: dict[tuple[str, int], tuple] = {}

    def observe(self, endpoint: str, code: int, seconds: float, rows: int = 0) -> None:
        # label lookups cost more than the increments: keep the children per (endpoint, code)
        key = (endpoint, code)
        children = self._children.get(key)
        if children is None:
            labels = (self.model, endpoint)
            children = (
                self.requests.labels(*labels, str(code)),
                self.errors.labels(*labels, str(code)) if code >= 300 else None,
                self.latency.labels(*labels),
                self.rows.labels(*labels),
            )
            self._children[key] = children
        requests, errors, latency, row_counter = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(seconds)
        if rows:
            row_counter.inc(rows)


def endpoint_of(path: str) -> str:
    if path.endswith(":predict"):
        return "v1_predict"
    if path.endswith("/infer"):
        return "v2_infer"
    if path == "/metrics":
        return "metrics"
    if path in ("/", "/v2/health/live", "/v2/health/ready") or path.endswith("/ready"):
        return "health"
    if path.startswith(("/v1/models", "/v2")):
        return "metadata"
    return "other"
