"""The model server's Prometheus metrics: names, labels and buckets, in one place.

The model server (components/serve/metrics.py) exports these and the canary analysis
(components/deploy/metrics.py) reads them — through Prometheus' PromQL or by scraping the
servers' own `/metrics` — so both import the names from here (a stage never imports another).

  mlpipe_serve_requests_total{model,endpoint,code}            every HTTP request, by status code
  mlpipe_serve_errors_total{model,endpoint,code}              the non-2xx ones
  mlpipe_serve_request_duration_seconds{model,endpoint}       latency histogram (server side)
  mlpipe_serve_rows_total{model,endpoint}                     rows scored
  mlpipe_serve_prediction_score{model,model_version}          histogram of the scores answered
                                                              (P(label = 1), one per row)
endpoint: v1_predict, v2_infer, health, metadata, metrics, other.
"""

from __future__ import annotations

# metric names as prometheus_client takes them (a counter's samples get `_total`, a histogram's
# `_bucket`, `_sum` and `_count`)
REQUESTS = "mlpipe_serve_requests"
ERRORS = "mlpipe_serve_errors"
LATENCY = "mlpipe_serve_request_duration_seconds"
ROWS = "mlpipe_serve_rows"
SCORE = "mlpipe_serve_prediction_score"

# labels
MODEL = "model"
ENDPOINT = "endpoint"
CODE = "code"
MODEL_VERSION = "model_version"
LE = "le"  # a histogram bucket's upper bound (prometheus_client adds it)

REQUEST_LABELS = (MODEL, ENDPOINT, CODE)
LATENCY_LABELS = (MODEL, ENDPOINT)
ROWS_LABELS = (MODEL, ENDPOINT)
SCORE_LABELS = (MODEL, MODEL_VERSION)

# the endpoints that answer predictions: what the analysis counts (never health probes or scrapes)
PREDICT_ENDPOINTS = ("v1_predict", "v2_infer")
ENDPOINTS = (*PREDICT_ENDPOINTS, "health", "metadata", "metrics", "other")

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# scores are probabilities: 50 buckets of 0.02 (PSI and KS of the canary run on these bins)
SCORE_BUCKETS = tuple(round(i / 50, 2) for i in range(1, 51))

# the series (sample names) the server exports, with the labels each carries
SERIES: dict[str, tuple[str, ...]] = {
    f"{REQUESTS}_total": REQUEST_LABELS,
    f"{ERRORS}_total": REQUEST_LABELS,
    f"{LATENCY}_bucket": (*LATENCY_LABELS, LE),
    f"{LATENCY}_sum": LATENCY_LABELS,
    f"{LATENCY}_count": LATENCY_LABELS,
    f"{ROWS}_total": ROWS_LABELS,
    f"{SCORE}_bucket": (*SCORE_LABELS, LE),
    f"{SCORE}_sum": SCORE_LABELS,
    f"{SCORE}_count": SCORE_LABELS,
}


def predict_endpoints_regex() -> str:
    """The PromQL regex matching the prediction endpoints (`v1_predict|v2_infer`)."""
    return "|".join(PREDICT_ENDPOINTS)
