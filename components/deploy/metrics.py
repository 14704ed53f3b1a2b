"""Where a cluster rollout's analysis windows come from: a `MetricsSource` answers, for one
predictor revision, what it served between two instants.

Both sources read the series the model server exports; their names and labels live in
components/common/serving_metrics.py, which the server imports too:
- `mlpipe_serve_requests_total{model,endpoint,code}` — requests by endpoint and HTTP status
  (only `endpoint` v1_predict / v2_infer count: never health probes or scrapes);
- `mlpipe_serve_request_duration_seconds_bucket{model,endpoint,le}` — the latency histogram;
- `mlpipe_serve_prediction_score_bucket{model,model_version,le}` — the scores it answered.

`PrometheusMetrics` renders PromQL per predictor and reads Prometheus' HTTP API
(`GET /api/v1/query`); it assumes the scrape config labels series with the namespace and the
predictor revision (`selector`, default `namespace="{namespace}",predictor="{predictor}"`).

`ScrapeMetrics` needs no Prometheus: it reads the model servers' own `/metrics` (every pod of a
predictor, summed) and takes the difference between a scrape at the window's start and one at
its end (counters are cumulative; a counter that went down — a restarted pod — counts from 0).

Both hold aggregates, not samples, so the windows are approximations: Prometheus' latency samples
are just the p99 (histogram_quantile over the window), the scrape's are spread over the buckets'
ranges (percentiles within a bucket); scores are the score histogram's bucket midpoints repeated by
their counts (PSI and KS on binned scores, 50 bins of 0.02).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from components.common import serving_metrics as names
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
        requests_metric: str = f"{names.REQUESTS}_total",
        latency_metric: str = names.LATENCY,
        score_metric: str = names.SCORE,
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
        """The PromQL of one window: requests, errors (5xx), client errors (4xx), p99 (ms) and
        the score histogram."""
        sel = self.selector.format(namespace=self.namespace, predictor=predictor)
        predict = f'{sel},{names.ENDPOINT}=~"{names.predict_endpoints_regex()}"'
        rng = f"[{max(1, round(seconds))}s]"
        return {
            "requests": f"sum(increase({self.requests_metric}{{{predict}}}{rng}))",
            "errors": f'sum(increase({self.requests_metric}{{{predict},code=~"5.."}}{rng}))',
            "client_errors": (
                f'sum(increase({self.requests_metric}{{{predict},code=~"4.."}}{rng}))'
            ),
            "p99_ms": (
                "histogram_quantile(0.99, sum by (le) "
                f"(rate({self.latency_metric}_bucket{{{predict}}}{rng}))) * 1000"
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
            client_errors = round(self._scalar(self._query(client, q["client_errors"])))
            p99 = self._scalar(self._query(client, q["p99_ms"]))
            buckets = self._query(client, q["scores"])
        return Window(
            requests,
            errors,
            [p99] if requests else [],
            self._scores(buckets),
            end - start,
            client_errors,
        )

    def _scores(self, result: list[dict]) -> list[float]:
        """Bucket midpoints repeated by count (cumulative `le` buckets -> per bucket)."""
        cumulative = {
            float(r["metric"]["le"]): float(r["value"][1])
            for r in result
            if r["metric"].get("le") not in (None, "+Inf")
        }
        return bucket_midpoints(cumulative, self.max_score_samples)


def _per_bucket(cumulative: Mapping[float, float]) -> list[tuple[float, float, float]]:
    """(lower, upper, count) of each bucket from cumulative `le` counts; the +Inf bucket's range
    is its lower bound alone."""
    out = []
    lower, below = 0.0, 0.0
    for le, total in sorted(cumulative.items()):
        out.append((lower, le if math.isfinite(le) else lower, max(0.0, total - below)))
        lower, below = le, max(below, total)
    return out


def bucket_midpoints(cumulative: Mapping[float, float], max_samples: int) -> list[float]:
    """Samples of a histogram: each bucket's midpoint repeated by its count (scaled down to at
    most about `max_samples`)."""
    buckets = _per_bucket(cumulative)
    total = sum(c for _, _, c in buckets)
    if total <= 0:
        return []
    scale = min(1.0, max_samples / total)
    return [(lo + hi) / 2 for lo, hi, c in buckets for _ in range(round(c * scale))]


def bucket_spread(cumulative: Mapping[float, float], max_samples: int) -> list[float]:
    """Samples of a histogram spread evenly inside each bucket's range (what histogram_quantile
    assumes), so nearest-rank percentiles of the samples interpolate within a bucket; counts
    above the last finite bound (+Inf) sit at that bound."""
    buckets = _per_bucket(cumulative)
    total = sum(c for _, _, c in buckets)
    if total <= 0:
        return []
    scale = min(1.0, max_samples / total)
    samples: list[float] = []
    for lo, hi, count in buckets:
        n = round(count * scale)
        samples.extend(lo + (hi - lo) * (i + 1) / n for i in range(n))
    return samples


# ---------------------------------------------------------------- the servers' own /metrics

Endpoints = Sequence[str] | Callable[[], Sequence[str]]


@dataclass
class Counts:
    """What one model server's /metrics said at one instant (prediction endpoints only)."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx
    client_errors: float = 0.0  # 4xx: a candidate refusing requests stable answers
    latency: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    scores: dict[float, float] = field(default_factory=dict)  # le -> cumulative count

    def minus(self, base: Counts) -> Counts:
        """The increase since `base`; a counter that went down (a restarted server) counts from
        zero, as Prometheus' increase() does."""
        if self.requests < base.requests or _went_down(self.scores, base.scores):
            base = Counts()
        return Counts(
            self.requests - base.requests,
            max(0.0, self.errors - base.errors),
            max(0.0, self.client_errors - base.client_errors),
            {le: max(0.0, c - base.latency.get(le, 0.0)) for le, c in self.latency.items()},
            {le: max(0.0, c - base.scores.get(le, 0.0)) for le, c in self.scores.items()},
        )

    def plus(self, other: Counts) -> Counts:
        def add(a: dict[float, float], b: dict[float, float]) -> dict[float, float]:
            return {le: a.get(le, 0.0) + b.get(le, 0.0) for le in a.keys() | b.keys()}

        return Counts(
            self.requests + other.requests,
            self.errors + other.errors,
            self.client_errors + other.client_errors,
            add(self.latency, other.latency),
            add(self.scores, other.scores),
        )


def _went_down(now: dict[float, float], before: dict[float, float]) -> bool:
    return any(now.get(le, 0.0) < c for le, c in before.items())


@dataclass
class Snapshot:
    at: float
    pods: dict[str, Counts]


def parse_metrics(text: str, model: str | None = None) -> Counts:
    """The prediction endpoints' requests, 5xx, 4xx, latency buckets and score buckets of one
    server's Prometheus text (`model`: only that model's series)."""
    from prometheus_client.parser import text_string_to_metric_families

    counts = Counts()
    predict = set(names.PREDICT_ENDPOINTS)
    requests, latency, scores = (
        f"{names.REQUESTS}_total",
        f"{names.LATENCY}_bucket",
        f"{names.SCORE}_bucket",
    )
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if model is not None and labels.get(names.MODEL) != model:
                continue
            if sample.name == requests and labels.get(names.ENDPOINT) in predict:
                counts.requests += sample.value
                code = labels.get(names.CODE, "")
                if code.startswith("5"):
                    counts.errors += sample.value
                elif code.startswith("4"):
                    counts.client_errors += sample.value
            elif sample.name == latency and labels.get(names.ENDPOINT) in predict:
                le = float(labels[names.LE])
                counts.latency[le] = counts.latency.get(le, 0.0) + sample.value
            elif sample.name == scores:
                le = float(labels[names.LE])
                counts.scores[le] = counts.scores.get(le, 0.0) + sample.value
    return counts


class ScrapeMetrics:
    """A `MetricsSource` from the model servers' own `/metrics`, no Prometheus needed.

    `endpoints`: per predictor name, its servers' URLs (`http://10.244.0.7:8080`; `/metrics` is
    appended when the URL has no path) — a list, or a callable returning the current list (pods
    come and go) — as a mapping, or one callable `predictor -> URLs`. Every call of `window`
    scrapes every server of the predictor and keeps the result; the window is the difference
    between the scrape at its end and the latest one at or before `start` (else the first one
    after `start`: the very first window then starts at its first scrape — call `mark` when the
    window opens to start it there). `clock` must be the clock `start`/`end` come from.
    A scrape has `timeout_s` and at most `max_bytes` of response; any server failing to answer
    raises MetricsError (a window without one pod's traffic would mislead the analysis)."""

    def __init__(
        self,
        endpoints: Mapping[str, Endpoints] | Callable[[str], Sequence[str]],
        *,
        model: str | None = None,
        timeout_s: float = 5.0,
        max_bytes: int = 4 * 1024 * 1024,
        max_samples: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
        history: int = 256,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.model = model
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_samples = max_samples
        self.clock = clock
        self.history = history
        self._transport = transport
        self._snapshots: dict[str, list[Snapshot]] = {}
        self._lock = threading.Lock()

    def urls(self, predictor: str) -> list[str]:
        if callable(self.endpoints):
            found = self.endpoints(predictor)
        else:
            if predictor not in self.endpoints:
                raise MetricsError(f"no scrape endpoints for predictor {predictor!r}")
            found = self.endpoints[predictor]
            found = found() if callable(found) else found
        return [_metrics_url(u) for u in found]

    def scrape(self, url: str, client: httpx.Client | None = None) -> Counts:
        """One server's counts now."""
        own = client is None
        client = client or httpx.Client(timeout=self.timeout_s, transport=self._transport)
        try:
            with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise MetricsError(f"scrape of {url}: HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise MetricsError(f"scrape of {url}: more than {self.max_bytes} bytes")
        except httpx.HTTPError as exc:
            raise MetricsError(f"scrape of {url}: {exc}") from exc
        finally:
            if own:
                client.close()
        try:
            return parse_metrics(body.decode("utf-8", errors="replace"), self.model)
        except ValueError as exc:
            raise MetricsError(f"scrape of {url}: not Prometheus text ({exc})") from exc

    def mark(self, predictor: str) -> Snapshot:
        """Scrape every server of `predictor` now and keep the result (a window's start)."""
        urls = self.urls(predictor)
        with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
            pods = {url: self.scrape(url, client) for url in urls}
        snapshot = Snapshot(self.clock(), pods)
        with self._lock:
            kept = self._snapshots.setdefault(predictor, [])
            kept.append(snapshot)
            del kept[: -self.history]
        return snapshot

    def _baseline(self, predictor: str, start: float, now: Snapshot) -> Snapshot:
        with self._lock:
            kept = list(self._snapshots.get(predictor, []))
        before = [s for s in kept if s.at <= start]
        if before:
            return before[-1]
        return next(s for s in kept if s.at >= start or s is now)

    def window(self, predictor: str, start: float, end: float) -> Window:
        now = self.mark(predictor)
        base = self._baseline(predictor, start, now)
        total = Counts()
        for url, counts in now.pods.items():
            total = total.plus(counts.minus(base.pods.get(url, Counts())))
        requests = round(total.requests)
        latencies = [s * 1000 for s in bucket_spread(total.latency, self.max_samples)]
        return Window(
            requests,
            round(total.errors),
            latencies if requests else [],
            bucket_midpoints(total.scores, self.max_samples),
            now.at - base.at,
            round(total.client_errors),
        )


def _metrics_url(url: str) -> str:
    parsed = httpx.URL(url)
    return str(parsed.copy_with(path="/metrics")) if parsed.path in ("", "/") else url
