"""The canary analysis' metrics sources and their contract with the model server.

- `PrometheusMetrics` against a real HTTP server speaking Prometheus' query API. The fake is
  strict: it answers only series the model server exports (the names in
  components/common/serving_metrics.py) and an empty result for any other, as Prometheus does
  for a series nobody exports.
- `ScrapeMetrics` against HTTP servers serving the server's own metrics (prometheus_client text):
  deltas between scrapes, several pods summed, a restarted pod, timeouts and size bounds.
- The contract: the real model server's `/metrics`, after real requests, holds every series and
  label the analysis queries (PromQL and scrape), and ScrapeMetrics reads the right figures off
  it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from components.common import serving_metrics as names
from components.deploy.metrics import MetricsError, PrometheusMetrics, ScrapeMetrics
from components.serve.launch import start_server
from components.serve.metrics import ServerMetrics
from tests.components.serve import conftest as serve_fixtures
from tests.components.serve.conftest import offline_predictions

# the serve tests' small real model (tests/components/serve/conftest.py's fixtures, not seen here)
lgbm_model_dir = serve_fixtures.lgbm_model_dir
test_rows = serve_fixtures.test_rows

NS = "mlpipe"
SELECTOR_LABELS = {"namespace", "predictor"}  # added by Prometheus' scrape config, not the server
SERIES_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')


def promql_series(promql: str) -> dict[str, set[str]]:
    """The series a PromQL expression selects, with the labels it matches or groups by."""
    found: dict[str, set[str]] = {}
    for name, matchers in SERIES_RE.findall(promql):
        found.setdefault(name, set()).update(MATCHER_RE.findall(matchers))
    for group in re.findall(r"by \(([^)]*)\)", promql):
        for labels in found.values():
            labels.update(x.strip() for x in group.split(","))
    return found


# ---------------------------------------------------------------- Prometheus adapter


@pytest.fixture
def prometheus():
    """A real HTTP server speaking Prometheus' query API with canned answers, for the exported
    series only (anything else: an empty vector, as Prometheus answers)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            query = parse_qs(urlparse(self.path).query)["query"][0]
            seen.append(query)
            exported = all(name in names.SERIES for name in promql_series(query))
            if "bad" in query:
                result, status = {"status": "error", "error": "parse error"}, 400
            elif not exported or not promql_series(query):
                result, status = _vector([]), 200
            elif query.startswith("histogram_quantile"):
                result, status = _vector([({}, "4.2")]), 200  # ms (the query scales)
            elif "sum by (le)" in query:
                buckets = [({"le": "0.25"}, "60"), ({"le": "0.5"}, "70"), ({"le": "1"}, "100")]
                result, status = _vector([*buckets, ({"le": "+Inf"}, "100")]), 200
            elif 'code=~"5.."' in query:
                result, status = _vector([({}, "3")]), 200
            elif 'code=~"4.."' in query:
                result, status = _vector([({}, "4")]), 200
            else:
                result, status = _vector([({}, "100")]), 200
            body = json.dumps(result).encode()
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def _vector(items):
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1700000000, v]} for m, v in items],
        },
    }


def test_prometheus_queries_and_window(prometheus):
    url, seen = prometheus
    source = PrometheusMetrics(url, NS)
    q = source.queries("acs-v2", 60)
    assert q["requests"] == (
        'sum(increase(mlpipe_serve_requests_total{namespace="mlpipe",predictor="acs-v2",'
        'endpoint=~"v1_predict|v2_infer"}[60s]))'
    )
    assert 'code=~"5.."' in q["errors"] and "histogram_quantile(0.99" in q["p99_ms"]
    assert 'code=~"4.."' in q["client_errors"]
    window = source.window("acs-v2", 100.0, 160.0)
    assert (window.requests, window.errors, window.p99_ms) == (100, 3, pytest.approx(4.2))
    assert window.client_errors == 4 and window.answered_requests == 100 - 3 - 4
    assert len(window.scores) == 100
    assert window.scores.count(0.125) == 60 and window.scores.count(0.75) == 30
    assert set(seen) == set(q.values())


def test_the_fake_prometheus_answers_nothing_for_a_series_nobody_exports(prometheus):
    url, _ = prometheus
    # the names the analysis used to query, which the server never exported
    old = PrometheusMetrics(
        url,
        NS,
        requests_metric="mlpipe_requests_total",
        latency_metric="mlpipe_request_duration_seconds",
        score_metric="mlpipe_prediction_score",
    )
    window = old.window("acs-v2", 100.0, 160.0)
    assert (window.requests, window.errors, window.latencies_ms, window.scores) == (0, 0, [], [])
    answer = requests.get(f"{url}/api/v1/query", params={"query": "sum(up{job='x'})"}, timeout=5)
    assert answer.json()["data"]["result"] == []


def test_prometheus_errors_are_reported(prometheus):
    url, _ = prometheus
    source = PrometheusMetrics(url, NS, requests_metric="bad_metric")
    with pytest.raises(MetricsError, match="parse error"):
        source.window("acs-v2", 0, 60)
    with pytest.raises(MetricsError, match="127.0.0.1:9"):
        PrometheusMetrics("http://127.0.0.1:9", NS).window("acs-v2", 0, 60)


# ---------------------------------------------------------------- scraping the servers


class FakePod:
    """An HTTP server answering /metrics with a real ServerMetrics' exposition text."""

    def __init__(self, model: str = "acs", version: str = "2") -> None:
        self.registry = CollectorRegistry()
        self.metrics = ServerMetrics(model, self.registry, version=version)
        self.delay = 0.0
        self.padding = 0
        pod = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                time.sleep(pod.delay)
                body = generate_latest(pod.registry) + b"#" * pod.padding
                try:
                    self.send_response(200 if self.path == "/metrics" else 404)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # a client that gave up
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, n: int, code: int = 200, seconds: float = 0.004, score: float = 0.3):
        for _ in range(n):
            self.metrics.observe("v1_predict", code, seconds, 1 if code == 200 else 0)
            if code == 200:
                self.metrics.observe_scores(np.array([score]))

    def restart(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = ServerMetrics("acs", self.registry, version="2")

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def pods():
    made = [FakePod(), FakePod(), FakePod(version="3")]
    yield made
    for pod in made:
        pod.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_scrape_window_is_the_difference_summed_over_pods(pods):
    stable_a, stable_b, canary = pods
    clock = Clock()
    source = ScrapeMetrics(
        {"acs-v2": [stable_a.url, stable_b.url + "/"], "acs-v3": lambda: [canary.url]},
        clock=clock,
    )
    stable_a.serve(50)  # before the window: not counted
    clock.now = 10.0
    source.mark("acs-v2")
    source.mark("acs-v3")
    stable_a.serve(30, seconds=0.004, score=0.31)
    stable_b.serve(20, seconds=0.02, score=0.71)
    stable_b.serve(5, code=503)
    stable_a.metrics.observe("health", 200, 0.001)  # probes and scrapes never count
    canary.serve(7, code=500)
    canary.serve(4, code=400)  # a candidate refusing requests: counted apart from 5xx
    canary.serve(3, score=0.95)
    clock.now = 70.0
    stable = source.window("acs-v2", 10.0, 70.0)
    assert (stable.requests, stable.errors, stable.seconds) == (55, 5, 60.0)
    assert len(stable.scores) == 50
    assert stable.scores.count(pytest.approx(0.31)) == 30  # bucket (0.3, 0.32]: midpoint 0.31
    assert stable.scores.count(pytest.approx(0.71)) == 20
    assert len(stable.latencies_ms) == 55
    assert 3 < stable.percentile_ms(50) <= 5 and 10 < stable.p99_ms <= 25
    canary_window = source.window("acs-v3", 10.0, 70.0)
    assert (canary_window.requests, canary_window.errors) == (14, 7)
    assert canary_window.client_errors == 4 and stable.client_errors == 0
    assert canary_window.answered_requests == 3
    assert canary_window.scores == [pytest.approx(0.95)] * 3
    # the next window starts at the end of this one
    stable_a.serve(4)
    clock.now = 130.0
    later = source.window("acs-v2", 70.0, 130.0)
    assert (later.requests, later.errors, later.seconds) == (4, 0, 60.0)


def test_a_restarted_pod_counts_from_zero_and_a_first_window_from_its_first_scrape(pods):
    pod = pods[0]
    clock = Clock()
    source = ScrapeMetrics({"acs-v2": [pod.url]}, clock=clock)
    pod.serve(40)
    clock.now = 5.0
    first = source.window("acs-v2", 0.0, 5.0)  # no scrape at or before 0: starts now
    assert (first.requests, first.seconds) == (0, 0.0)
    pod.restart()
    pod.serve(6)
    clock.now = 10.0
    assert source.window("acs-v2", 0.0, 10.0).requests == 6


def test_scrape_failures_are_metrics_errors(pods):
    pod = pods[0]
    with pytest.raises(MetricsError, match="no scrape endpoints"):
        ScrapeMetrics({"acs-v2": [pod.url]}).window("acs-v9", 0, 1)
    with pytest.raises(MetricsError, match="127.0.0.1:9"):
        ScrapeMetrics({"acs-v2": ["http://127.0.0.1:9"]}).window("acs-v2", 0, 1)
    with pytest.raises(MetricsError, match="HTTP 404"):
        ScrapeMetrics({"acs-v2": [pod.url + "/elsewhere"]}).window("acs-v2", 0, 1)
    pod.padding = 300_000
    with pytest.raises(MetricsError, match="more than 100000 bytes"):
        ScrapeMetrics({"acs-v2": [pod.url]}, max_bytes=100_000).window("acs-v2", 0, 1)
    pod.padding, pod.delay = 0, 1.5
    started = time.monotonic()
    with pytest.raises(MetricsError, match="timed out"):
        ScrapeMetrics({"acs-v2": [pod.url]}, timeout_s=0.3).window("acs-v2", 0, 1)
    assert time.monotonic() - started < 1.4


# ---------------------------------------------------------------- contract with the real server

NAME = "acs"


@pytest.fixture(scope="module")
def offline(lgbm_model_dir, test_rows):
    _, rows, predictions = offline_predictions(lgbm_model_dir, test_rows, 30)
    return rows, predictions


def _exported(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def test_the_real_server_exports_every_series_and_label_the_analysis_reads(lgbm_model_dir, offline):
    rows, want = offline
    with start_server(lgbm_model_dir, NAME, fault="error:0.5") as server:
        clock = Clock()
        source = ScrapeMetrics({"acs-v2": [server.url]}, model=NAME, clock=clock)
        source.mark("acs-v2")
        codes = []
        with requests.Session() as http:
            for row in rows:
                codes.append(http.post(server.v1_url, json={"instances": [row]}, timeout=10))
            bad = http.post(server.v1_url, json={"instances": [rows[0]], "x": 1}, timeout=10)
            http.get(f"{server.url}/v2/health/ready", timeout=10)
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        clock.now = 30.0
        window = source.window("acs-v2", 0.0, 30.0)

    exported = _exported(text)
    assert set(names.SERIES) <= set(exported)
    for series, labels in names.SERIES.items():
        assert set(labels) <= exported[series], series
    for what, promql in PrometheusMetrics("http://prometheus", NS).queries("acs-v2", 30).items():
        queried = promql_series(promql)
        assert queried, what
        for series, labels in queried.items():
            assert series in exported, f"{what}: {series} is not exported"
            missing = labels - SELECTOR_LABELS - exported[series]
            assert not missing, f"{what}: {series} has no label(s) {missing}"

    ok = [r for r in codes if r.status_code == 200]
    assert 0 < len(ok) < len(rows) and bad.status_code in (400, 500)
    served = len(rows) + 1  # the malformed request is a prediction request too
    assert window.requests == served
    assert window.errors == sum(r.status_code >= 500 for r in [*codes, bad])
    assert window.client_errors == sum(400 <= r.status_code < 500 for r in [*codes, bad])
    assert len(window.scores) == len(ok) and window.latencies_ms
    answered = sorted(r.json()["predictions"][0] for r in ok)
    assert np.allclose(answered, sorted(want[[c.status_code == 200 for c in codes]]), atol=1e-12)
    # the binned scores sit within half a bucket (0.01) of the answers
    assert np.allclose(sorted(window.scores), answered, atol=0.01 + 1e-9)


def test_the_contract_check_sees_a_missing_series_or_label():
    pod = FakePod()
    try:
        pod.serve(3)
        pod.serve(1, code=500)  # a labelled counter's series appears with its first increment
        exported = _exported(generate_latest(pod.registry).decode())
    finally:
        pod.close()
    wrong_label = 'sum(increase(mlpipe_serve_prediction_score_bucket{endpoint="v2_infer"}[1m]))'
    assert promql_series(wrong_label) == {"mlpipe_serve_prediction_score_bucket": {"endpoint"}}
    assert "endpoint" not in exported["mlpipe_serve_prediction_score_bucket"]
    assert "mlpipe_requests_total" not in exported  # the analysis' old name
    assert set(names.SERIES) <= set(exported)
