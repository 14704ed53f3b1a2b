"""The model server's Prometheus metrics (serve/metrics.py), read back from a real registry."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from components.common import serving_metrics as names
from components.serve.metrics import ScoreHistogram, ServerMetrics, endpoint_of


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_observe_counts_requests_errors_latency_and_rows_per_endpoint_and_code():
    registry = CollectorRegistry()
    metrics = ServerMetrics("acs", registry, "3")
    metrics.observe("v1_predict", 200, 0.004, rows=5)
    metrics.observe("v1_predict", 200, 0.2, rows=2)
    metrics.observe("v1_predict", 400, 0.001)
    metrics.observe("health", 200, 0.0001)
    req = f"{names.REQUESTS}_total"
    assert _value(registry, req, model="acs", endpoint="v1_predict", code="200") == 2
    assert _value(registry, req, model="acs", endpoint="v1_predict", code="400") == 1
    assert _value(registry, req, model="acs", endpoint="health", code="200") == 1
    err = f"{names.ERRORS}_total"
    assert _value(registry, err, model="acs", endpoint="v1_predict", code="400") == 1
    # a 2xx is no error: no error series at all for it
    assert _value(registry, err, model="acs", endpoint="v1_predict", code="200") is None
    rows = f"{names.ROWS}_total"
    assert _value(registry, rows, model="acs", endpoint="v1_predict") == 7
    assert _value(registry, rows, model="acs", endpoint="health") == 0
    lat = names.LATENCY
    assert _value(registry, f"{lat}_count", model="acs", endpoint="v1_predict") == 3
    assert _value(registry, f"{lat}_sum", model="acs", endpoint="v1_predict") == pytest.approx(
        0.205
    )
    assert _value(registry, f"{lat}_bucket", model="acs", endpoint="v1_predict", le="0.005") == 2


@pytest.mark.parametrize("code", [300, 404, 500, 503])
def test_every_non_2xx_code_is_an_error(code):
    registry = CollectorRegistry()
    ServerMetrics("acs", registry).observe("v2_infer", code, 0.01)
    err = f"{names.ERRORS}_total"
    assert _value(registry, err, model="acs", endpoint="v2_infer", code=str(code)) == 1


def test_two_servers_on_one_registry_collide():
    """The metric names are fixed: a second set on the same registry is refused."""
    registry = CollectorRegistry()
    ServerMetrics("acs", registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ServerMetrics("acs", registry)


def test_score_histogram_buckets_follow_prometheus_le():
    registry = CollectorRegistry()
    metrics = ServerMetrics("acs", registry, "7")
    # 0.02 is a bound: it belongs to its own bucket (le="0.02"), 0.021 to the next
    metrics.observe_scores(np.array([0.0, 0.02, 0.021, 0.5, 1.0]))
    metrics.observe_scores(np.array([0.99]))
    bucket = f"{names.SCORE}_bucket"
    labels = {"model": "acs", "model_version": "7"}
    assert _value(registry, bucket, le="0.02", **labels) == 2
    assert _value(registry, bucket, le="0.04", **labels) == 3
    assert _value(registry, bucket, le="0.5", **labels) == 4
    assert _value(registry, bucket, le="0.98", **labels) == 4
    assert _value(registry, bucket, le="1", **labels) == 6
    assert _value(registry, bucket, le="+Inf", **labels) == 6
    assert _value(registry, f"{names.SCORE}_count", **labels) == 6
    assert _value(registry, f"{names.SCORE}_sum", **labels) == pytest.approx(2.531)


def test_a_score_above_every_bound_is_counted_in_inf_only():
    hist = ScoreHistogram("acs", "1")
    hist.observe(np.array([1.5, 0.5]))
    family = next(iter(hist.collect()))
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[(f"{names.SCORE}_bucket", "1")] == 1
    assert samples[(f"{names.SCORE}_bucket", "+Inf")] == 2
    assert samples[(f"{names.SCORE}_count", None)] == 2


def test_an_empty_batch_changes_nothing():
    hist = ScoreHistogram("acs", "1")
    hist.observe(np.array([], dtype=np.float64))
    family = next(iter(hist.collect()))
    assert all(s.value == 0 for s in family.samples)


def test_new_version_starts_a_fresh_histogram_under_the_new_label():
    registry = CollectorRegistry()
    metrics = ServerMetrics("acs", registry, "1")
    metrics.observe_scores(np.array([0.1, 0.2]))
    metrics.new_version("2")
    metrics.observe_scores(np.array([0.3]))
    count = f"{names.SCORE}_count"
    assert _value(registry, count, model="acs", model_version="1") is None  # unregistered
    assert _value(registry, count, model="acs", model_version="2") == 1


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/v1/models/acs:predict", "v1_predict"),
        ("/v2/models/acs/infer", "v2_infer"),
        ("/v2/models/acs/versions/3/infer", "v2_infer"),
        ("/metrics", "metrics"),
        ("/", "health"),
        ("/v2/health/live", "health"),
        ("/v2/health/ready", "health"),
        ("/v2/models/acs/ready", "health"),
        ("/v1/models/acs", "metadata"),
        ("/v2/models/acs", "metadata"),
        ("/v2", "metadata"),
        ("/favicon.ico", "other"),
        ("", "other"),
        ("/metrics/extra", "other"),
    ],
)
def test_endpoint_of(path, endpoint):
    assert endpoint_of(path) == endpoint
    assert endpoint in names.ENDPOINTS
