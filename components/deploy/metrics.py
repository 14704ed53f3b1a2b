"""Where a cluster rollout's analysis windows come from: a `MetricsSource` answers, for one
predictor revision, what it served between two instants.

`PrometheusMetrics` renders PromQL per predictor and reads Prometheus' HTTP API
(`GET /api/v1/query`). It assumes the model server exports (names configurable):
- `mlpipe_requests_total{code}` — a counter of requests by HTTP status;
- `mlpipe_request_duration_seconds_bucket{le}` — a latency histogram;
- `mlpipe_prediction_score_bucket{le}` — a histogram of the scores it returned;
and that the scrape config labels series with the namespace and the predictor revision
(`selector`, default `namespace="{namespace}",predictor="{predictor}"`).

Prometheus holds aggregates, not samples, so the window it returns is an approximation: the
latency samples are just the p99 (histogram_quantile over the window), and the scores are the
score histogram's bucket midpoints repeated by their counts (PSI and KS on binned scores).
"""

from __future__ import annotations

from typing import Protocol

import httpx

from components.deploy.windows import Window


class MetricsSource(Protocol):
    def window(self, predictor: str, start: float, end: float) -> Window:
        """What `predictor` served between `start` and `end` (seconds, monotonic)."""
        ...


class MetricsError(RuntimeError):
    pass


class PrometheusMetrics:
    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        selector: str = 'namespace="{namespace}",predictor="{predictor}"',
        requests_metric: str = "mlpipe_requests_total",
        latency_metric: str = "mlpipe_request_duration_seconds",
        score_metric: str = "mlpipe_prediction_score",
        max_score_samples: int = 20_000,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.selector = selector
        self.requests_metric = requests_metric
        self.latency_metric = latency_metric
        self.score_metric = score_metric
        self.max_score_samples = max_score_samples
        self.timeout_s = timeout_s

    def queries(self, predictor: str, seconds: float) -> dict[str, str]:
        """The PromQL of one window: requests, errors, p99 (ms) and the score histogram."""
        sel = self.selector.format(namespace=self.namespace, predictor=predictor)
        rng = f"[{max(1, round(seconds))}s]"
        return {
            "requests": f"sum(increase({self.requests_metric}{{{sel}}}{rng}))",
            "errors": f'sum(increase({self.requests_metric}{{{sel},code=~"5.."}}{rng}))',
            "p99_ms": (
                "histogram_quantile(0.99, sum by (le) "
                f"(rate({self.latency_metric}_bucket{{{sel}}}{rng}))) * 1000"
            ),
            "scores": f"sum by (le) (increase({self.score_metric}_bucket{{{sel}}}{rng}))",
        }

    def _query(self, client: httpx.Client, promql: str) -> list[dict]:
        try:
            resp = client.get(f"{self.url}/api/v1/query", params={"query": promql})
            doc = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise MetricsError(f"Prometheus at {self.url}: {exc}") from exc
        if resp.status_code != 200 or doc.get("status") != "success":
            raise MetricsError(f"Prometheus refused {promql!r}: {doc.get('error', resp.text)}")
        return doc["data"]["result"]

    @staticmethod
    def _scalar(result: list[dict]) -> float:
        if not result:
            return 0.0
        value = float(result[0]["value"][1])
        return 0.0 if value != value else value  # NaN (no traffic) -> 0

    def window(self, predictor: str, start: float, end: float) -> Window:
        q = self.queries(predictor, end - start)
        with httpx.Client(timeout=self.timeout_s) as client:
            requests = round(self._scalar(self._query(client, q["requests"])))
            errors = round(self._scalar(self._query(client, q["errors"])))
            p99 = self._scalar(self._query(client, q["p99_ms"]))
            buckets = self._query(client, q["scores"])
        return Window(
            requests, errors, [p99] if requests else [], self._scores(buckets), end - start
        )

    def _scores(self, result: list[dict]) -> list[float]:
        """Bucket midpoints repeated by count (cumulative `le` buckets -> per bucket)."""
        edges = sorted(
            (float(r["metric"]["le"]), float(r["value"][1]))
            for r in result
            if r["metric"].get("le") not in (None, "+Inf")
        )
        samples: list[tuple[float, float]] = []
        lower, below = 0.0, 0.0
        for le, cumulative in edges:
            samples.append(((lower + le) / 2, max(0.0, cumulative - below)))
            lower, below = le, cumulative
        total = sum(c for _, c in samples)
        if total <= 0:
            return []
        scale = min(1.0, self.max_score_samples / total)
        return [mid for mid, count in samples for _ in range(round(count * scale))]
