"""components/common/serving_metrics.py: the SERIES table is what the model server's metrics
really export (components/serve/metrics.py's ServerMetrics, built on a fresh prometheus_client
registry, after real requests are recorded, read back from the Prometheus text format a scrape
gets), the score buckets' shape, and the PromQL regex of the prediction endpoints.

tests/components/deploy/test_metrics.py checks the same contract through a running server and
the canary analysis' queries; this module checks it without a server."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from components.common import serving_metrics as names
from components.serve.metrics import ServerMetrics, endpoint_of

MODEL = "acs-employment"


def _samples(registry: CollectorRegistry) -> list:
    """Every sample a scrape of `registry` reads (the text format, parsed back)."""
    text = generate_latest(registry).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _exported(registry: CollectorRegistry) -> dict[str, set[str]]:
    """sample name -> label names, without prometheus_client's `_created` timestamps (no query
    reads them)."""
    found: dict[str, set[str]] = {}
    for sample in _samples(registry):
        if not sample.name.endswith("_created"):
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


@pytest.fixture()
def served() -> CollectorRegistry:
    """The server's metrics after one answered prediction request (2 rows scored) and one that
    failed (a labelled counter exports a series only once it was incremented)."""
    registry = CollectorRegistry()
    metrics = ServerMetrics(MODEL, registry=registry, version="3")
    metrics.observe("v1_predict", 200, 0.004, rows=2)
    metrics.observe_scores(np.array([0.1, 0.73]))
    metrics.observe("v2_infer", 503, 0.2)
    return registry


# ---------------------------------------------------------------- SERIES


def test_series_are_exactly_what_the_server_exports_with_their_labels(served):
    exported = _exported(served)
    assert set(exported) == set(names.SERIES)
    for series, labels in names.SERIES.items():
        assert exported[series] == set(labels), series
        assert len(set(labels)) == len(labels), series  # no label named twice


def test_the_exported_values_sit_under_the_series_and_labels_the_table_names(served):
    ok = {names.MODEL: MODEL, names.ENDPOINT: "v1_predict"}
    failed = {names.MODEL: MODEL, names.ENDPOINT: "v2_infer"}
    assert _value(served, f"{names.REQUESTS}_total", **ok, code="200") == 1
    assert _value(served, f"{names.REQUESTS}_total", **failed, code="503") == 1
    assert _value(served, f"{names.ERRORS}_total", **failed, code="503") == 1
    assert served.get_sample_value(f"{names.ERRORS}_total", {**ok, "code": "200"}) is None
    assert _value(served, f"{names.ROWS}_total", **ok) == 2
    assert _value(served, f"{names.LATENCY}_count", **ok) == 1
    assert _value(served, f"{names.LATENCY}_sum", **failed) == pytest.approx(0.2)
    score = {names.MODEL: MODEL, names.MODEL_VERSION: "3"}
    assert _value(served, f"{names.SCORE}_count", **score) == 2
    assert _value(served, f"{names.SCORE}_sum", **score) == pytest.approx(0.83)


def test_histogram_buckets_are_the_declared_bounds(served):
    bounds: dict[str, list[str]] = {}
    for sample in _samples(served):
        if sample.name.endswith("_bucket"):
            bounds.setdefault(sample.name, []).append(sample.labels[names.LE])
    for name, declared in (
        (names.LATENCY, names.LATENCY_BUCKETS),
        (names.SCORE, names.SCORE_BUCKETS),
    ):
        les = bounds[f"{name}_bucket"]
        assert les[-1] == "+Inf"
        finite = sorted({float(le) for le in les if le != "+Inf"})
        assert finite == list(declared), name


def test_a_new_model_version_keeps_the_series_and_labels():
    registry = CollectorRegistry()
    metrics = ServerMetrics(MODEL, registry=registry, version="3")
    metrics.observe("v1_predict", 200, 0.01, rows=1)
    metrics.observe("other", 404, 0.001)
    metrics.observe_scores(np.array([0.5]))
    metrics.new_version("4")  # a server following an alias
    metrics.observe_scores(np.array([0.9, 0.2]))
    assert _exported(registry) == {s: set(labels) for s, labels in names.SERIES.items()}
    versions = {
        s.labels[names.MODEL_VERSION] for s in _samples(registry) if s.name.startswith(names.SCORE)
    }
    assert versions == {"4"}
    assert _value(registry, f"{names.SCORE}_count", model=MODEL, model_version="4") == 2


def test_the_server_metrics_need_no_global_registry():
    before = {family.name for family in REGISTRY.collect()}
    for _ in range(2):  # twice: a second server on its own registry does not collide
        registry = CollectorRegistry()
        ServerMetrics(MODEL, registry=registry).observe("health", 200, 0.001)
        assert f"{names.REQUESTS}_total" in _exported(registry)
    assert {family.name for family in REGISTRY.collect()} == before


# ---------------------------------------------------------------- SCORE_BUCKETS


def test_score_buckets_are_50_strictly_increasing_bins_ending_at_one():
    buckets = names.SCORE_BUCKETS
    assert len(buckets) == 50
    assert all(a < b for a, b in itertools.pairwise(buckets))
    assert buckets[0] > 0 and buckets[-1] == 1.0
    widths = np.diff((0.0, *buckets))
    np.testing.assert_allclose(widths, 0.02, atol=1e-12)  # equal bins: PSI and KS run on them


def test_every_probability_lands_in_a_finite_score_bucket():
    registry = CollectorRegistry()
    metrics = ServerMetrics(MODEL, registry=registry, version="1")
    metrics.observe_scores(np.array([0.0, 0.02, 0.5, 0.999, 1.0]))
    labels = {names.MODEL: MODEL, names.MODEL_VERSION: "1"}
    last = _value(registry, f"{names.SCORE}_bucket", **labels, le="1")
    assert last == _value(registry, f"{names.SCORE}_bucket", **labels, le="+Inf") == 5
    # `le` is inclusive: 0.0 and 0.02 are both in the first bucket
    assert _value(registry, f"{names.SCORE}_bucket", **labels, le="0.02") == 2


# ---------------------------------------------------------------- predict_endpoints_regex


def test_the_regex_matches_the_prediction_endpoints_only():
    regex = names.predict_endpoints_regex()
    # PromQL anchors a label regex at both ends: fullmatch is what Prometheus does
    matched = {e for e in names.ENDPOINTS if re.fullmatch(regex, e)}
    assert matched == {"v1_predict", "v2_infer"}
    for not_predict in ("health", "metrics", "metadata", "other", "v1_predictx", "xv2_infer"):
        assert not re.fullmatch(regex, not_predict), not_predict


@pytest.mark.parametrize(
    "path, predicts",
    [
        ("/v1/models/acs:predict", True),
        ("/v2/models/acs/infer", True),
        ("/v2/models/acs/versions/3/infer", True),
        ("/v2/health/ready", False),
        ("/v2/health/live", False),
        ("/", False),
        ("/metrics", False),
        ("/v1/models/acs", False),
        ("/v2/models/acs", False),
        ("/docs", False),
    ],
)
def test_the_server_labels_its_paths_with_endpoints_the_regex_sorts_right(path, predicts):
    endpoint = endpoint_of(path)
    assert endpoint in names.ENDPOINTS
    assert bool(re.fullmatch(names.predict_endpoints_regex(), endpoint)) is predicts


def test_latency_buckets_increase():
    buckets = names.LATENCY_BUCKETS
    assert all(a < b for a, b in itertools.pairwise(buckets))
    assert all(math.isfinite(b) and b > 0 for b in buckets)
