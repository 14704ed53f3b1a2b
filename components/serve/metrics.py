"""Prometheus metrics of the model server, served at /metrics beside KServe's own histograms.

Names, labels and buckets come from components/common/serving_metrics.py (the canary analysis
reads the same module):

  mlpipe_serve_requests_total{model,endpoint,code}        every HTTP request, by status code
  mlpipe_serve_errors_total{model,endpoint,code}          the non-2xx ones
  mlpipe_serve_request_duration_seconds{model,endpoint}   latency histogram (server side)
  mlpipe_serve_rows_total{model,endpoint}                 rows scored
  mlpipe_serve_prediction_score{model,model_version}      histogram of the scores answered
endpoint: v1_predict, v2_infer, health, metadata, metrics, other.
"""

from __future__ import annotations

import threading

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from components.common import serving_metrics as names

BUCKETS = names.LATENCY_BUCKETS


class ScoreHistogram(Collector):
    """The score histogram: a whole batch's scores in one numpy call (a prometheus_client
    Histogram takes one observation, and one lock, per score)."""

    def __init__(self, model: str, version: str) -> None:
        self.labels = [model, version]
        self.bounds = np.asarray(names.SCORE_BUCKETS, dtype=np.float64)
        self._counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)  # last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, scores: np.ndarray) -> None:
        # bucket i holds bounds[i-1] < s <= bounds[i] (Prometheus' `le`)
        index = np.searchsorted(self.bounds, scores, side="left")
        counts = np.bincount(index, minlength=len(self._counts))
        total = float(np.sum(scores))
        with self._lock:
            self._counts += counts
            self._sum += total

    def collect(self):
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        buckets = [(f"{b:g}", c) for b, c in zip(names.SCORE_BUCKETS, cumulative, strict=False)]
        buckets.append(("+Inf", cumulative[-1]))
        family = HistogramMetricFamily(
            names.SCORE,
            "Scores answered (P(label = 1), one per row)",
            labels=list(names.SCORE_LABELS),
        )
        family.add_metric(self.labels, buckets, total)
        yield family


class ServerMetrics:
    def __init__(
        self, model: str, registry: CollectorRegistry = REGISTRY, version: str = ""
    ) -> None:
        self.model = model
        self.requests = Counter(
            names.REQUESTS,
            "HTTP requests by endpoint and status code",
            list(names.REQUEST_LABELS),
            registry=registry,
        )
        self.errors = Counter(
            names.ERRORS,
            "HTTP requests answered with a non-2xx status",
            list(names.REQUEST_LABELS),
            registry=registry,
        )
        self.latency = Histogram(
            names.LATENCY,
            "Server-side request latency",
            list(names.LATENCY_LABELS),
            buckets=BUCKETS,
            registry=registry,
        )
        self.rows = Counter(names.ROWS, "Rows scored", list(names.ROWS_LABELS), registry=registry)
        self.scores = ScoreHistogram(model, version)
        registry.register(self.scores)
        self._registry = registry
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

    def observe_scores(self, scores: np.ndarray) -> None:
        self.scores.observe(scores)

    def new_version(self, version: str) -> None:
        """Scores from now on are another model version's (a server that follows an alias):
        a fresh histogram under the new `model_version` label."""
        scores = ScoreHistogram(self.model, version)
        registry = getattr(self, "_registry", REGISTRY)
        registry.unregister(self.scores)
        registry.register(scores)
        self.scores = scores


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
